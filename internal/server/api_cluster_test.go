package server_test

import (
	"errors"
	"slices"
	"testing"

	"github.com/switchboard-rtc/switchboard/internal/auth"
	"github.com/switchboard-rtc/switchboard/internal/config"
	"github.com/switchboard-rtc/switchboard/sdk/serverapi"
)

// TestAPICluster runs the server API against two nodes of a cluster (embedded NATS): each
// operation asked of one node acts on peers of both, and both nodes answer alike.
func TestAPICluster(t *testing.T) {
	var key auth.Key
	withKey := apiKeys(&key)
	n := startNATS(t)
	n1 := startNode(t, n, withKey)
	n2 := startNode(t, n, func(c *config.Config) { c.APIKeys = []string{key.Spec()} })
	waitCluster(t, n1, n2)
	admin := adminToken(t, key)
	api1, api2 := serverapi.New(n1.base, admin, nil), serverapi.New(n2.base, admin, nil)
	apis := []*serverapi.Client{api1, api2}
	id1, id2 := natsBus(t, n1).ID(), natsBus(t, n2).ID()

	a, _ := joinAs(t, n1, key, "sales", "alice")
	b, _ := joinAs(t, n2, key, "sales", "bob")
	a.expectPeerJoined(b.id)
	d, _ := joinAs(t, n2, key, "support", "dave")

	// Both nodes list both rooms and every peer with the node it is on.
	for i, api := range apis {
		eventually(t, "the rooms from node "+string(rune('1'+i)), func() bool {
			rooms, err := api.Rooms(ctx(t))
			notTransient(t, err)
			return err == nil && slices.Equal(rooms, []serverapi.Room{{Name: "sales", Peers: 2}, {Name: "support", Peers: 1}})
		})
		peers, err := api.Peers(ctx(t), "sales")
		if err != nil || len(peers) != 2 || peers[0].ID != a.id || peers[0].Node != id1 || peers[0].Identity != "alice" ||
			peers[1].ID != b.id || peers[1].Node != id2 || peers[1].Name != "Bob" {
			t.Fatalf("peers from node %d: %+v, %v", i+1, peers, err)
		}
		p, err := api.Peer(ctx(t), "support", d.id)
		if err != nil || p.Node != id2 || p.Identity != "dave" {
			t.Fatalf("peer from node %d: %+v, %v", i+1, p, err)
		}
	}

	// Messages: to the room from either node reach both nodes' peers; to a peer on the other
	// node, that peer only.
	if err := api2.SendMessage(ctx(t), "sales", "", "from node 2"); err != nil {
		t.Fatal(err)
	}
	a.expectServerMessage(`"from node 2"`)
	b.expectServerMessage(`"from node 2"`)
	if err := api1.SendMessage(ctx(t), "sales", b.id, "for bob"); err != nil {
		t.Fatal(err)
	}
	b.expectServerMessage(`"for bob"`)
	if err := api1.SendMessage(ctx(t), "support", "", 1); err != nil {
		t.Fatal(err)
	}
	d.expectServerMessage(`1`)
	if err := api2.SendMessage(ctx(t), "sales", a.id, "for alice"); err != nil {
		t.Fatal(err)
	}
	a.expectServerMessage(`"for alice"`)

	// A meta update asked of node 1 for a peer on node 2 is announced on both and listed by both.
	if err := api1.UpdateMeta(ctx(t), "sales", b.id, map[string]string{"role": "host"}); err != nil {
		t.Fatal(err)
	}
	a.expectPeerUpdated(b.id, `{"role":"host"}`)
	b.expectPeerUpdated(b.id, `{"role":"host"}`)
	for i, api := range apis {
		eventually(t, "the new meta from node "+string(rune('1'+i)), func() bool {
			p, err := api.Peer(ctx(t), "sales", b.id)
			notTransient(t, err)
			return err == nil && string(p.Meta) == `{"role":"host"}`
		})
	}

	// Remove, asked of node 1, of a peer on node 2: the peer is closed, both nodes' peers see
	// it leave, and its resume token is dead on any node.
	cTok := mint(t, key, grant{identity: "carol", room: "sales"})
	c := dial(t, n2)
	wc := c.join("sales", map[string]any{"token": cTok})
	a.expectPeerJoined(c.id)
	b.expectPeerJoined(c.id)
	if err := api1.RemovePeer(ctx(t), "sales", c.id); err != nil {
		t.Fatal(err)
	}
	c.expectRemoved("removed")
	a.expectPeerLeft(c.id, "removed")
	b.expectPeerLeft(c.id, "removed")
	for _, ts := range []*testServer{n2, n1} {
		c2 := dial(t, ts)
		w2 := c2.join("sales", map[string]any{"token": cTok, "resume": wc.Resume})
		if w2.Resumed || c2.id == c.id {
			t.Fatalf("a removed peer's resume token took its presence back: %s", w2.Raw)
		}
		a.expectPeerJoined(c2.id)
		b.expectPeerJoined(c2.id)
		c2.send(map[string]any{"type": "leave"})
		a.expectPeerLeft(c2.id, "left")
		b.expectPeerLeft(c2.id, "left")
	}
	apiError(t, api2.RemovePeer(ctx(t), "sales", c.id), 404, serverapi.CodePeerNotFound)

	// Close, asked of node 2: every peer of both nodes is removed; both nodes forget the room.
	if n, err := api2.CloseRoom(ctx(t), "sales"); err != nil || n != 2 {
		t.Fatalf("close: %d, %v", n, err)
	}
	a.expectRemoved("room-closed")
	b.expectRemoved("room-closed")
	for i, api := range apis {
		eventually(t, "the room to close on node "+string(rune('1'+i)), func() bool {
			rooms, err := api.Rooms(ctx(t))
			notTransient(t, err)
			return err == nil && slices.Equal(rooms, []serverapi.Room{{Name: "support", Peers: 1}})
		})
		_, err := api.Peers(ctx(t), "sales")
		apiError(t, err, 404, serverapi.CodeRoomNotFound)
	}

	// Both nodes refuse a missing token and a token without admin.
	join := mint(t, key, grant{identity: "alice", room: "sales"})
	for _, ts := range []*testServer{n1, n2} {
		if status, _, code := rawAPI(t, "GET", ts.base+"/api/v1/rooms", "", "", ""); status != 401 || code != serverapi.CodeTokenMissing {
			t.Fatalf("no token: %d %s", status, code)
		}
		_, err := serverapi.New(ts.base, join, nil).Rooms(ctx(t))
		apiError(t, err, 403, serverapi.CodeAdminNotGranted)
	}
}

// notTransient fails the test at once on an error that waiting will not cure: anything but a
// not-found (a replica still catching up) or 503.
func notTransient(t *testing.T, err error) {
	t.Helper()
	var e *serverapi.Error
	if err != nil && (!errors.As(err, &e) || (e.Status != 404 && e.Status != 503)) {
		t.Fatalf("server API: %v", err)
	}
}
