package server_test

import (
	"testing"
	"time"
)

// With JetStream on the NATS server and no --resume-secret, the nodes share the cluster's
// resume secret and spent-token ledger: a token minted on node 1 resumes on node 2 (restored
// there from node 1's handover: same id, no gap, what it had not read replayed), and the same
// token cannot be used a second time on any node.
func TestClusterResumeAcrossNodesJetStream(t *testing.T) {
	n := startNATSJS(t)
	n1, n2, n3 := startNode(t, n, nil), startNode(t, n, nil), startNode(t, n, nil)
	waitCluster(t, n1, n2, n3)
	a, b := dial(t, n1), dial(t, n3)
	wa := a.join("r", nil)
	b.join("r", nil)
	last := a.expect("peer-joined").Seq

	a.c.CloseNow() // lost, not closed: node 1 keeps the presence
	eventually(t, "the presence to be kept", func() bool { return n1.Hub().Stats().Parked.Load() == 1 })
	b.send(map[string]any{"type": "message", "target": a.id, "data": "while away", "id": 1})
	b.expect("ack")

	a2 := dial(t, n2)
	a2.send(map[string]any{"type": "join", "room": "r", "resume": wa.Resume, "last": last})
	w := a2.expect("welcome")
	if !w.Resumed || !w.Restored || w.Gap || w.peerID() != a.id || len(w.Peers) != 1 || w.Peers[0].ID != b.id {
		t.Fatalf("welcome on node 2 for node 1's token: %s", w.Raw)
	}
	if m := a2.expect("message"); m.From != b.id || string(m.Data) != `"while away"` || m.Seq != last+1 {
		t.Fatalf("replayed from node 1: %s", m.Raw)
	}
	b.send(map[string]any{"type": "message", "target": a.id, "data": "on node 2", "id": 2})
	b.expect("ack")
	if m := a2.expect("message"); string(m.Data) != `"on node 2"` || m.Seq != last+2 {
		t.Fatalf("a on node 2: %s", m.Raw)
	}
	if got := n1.Hub().Stats().Parked.Load(); got != 0 {
		t.Fatalf("node 1 still keeps %d presences after the handover", got)
	}

	// Spent: the token starts a new presence on every node, even one that never saw it.
	for _, ts := range []*testServer{n3, n1} {
		c := dial(t, ts)
		if wc := c.join("r", map[string]any{"resume": wa.Resume}); wc.Resumed || wc.peerID() == a.id {
			t.Fatalf("a spent token was taken again: %s", wc.Raw)
		}
		if pj := b.expect("peer-joined"); pj.peerID() != c.id || pj.Resumed {
			t.Fatalf("b: %s", pj.Raw)
		}
		a2.expect("peer-joined")
	}
	b.expectNothing(50 * time.Millisecond) // no peer-left for a, nothing else
	for _, ts := range []*testServer{n1, n2, n3} {
		if got := metricValue(t, ts, "switchboard_cluster_held_dropped_total"); got != "0" {
			t.Fatalf("held relays dropped: %s", got)
		}
	}
}
