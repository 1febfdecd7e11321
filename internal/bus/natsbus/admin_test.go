package natsbus

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/switchboard-rtc/switchboard/internal/bus"
	"github.com/switchboard-rtc/switchboard/protocol"
)

type kickCall struct {
	code   protocol.Code
	reason string
}

// kickable gives m a Kick that records the call and leaves b, as the hub's does.
func kickable(b *Bus, m *bus.Member) chan kickCall {
	ch := make(chan kickCall, 4)
	m.Kick = func(c protocol.Code, reason string) {
		ch <- kickCall{c, reason}
		b.Leave(m, reason)
	}
	return ch
}

func expectKick(t *testing.T, ch chan kickCall, code protocol.Code, reason string) {
	t.Helper()
	select {
	case k := <-ch:
		if k.code != code || k.reason != reason {
			t.Fatalf("kicked with %v %q, want %v %q", k.code, k.reason, code, reason)
		}
	case <-time.After(waitFor):
		t.Fatalf("not kicked (%v)", code)
	}
}

// waitUntil polls cond until it holds, failing the test after waitFor.
func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitFor)
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		<-tick.C
	}
}

// peersOf returns room's peers as node b lists them, as "id/identity/meta@node" strings.
func peersOf(b *Bus, room string) []string {
	ps, err := b.Peers(context.Background(), room)
	if err != nil {
		return []string{err.Error()}
	}
	var out []string
	for _, p := range ps {
		out = append(out, fmt.Sprintf("%s/%s/%s@%s", p.Info.ID, p.Info.Identity, p.Info.Meta, p.Node))
	}
	return out
}

func TestBusAdminAcrossNodes(t *testing.T) {
	ns := startNATS(t)
	defer stopNATS(ns)
	b1, b2 := newBus(t, ns.ClientURL(), time.Minute), newBus(t, ns.ClientURL(), time.Minute)
	defer b1.Close()
	defer b2.Close()
	waitNodes(t, b1, b2)
	ctx := context.Background()

	joinedAt := time.Now().Add(-time.Hour).Round(0)
	m1, s1 := member("r")
	m1.Info.Identity, m1.Joined = "ada", joinedAt
	k1 := kickable(b1, m1)
	m2, s2 := member("r")
	m2.Info.Identity, m2.Info.Meta = "grace", []byte(`{"a":1}`)
	k2 := kickable(b2, m2)
	if _, err := join(t, b1, m1, 0); err != nil {
		t.Fatal(err)
	}
	s1.expect(t, protocol.TypeWelcome)
	if _, err := join(t, b2, m2, 0); err != nil {
		t.Fatal(err)
	}
	s2.expect(t, protocol.TypeWelcome)
	s1.expect(t, protocol.TypePeerJoined)

	// Rooms and Peers: the same answer from both nodes, with identity, meta, node, join time.
	want := []string{
		fmt.Sprintf("%s/ada/@%s", m1.Info.ID, b1.ID()),
		fmt.Sprintf(`%s/grace/{"a":1}@%s`, m2.Info.ID, b2.ID()),
	}
	for _, b := range []*Bus{b1, b2} {
		waitUntil(t, "both replicas", func() bool { return slices.Equal(peersOf(b, "r"), want) })
		rooms, err := b.Rooms(ctx)
		if err != nil || len(rooms) != 1 || rooms[0] != (bus.RoomSummary{Name: "r", Peers: 2}) {
			t.Fatalf("rooms: %v %v", rooms, err)
		}
		ps, _ := b.Peers(ctx, "r")
		if !ps[0].Joined.Equal(joinedAt) || ps[1].Joined.IsZero() {
			t.Fatalf("join times %v %v, want %v first", ps[0].Joined, ps[1].Joined, joinedAt)
		}
		if _, err := b.Peers(ctx, "nowhere"); !errors.Is(err, bus.ErrNoRoom) {
			t.Fatalf("peers of an empty room: %v", err)
		}
	}

	// Notify: one peer on the other node, then the whole room.
	if err := b1.Notify(ctx, "r", m2.Info.ID, []byte(`{"hi":2}`)); err != nil {
		t.Fatal(err)
	}
	if e := s2.expect(t, protocol.TypeServerMessage); string(e.Data) != `{"hi":2}` {
		t.Fatalf("notify: %s", e.Data)
	}
	if err := b2.Notify(ctx, "r", "", []byte(`"all"`)); err != nil {
		t.Fatal(err)
	}
	for _, s := range []*recSink{s1, s2} {
		if e := s.expect(t, protocol.TypeServerMessage); string(e.Data) != `"all"` {
			t.Fatalf("notify room: %s", e.Data)
		}
	}
	if err := b1.Notify(ctx, "r", "nobody", []byte(`1`)); !errors.Is(err, bus.ErrNoPeer) {
		t.Fatalf("notify nobody: %v", err)
	}
	if err := b1.Notify(ctx, "nowhere", "", []byte(`1`)); !errors.Is(err, bus.ErrNoRoom) {
		t.Fatalf("notify an empty room: %v", err)
	}

	// UpdateMeta of a peer on node 1, asked on node 2: both peers hear it, both nodes list it
	// (node 2 at once), and a later welcome carries it.
	if err := b2.UpdateMeta(ctx, "r", m1.Info.ID, []byte(`{"role":"host"}`)); err != nil {
		t.Fatal(err)
	}
	if ps := peersOf(b2, "r"); ps[0] != fmt.Sprintf(`%s/ada/{"role":"host"}@%s`, m1.Info.ID, b1.ID()) {
		t.Fatalf("node 2 right after the update: %v", ps)
	}
	for _, s := range []*recSink{s1, s2} {
		e := s.expect(t, protocol.TypePeerUpdated)
		if e.Peer.ID != m1.Info.ID || e.Peer.Identity != "ada" || string(e.Peer.Meta) != `{"role":"host"}` {
			t.Fatalf("peer-updated: %+v", e.Peer)
		}
	}
	waitUntil(t, "node 1's replica", func() bool { return slices.Equal(peersOf(b1, "r"), peersOf(b2, "r")) })
	// And back to none, from the peer's own node.
	if err := b1.UpdateMeta(ctx, "r", m2.Info.ID, nil); err != nil {
		t.Fatal(err)
	}
	for _, s := range []*recSink{s1, s2} {
		if e := s.expect(t, protocol.TypePeerUpdated); e.Peer.ID != m2.Info.ID || e.Peer.Meta != nil {
			t.Fatalf("peer-updated: %+v", e.Peer)
		}
	}
	if err := b1.UpdateMeta(ctx, "r", "nobody", nil); !errors.Is(err, bus.ErrNoPeer) {
		t.Fatalf("update nobody: %v", err)
	}
	m3, s3 := member("r")
	k3 := kickable(b2, m3)
	others, err := join(t, b2, m3, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(others) != 2 || string(others[0].Meta) != `{"role":"host"}` || others[1].Meta != nil || others[0].Identity != "ada" {
		t.Fatalf("welcome after the updates: %+v", others)
	}
	s3.expect(t, protocol.TypeWelcome)
	s1.expect(t, protocol.TypePeerJoined)
	s2.expect(t, protocol.TypePeerJoined)

	// Kick a peer of node 1 from node 2: its own node kicks it, everyone hears why.
	if err := b2.Kick(ctx, "r", m1.Info.ID, protocol.CodeRemoved, "removed"); err != nil {
		t.Fatal(err)
	}
	expectKick(t, k1, protocol.CodeRemoved, "removed")
	for _, s := range []*recSink{s2, s3} {
		if e := s.expect(t, protocol.TypePeerLeft); e.Peer.ID != m1.Info.ID || e.Reason != "removed" {
			t.Fatalf("peer-left: %+v %q", e.Peer, e.Reason)
		}
	}
	waitUntil(t, "the kick everywhere", func() bool { return len(peersOf(b1, "r")) == 2 && len(peersOf(b2, "r")) == 2 })
	if err := b2.Kick(ctx, "r", m1.Info.ID, protocol.CodeRemoved, "removed"); !errors.Is(err, bus.ErrNoPeer) {
		t.Fatalf("kick a peer gone: %v", err)
	}

	// CloseRoom from node 1, whose peers are all on node 2.
	n, err := b1.CloseRoom(ctx, "r", protocol.CodeRoomClosed, "room-closed")
	if err != nil || n != 2 {
		t.Fatalf("close room: %d %v", n, err)
	}
	expectKick(t, k2, protocol.CodeRoomClosed, "room-closed")
	expectKick(t, k3, protocol.CodeRoomClosed, "room-closed")
	for _, b := range []*Bus{b1, b2} {
		waitUntil(t, "the room to close", func() bool {
			rooms, _ := b.Rooms(ctx)
			return len(rooms) == 0
		})
	}
	if _, err := b1.CloseRoom(ctx, "r", protocol.CodeRoomClosed, "room-closed"); !errors.Is(err, bus.ErrNoRoom) {
		t.Fatalf("close an empty room: %v", err)
	}
}

// A second presence of one identity takes over, whichever nodes the two are on, even in a full
// room: the older one is kicked by its own node (replaced).
func TestBusIdentityTakeoverAcrossNodes(t *testing.T) {
	ns := startNATS(t)
	defer stopNATS(ns)
	b1, b2 := newBus(t, ns.ClientURL(), time.Minute), newBus(t, ns.ClientURL(), time.Minute)
	defer b1.Close()
	defer b2.Close()
	waitNodes(t, b1, b2)
	const limit = 2
	// Rooms coordinated by each node: the count without the old presence is made there.
	for ci, coord := range []*Bus{b1, b2} {
		var room string
		for i := 0; room == ""; i++ {
			r := fmt.Sprintf("t%d", i)
			b1.mu.RLock()
			if b1.coordinatorLocked(r) == coord.id {
				room = r
			}
			b1.mu.RUnlock()
		}
		t.Run(fmt.Sprintf("coordinated by node %d", ci+1), func(t *testing.T) {
			old, so := member(room)
			old.Info.Identity = "alice"
			kOld := kickable(b1, old)
			bob, sb := member(room)
			bob.Info.Identity = "bob"
			kickable(b2, bob)
			for _, j := range []struct {
				b *Bus
				m *bus.Member
				s *recSink
			}{{b1, old, so}, {b2, bob, sb}} {
				if _, err := join(t, j.b, j.m, limit); err != nil {
					t.Fatal(err)
				}
				j.s.expect(t, protocol.TypeWelcome)
			}
			so.expect(t, protocol.TypePeerJoined)
			carol, _ := member(room)
			carol.Info.Identity = "carol"
			if _, err := join(t, b1, carol, limit); !errors.Is(err, bus.ErrRoomFull) {
				t.Fatalf("a third identity: %v", err)
			}
			again, sa := member(room)
			again.Info.Identity = "alice"
			kickable(b2, again)
			others, err := join(t, b2, again, limit)
			if err != nil {
				t.Fatalf("takeover into a full room: %v", err)
			}
			if len(others) != 1 || others[0].Identity != "bob" { // not the replaced alice
				t.Fatalf("welcome: %+v", others)
			}
			sa.expect(t, protocol.TypeWelcome)
			expectKick(t, kOld, protocol.CodeReplaced, "replaced")
			if e := sb.expect(t, protocol.TypePeerJoined); e.Peer.ID != again.Info.ID {
				t.Fatalf("peer-joined: %+v", e.Peer)
			}
			for _, s := range []*recSink{sb, sa} {
				e := s.expect(t, protocol.TypePeerLeft)
				if e.Peer.ID != old.Info.ID || e.Reason != "replaced" {
					t.Fatalf("peer-left: %+v %q", e.Peer, e.Reason)
				}
			}
			for _, b := range []*Bus{b1, b2} {
				waitUntil(t, "one alice", func() bool {
					ps := peersOf(b, room)
					return len(ps) == 2 && ps[1] == fmt.Sprintf("%s/alice/@%s", again.Info.ID, b2.ID())
				})
			}
			b2.Leave(bob, "left")
			b2.Leave(again, "left")
		})
	}
}
