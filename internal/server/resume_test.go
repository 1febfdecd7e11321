package server_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/switchboard-rtc/switchboard/internal/config"
)

// A connection lost without a goodbye keeps its presence: the others see nothing, relays to
// it are held, and a new connection that joins with the resume token gets the same id, a
// welcome marked resumed and then the held events in order.
func TestResumeAfterLostConnection(t *testing.T) {
	ts := startServer(t, nil)
	a := dial(t, ts)
	wa := a.join("r", map[string]any{"name": "Ada"})
	if wa.Resume == "" || wa.Resumed {
		t.Fatalf("welcome without a resume token: %s", wa.Raw)
	}
	b := dial(t, ts)
	b.join("r", nil)
	a.expect("peer-joined")

	a.c.CloseNow() // no close frame: as if the network went away
	// What follows is held once the server has seen a go; until then an event may be written
	// into the dead socket and lost (the half-open window, docs/protocol.md "Resuming").
	eventually(t, "the lost connection to be kept for resumption", func() bool {
		return metricValue(t, ts, "switchboard_resumable_peers") == "1"
	})
	for i := range 3 {
		// Sent while a is away: acked, since a is still in the room.
		b.send(map[string]any{"type": "message", "id": i, "target": a.id, "data": i})
		if m := b.expect("ack"); string(m.ID) != fmt.Sprint(i) {
			t.Fatalf("ack: %s", m.Raw)
		}
	}

	a2 := dial(t, ts)
	// last 1: a read its peer-joined (seq 1); the three messages follow it.
	a2.send(map[string]any{"type": "join", "id": "again", "room": "r", "resume": wa.Resume, "last": 1})
	w := a2.expect("welcome")
	if w.peerID() != a.id || !w.Resumed || len(w.Peers) != 1 || w.Peers[0].ID != b.id || w.Resume == "" || w.Resume == wa.Resume {
		t.Fatalf("resumed welcome: %s (first was %s)", w.Raw, wa.Raw)
	}
	for i := range 3 {
		if m := a2.expect("message"); m.From != b.id || string(m.Data) != fmt.Sprint(i) {
			t.Fatalf("held message %d: %s", i, m.Raw)
		}
	}
	a2.id = a.id
	a2.send(map[string]any{"type": "message", "target": b.id, "data": "back"})
	if m := b.expect("message"); m.From != a.id || string(m.Data) != `"back"` {
		t.Fatalf("b: %s", m.Raw)
	}
	if got := metricValue(t, ts, `switchboard_resumes_total{result="resumed"}`); got != "1" {
		t.Fatalf("resumes = %s, want 1", got)
	}
	// A resume of a presence the node holds takes no room in the spent-token ledger.
	if got := metricValue(t, ts, `switchboard_resume_ledger_entries`); got != "0" {
		t.Fatalf("ledger entries after a resume = %s, want 0", got)
	}
	if got := metricValue(t, ts, `switchboard_resume_ledger_refused_total{reason="client-share"}`); got != "0" {
		t.Fatalf("ledger refusals = %s, want 0", got)
	}

	// A token works once: the first one is spent, so joining with it is a new presence.
	a3 := dial(t, ts)
	w3 := a3.join("r", map[string]any{"resume": wa.Resume})
	if w3.Resumed || w3.peerID() == a.id || len(w3.Peers) != 2 {
		t.Fatalf("spent token: %s", w3.Raw)
	}
	// b saw exactly one change in all this: a3 arriving. a never left.
	if m := b.expect("peer-joined"); m.peerID() != w3.peerID() {
		t.Fatalf("b: %s", m.Raw)
	}
}

// A presence not resumed within the grace period leaves with the reason its connection was
// lost for; a token for another room, or after expiry, starts a new presence.
func TestResumeExpiresAndIsScopedToRoom(t *testing.T) {
	ts := startServer(t, func(c *config.Config) { c.ResumeGrace = 150 * time.Millisecond })
	a := dial(t, ts)
	wa := a.join("r", nil)
	b := dial(t, ts)
	b.join("r", nil)

	a.c.CloseNow()
	other := dial(t, ts)
	if w := other.join("elsewhere", map[string]any{"resume": wa.Resume}); w.Resumed || w.peerID() == a.id {
		t.Fatalf("resumed into another room: %s", w.Raw)
	}
	start := time.Now()
	if m := b.expect("peer-left"); m.peerID() != a.id || m.Reason != "closed" {
		t.Fatalf("peer-left: %s", m.Raw)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("peer-left after %v with a 150ms grace", d)
	}
	// Its events are gone; its token may only start it over (restored, a gap), like a join.
	late := dial(t, ts)
	if w := late.join("r", map[string]any{"resume": wa.Resume}); w.Resumed && (!w.Restored || !w.Gap) {
		t.Fatalf("resumed after expiry: %s", w.Raw)
	}
	if got := metricValue(t, ts, `switchboard_resumes_total{result="expired"}`); got != "1" {
		t.Fatalf("expired = %s, want 1", got)
	}
}

// A goodbye (a close frame or leave) is final at once: nothing is kept.
func TestCloseFrameIsNotResumable(t *testing.T) {
	ts := startServer(t, nil)
	a := dial(t, ts)
	wa := a.join("r", nil)
	b := dial(t, ts)
	b.join("r", nil)
	if err := a.c.Close(websocket.StatusGoingAway, "tab closed"); err != nil {
		t.Fatal(err)
	}
	if m := b.expect("peer-left"); m.peerID() != a.id || m.Reason != "closed" {
		t.Fatalf("peer-left: %s", m.Raw)
	}
	// The presence is gone with its events: its token may only start it over (restored, a
	// gap; docs/protocol.md "Single use"), like a join.
	a2 := dial(t, ts)
	if w := a2.join("r", map[string]any{"resume": wa.Resume}); w.Resumed && (!w.Restored || !w.Gap) {
		t.Fatalf("resumed after a close frame: %s", w.Raw)
	}
}

// Events held for a lost presence are bounded: past the bound it leaves at once.
func TestResumeHoldOverflow(t *testing.T) {
	ts := startServer(t, nil)
	a := dial(t, ts)
	wa := a.join("r", nil)
	b := dial(t, ts)
	b.join("r", nil)
	a.c.CloseNow()
	// 256 events or 256 KiB are held; 40 KiB messages overflow the bytes after 6.
	big := make([]byte, 40<<10)
	for i := range big {
		big[i] = 'x'
	}
	var left bool
	for i := 0; i < 10 && !left; i++ {
		b.send(map[string]any{"type": "message", "id": i, "target": a.id, "data": string(big)})
		for {
			m := b.next()
			if m.Type == "peer-left" {
				if m.peerID() != a.id {
					t.Fatalf("peer-left: %s", m.Raw)
				}
				left = true
				continue
			}
			if m.Type == "ack" || m.Type == "error" {
				break
			}
		}
	}
	if !left {
		t.Fatal("10 × 40 KiB held for a lost presence and it did not leave")
	}
	a2 := dial(t, ts)
	if w := a2.join("r", map[string]any{"resume": wa.Resume}); w.Resumed && (!w.Restored || !w.Gap) {
		t.Fatalf("resumed after overflow: %s", w.Raw)
	}
}

// Draining gives up kept presences at once (reason shutdown): this node will not resume them.
func TestDrainEndsKeptPresences(t *testing.T) {
	ts := startServer(t, nil)
	a := dial(t, ts)
	a.join("r", nil)
	b := dial(t, ts)
	b.join("r", nil)
	a.c.CloseNow()
	// Wait until the server has seen a go: its presence is kept.
	deadline := time.Now().Add(waitFor)
	for metricValue(t, ts, "switchboard_resumable_peers") != "1" {
		if time.Now().After(deadline) {
			t.Fatal("lost connection not kept for resumption")
		}
		time.Sleep(10 * time.Millisecond) // polling a gauge with a deadline, not waiting for an event
	}
	ts.Hub().Drain()
	if m := b.expect("peer-left"); m.peerID() != a.id || m.Reason != "shutdown" {
		t.Fatalf("peer-left: %s", m.Raw)
	}
}

// The client often learns first that its connection died (a network change) while the
// server's socket still looks open. Resuming then takes the presence over from that
// connection, which the server closes; the others see nothing.
func TestResumeTakesOverHalfOpenConnection(t *testing.T) {
	ts := startServer(t, nil)
	a := dial(t, ts)
	wa := a.join("r", nil)
	b := dial(t, ts)
	b.join("r", nil)
	a.expect("peer-joined")

	a2 := dial(t, ts)
	a2.send(map[string]any{"type": "join", "room": "r", "resume": wa.Resume, "last": 1})
	if w := a2.expect("welcome"); !w.Resumed || w.peerID() != a.id {
		t.Fatalf("takeover welcome: %s", w.Raw)
	}
	// The old connection is closed by the server, without any goodbye to the room.
	select {
	case <-a.errc:
	case <-time.After(waitFor):
		t.Fatal("old connection still open after the takeover")
	}
	b.send(map[string]any{"type": "message", "target": a.id, "data": "to the new one"})
	if m := a2.expect("message"); string(m.Data) != `"to the new one"` {
		t.Fatalf("a2: %s", m.Raw)
	}
	b.expectNothing(100 * time.Millisecond)
}
