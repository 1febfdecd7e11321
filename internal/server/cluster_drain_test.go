package server_test

import (
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/switchboard-rtc/switchboard/internal/config"
)

func TestClusterNodeKilled(t *testing.T) {
	n := startNATS(t)
	// The dead node's peers are kept for the resume grace (for their clients to resume on
	// another node), then leave.
	const grace = 300 * time.Millisecond
	short := func(c *config.Config) { c.ResumeGrace = grace }
	n1, n2, n3 := startNode(t, n, short), startNode(t, n, short), startNode(t, n, short)
	waitCluster(t, n1, n2, n3)
	a, b, c := dial(t, n1), dial(t, n2), dial(t, n3)
	// Several rooms so that some are coordinated by the node that dies.
	rooms := []string{"k0", "k1", "k2", "k3", "k4", "k5"}
	for _, r := range rooms {
		a.join(r, nil)
		b.join(r, nil)
		a.expect("peer-joined")
		a.send(map[string]any{"type": "leave"})
		b.expect("peer-left")
		b.send(map[string]any{"type": "leave"})
	}
	a.join("room", nil)
	b.join("room", nil)
	c.join("room", nil)
	a.expect("peer-joined")
	a.expect("peer-joined")
	b.expect("peer-joined")

	// kill -9: the NATS connection drops without a goodbye, and the node stops.
	killed := time.Now()
	natsBus(t, n2).Crash()
	n2.stop()
	for _, cl := range []*client{a, c} {
		pl := cl.expect("peer-left")
		if pl.peerID() != b.id || pl.Reason != "timeout" {
			t.Fatalf("peer-left: %s", pl.Raw)
		}
	}
	if d := time.Since(killed); d > testNodeTimeout+grace+4*testHeartbeat+time.Second || d < grace {
		t.Fatalf("peer-left %v after the kill; it comes after the grace %v, within about %v", d, grace, testNodeTimeout+grace)
	}
	// The survivors keep working, in every room whatever node coordinated it.
	waitCluster(t, n1, n3)
	for _, r := range rooms {
		x, y := dial(t, n1), dial(t, n3)
		x.join(r, nil)
		if w := y.join(r, nil); len(w.Peers) != 1 || w.Peers[0].ID != x.id {
			t.Fatalf("room %s after the kill: %s", r, w.Raw)
		}
	}
	a.send(map[string]any{"type": "message", "target": c.id, "data": 1})
	if m := c.expect("message"); m.From != a.id {
		t.Fatalf("relay after the kill: %s", m.Raw)
	}
}

// A cluster node drained for a restart (SIGTERM) closes its connections 1012 "restart" and
// announces nobody gone: its clients resume on another node with their tokens (the nodes
// share --resume-secret), same id, restored from the draining node's handover (no gap), and
// the room sees nothing. One that never comes back leaves for the others after the grace
// (peer-left shutdown). The draining node stays up until its presences are taken over or the
// grace ends.
func TestClusterNodeDrains(t *testing.T) {
	n := startNATS(t)
	const grace = 1500 * time.Millisecond
	mod := func(c *config.Config) {
		c.NATSNodeTimeout = time.Minute // only a goodbye or a grace can be this fast
		c.ResumeSecret = strings.Repeat("k", 40)
		c.ResumeGrace = grace
	}
	n1, n2 := startNode(t, n, mod), startNode(t, n, mod)
	waitCluster(t, n1, n2)
	a, b, c := dial(t, n1), dial(t, n2), dial(t, n2)
	a.join("room", nil)
	wb := b.join("room", nil)
	c.join("room", nil)
	last := b.expect("peer-joined").Seq // c's
	a.expect("peer-joined")
	a.expect("peer-joined")

	start := time.Now()
	n2.stop() // SIGTERM
	b.expectClose(websocket.StatusServiceRestart)
	c.expectClose(websocket.StatusServiceRestart)
	b2 := dial(t, n1)
	b2.send(map[string]any{"type": "join", "room": "room", "resume": wb.Resume, "last": last})
	w := b2.expect("welcome")
	if !w.Resumed || !w.Restored || w.Gap || w.peerID() != b.id || w.Seq != last || len(w.Peers) != 2 || w.Peers[0].ID != a.id {
		t.Fatalf("b's welcome on node 1 after node 2 drained: %s", w.Raw)
	}
	a.send(map[string]any{"type": "message", "target": b.id, "data": "welcome back", "id": 1})
	a.expect("ack")
	if m := b2.expect("message"); m.From != a.id || m.Seq != last+1 {
		t.Fatalf("b: %s", m.Raw)
	}
	// c does not come back: after the grace, and only then, a hears it left.
	if pl := a.expect("peer-left"); pl.peerID() != c.id || pl.Reason != "shutdown" {
		t.Fatalf("peer-left: %s", pl.Raw)
	}
	if d := time.Since(start); d < grace {
		t.Fatalf("peer-left %v after the drain, before the grace %v", d, grace)
	}
	if pl := b2.expect("peer-left"); pl.peerID() != c.id {
		t.Fatalf("b: %s", pl.Raw)
	}
	eventually(t, "node 1 to forget node 2", func() bool { return natsBus(t, n1).Nodes() == 1 })
	d := dial(t, n1)
	if w := d.join("room", nil); len(w.Peers) != 2 || w.Peers[0].ID != a.id || w.Peers[1].ID != b.id {
		t.Fatalf("welcome after the drain: %s", w.Raw)
	}
	a.expect("peer-joined")
	a.expectNothing(50 * time.Millisecond)
}

// A cluster node drains without resumption (--resume-grace 0): goodbye 1001, peer-left
// shutdown at once.
func TestClusterNodeDrainsWithoutResume(t *testing.T) {
	n := startNATS(t)
	mod := func(c *config.Config) { c.NATSNodeTimeout = time.Minute; c.ResumeGrace = 0 }
	n1, n2 := startNode(t, n, mod), startNode(t, n, mod)
	waitCluster(t, n1, n2)
	a, b := dial(t, n1), dial(t, n2)
	a.join("room", nil)
	b.join("room", nil)
	a.expect("peer-joined")
	start := time.Now()
	n2.stop()
	b.expectClose(websocket.StatusGoingAway)
	if pl := a.expect("peer-left"); pl.peerID() != b.id || pl.Reason != "shutdown" {
		t.Fatalf("peer-left: %s", pl.Raw)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("peer-left took %v", d)
	}
}
