package server_test

import (
	"reflect"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/switchboard-rtc/switchboard/internal/config"
)

// In a 3-node cluster, every node configured with the same webhook URL, each event arrives
// once (sent by the room's coordinator only), in order per room, whatever node the peers are on.
// This needs natsbus to report room events to its Config.Observer.
func TestWebhookClusterEachEventOnce(t *testing.T) {
	rc := startReceiver(t, nil)
	n := startNATS(t)
	hooks := func(c *config.Config) { withWebhooks(c, rc.url()) }
	n1, n2, n3 := startNode(t, n, hooks), startNode(t, n, hooks), startNode(t, n, hooks)
	waitCluster(t, n1, n2, n3)

	a, b, c := dial(t, n1), dial(t, n2), dial(t, n3)
	a.join("standup", map[string]any{"token": hookToken(t, "alice", "standup")})
	b.join("standup", map[string]any{"token": hookToken(t, "bob", "standup")})
	a.expect("peer-joined")
	c.join("standup", map[string]any{"token": hookToken(t, "carol", "standup")})
	a.expect("peer-joined")
	b.expect("peer-joined")
	// A second room on the other two nodes, likely with another coordinator.
	d, e := dial(t, n2), dial(t, n3)
	d.join("retro", map[string]any{"token": hookToken(t, "dan", "retro")})
	e.join("retro", map[string]any{"token": hookToken(t, "erin", "retro")})
	d.expect("peer-joined")

	b.send(map[string]any{"type": "leave", "id": 1})
	b.expect("ack")
	a.expect("peer-left")
	c.expect("peer-left")
	if err := c.c.Close(websocket.StatusNormalClosure, "bye"); err != nil {
		t.Fatal(err)
	}
	a.expect("peer-left")
	a.send(map[string]any{"type": "leave", "id": 2})
	a.expect("ack")
	e.send(map[string]any{"type": "leave", "id": 3})
	e.expect("ack")
	d.expect("peer-left")
	d.send(map[string]any{"type": "leave", "id": 4})
	d.expect("ack")

	want := map[string][]string{
		"standup": {"room-started standup", "peer-joined standup alice", "peer-joined standup bob", "peer-joined standup carol",
			"peer-left standup bob left", "peer-left standup carol closed", "peer-left standup alice left", "room-finished standup"},
		"retro": {"room-started retro", "peer-joined retro dan", "peer-joined retro erin",
			"peer-left retro erin left", "peer-left retro dan left", "room-finished retro"},
	}
	var first hook
	select {
	case first = <-rc.got:
	case <-time.After(waitFor):
		t.Fatal("no webhook from the cluster: does natsbus report room events to its Config.Observer?")
	}
	checkHookSignature(t, first)
	got := append([]hook{first}, rc.take(13, waitFor)...)
	// Stopping the nodes delivers whatever they still hold: nothing more may come.
	for _, ts := range []*testServer{n1, n2, n3} {
		stopServer(t, ts)
	}
	got = append(got, rc.rest()...)
	checkOnce(t, got)
	if g := byRoom(got); !reflect.DeepEqual(g, want) {
		t.Fatalf("got\n%v\nwant\n%v", g, want)
	}
	nodes := map[string]string{}
	for _, h := range got {
		if h.ev.Event == "peer-joined" {
			if h.ev.Peer.Node == "" {
				t.Fatalf("%s has no node", h.ev.short())
			}
			nodes[h.ev.Peer.Identity] = h.ev.Peer.Node
		}
	}
	if nodes["alice"] == nodes["bob"] || nodes["bob"] == nodes["carol"] || nodes["alice"] == nodes["carol"] ||
		nodes["bob"] != nodes["dan"] || nodes["carol"] != nodes["erin"] {
		t.Fatalf("peer nodes %v do not match the nodes they joined", nodes)
	}
}
