package natsbus

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/switchboard-rtc/switchboard/internal/bus"
	"github.com/switchboard-rtc/switchboard/protocol"
)

// Lobby sockets reach each other by id across nodes; one that leaves the lobby, or whose
// node goes, is no longer a target.
func TestLobbyRelayAcrossNodes(t *testing.T) {
	ns := startNATS(t)
	defer stopNATS(ns)
	a, b := newBus(t, ns.ClientURL(), 200*time.Millisecond), newBus(t, ns.ClientURL(), 200*time.Millisecond)
	defer a.Close()
	defer b.Close()
	waitNodes(t, a, b)
	s1, s2 := newSink(), newSink()
	id1, id2 := protocol.NewPeerID(), protocol.NewPeerID()
	if err := a.LobbyJoin(id1, s1); err != nil {
		t.Fatal(err)
	}
	if err := b.LobbyJoin(id2, s2); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "both lobbies known on both nodes", func() bool {
		return a.LobbyRelay("x", id2, msg("x", "probe")) == nil && b.LobbyRelay("x", id1, msg("x", "probe")) == nil
	})
	drain := func(s *recSink) {
		for len(s.ch) > 0 {
			<-s.ch
		}
	}
	s2.expect(t, protocol.TypeMessage)
	s1.expect(t, protocol.TypeMessage)
	drain(s1)
	drain(s2)
	for i := range 3 {
		if err := a.LobbyRelay(id1, id2, msg(id1, fmt.Sprint(i))); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 3 {
		if e := s2.expect(t, protocol.TypeMessage); e.From != id1 || string(e.Data) != fmt.Sprint(i) {
			t.Fatalf("lobby relay %d: %+v", i, e)
		}
	}
	if err := b.LobbyRelay(id2, id1, msg(id2, "back")); err != nil {
		t.Fatal(err)
	}
	expectData(t, s1, "back")
	if err := a.LobbyRelay(id1, id1, msg(id1, "self")); !errors.Is(err, bus.ErrUnknownTarget) {
		t.Fatalf("relay to itself: %v", err)
	}
	if err := a.LobbyRelay(id1, protocol.NewPeerID(), msg(id1, "nobody")); !errors.Is(err, bus.ErrUnknownTarget) {
		t.Fatalf("relay to nobody: %v", err)
	}
	b.LobbyLeave(id2)
	waitUntil(t, "a forgets the socket that left", func() bool {
		return errors.Is(a.LobbyRelay(id1, id2, msg(id1, "gone")), bus.ErrUnknownTarget)
	})
	if err := b.LobbyJoin(id2, s2); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "a learns it again", func() bool { return a.LobbyRelay(id1, id2, msg(id1, "again")) == nil })
	b.Crash()
	waitUntil(t, "a forgets the dead node's lobby", func() bool {
		return errors.Is(a.LobbyRelay(id1, id2, msg(id1, "dead")), bus.ErrUnknownTarget)
	})
}

// The lobby is bounded per node; a node that starts learns the others' lobbies from syncs.
func TestLobbyBoundAndSync(t *testing.T) {
	ns := startNATS(t)
	defer stopNATS(ns)
	cfg := Config{URL: ns.ClientURL(), Heartbeat: 20 * time.Millisecond, NodeTimeout: time.Minute, LobbyMax: 2,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
	a, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	waitNodes(t, a)
	ids := []protocol.PeerID{protocol.NewPeerID(), protocol.NewPeerID(), protocol.NewPeerID()}
	for i, id := range ids {
		err := a.LobbyJoin(id, newSink())
		if (i < 2) != (err == nil) || i == 2 && !errors.Is(err, ErrLobbyFull) {
			t.Fatalf("lobby join %d: %v", i, err)
		}
	}
	b, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	waitNodes(t, a, b)
	for _, id := range ids[:2] {
		waitUntil(t, "the new node knows the lobby", func() bool { return b.LobbyRelay("x", id, msg("x", "hi")) == nil })
	}
}
