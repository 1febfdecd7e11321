package server_test

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/switchboard-rtc/switchboard/internal/auth"
	"github.com/switchboard-rtc/switchboard/internal/config"
	"github.com/switchboard-rtc/switchboard/protocol"
)

// wirePeer is a peer object of a frame, identity included.
type wirePeer struct {
	ID       string          `json:"id"`
	Identity string          `json:"identity"`
	Name     string          `json:"name"`
	Meta     json.RawMessage `json:"meta"`
}

func (m msg) fullPeer(t *testing.T) wirePeer {
	t.Helper()
	var p wirePeer
	if err := json.Unmarshal(m.Peer, &p); err != nil {
		t.Fatalf("peer of %s: %v", m.Raw, err)
	}
	return p
}

// peerList returns room's peers as ts's hub lists them: "id name meta @node" strings.
func peerList(t *testing.T, ts *testServer, room string) []string {
	t.Helper()
	ps, err := ts.Hub().Peers(context.Background(), room)
	if err != nil {
		return []string{err.Error()}
	}
	var out []string
	for _, p := range ps {
		out = append(out, fmt.Sprintf("%s %s %s @%s", p.Info.ID, p.Info.Name, p.Info.Meta, p.Node))
	}
	return out
}

// The server API's bus operations, called on either node, act on peers wherever they are.
func TestClusterAdminAcrossNodes(t *testing.T) {
	n := startNATS(t)
	// No node dies here: a long node timeout keeps a loaded machine from faking one.
	slow := func(c *config.Config) { c.NATSNodeTimeout = time.Minute }
	n1, n2 := startNode(t, n, slow), startNode(t, n, slow)
	waitCluster(t, n1, n2)
	id1, id2 := natsBus(t, n1).ID(), natsBus(t, n2).ID()
	ctx := context.Background()

	a, b, c := dial(t, n1), dial(t, n2), dial(t, n2)
	a.join("team", map[string]any{"name": "Ada"})
	wb := b.join("team", map[string]any{"name": "Bob"})
	a.expect("peer-joined")
	c.join("team", map[string]any{"name": "Cy"})
	a.expect("peer-joined")
	b.expect("peer-joined")

	// Rooms and Peers: the same from both nodes.
	want := []string{a.id + " Ada  @" + id1, b.id + " Bob  @" + id2, c.id + " Cy  @" + id2}
	for _, ts := range []*testServer{n1, n2} {
		eventually(t, "the room on every node", func() bool { return slices.Equal(peerList(t, ts, "team"), want) })
		rooms, err := ts.Hub().Rooms(ctx)
		if err != nil || len(rooms) != 1 || rooms[0].Name != "team" || rooms[0].Peers != 3 {
			t.Fatalf("rooms: %v %v", rooms, err)
		}
	}

	// Remove Bob (node 2) from node 1: an error then a close for him, peer-left removed for
	// the others, and his resume token is dead.
	if err := n1.Hub().Remove(ctx, "team", protocol.PeerID(b.id)); err != nil {
		t.Fatal(err)
	}
	b.expectRemoved("removed")
	for _, cl := range []*client{a, c} {
		if pl := cl.expect("peer-left"); pl.peerID() != b.id || pl.Reason != "removed" {
			t.Fatalf("peer-left: %s", pl.Raw)
		}
	}
	back := dial(t, n2)
	if w := back.join("team", map[string]any{"resume": wb.Resume}); w.Resumed || w.peerID() == b.id {
		t.Fatalf("the removed peer resumed: %s", w.Raw)
	}
	back.send(map[string]any{"type": "leave"})
	for _, cl := range []*client{a, c} {
		cl.expect("peer-joined")
		cl.expect("peer-left")
	}

	// Notify one peer across nodes, then the whole room.
	if err := n1.Hub().Notify(ctx, "team", protocol.PeerID(c.id), []byte(`{"n":1}`)); err != nil {
		t.Fatal(err)
	}
	if m := c.expect("server-message"); string(m.Data) != `{"n":1}` {
		t.Fatalf("server-message: %s", m.Raw)
	}
	if err := n2.Hub().Notify(ctx, "team", "", []byte(`"all"`)); err != nil {
		t.Fatal(err)
	}
	for _, cl := range []*client{a, c} {
		if m := cl.expect("server-message"); string(m.Data) != `"all"` {
			t.Fatalf("server-message: %s", m.Raw)
		}
	}

	// UpdateMeta of Ada (node 1) from node 2: both peers hear it, both nodes list it.
	if err := n2.Hub().UpdateMeta(ctx, "team", protocol.PeerID(a.id), []byte(`{"role":"host"}`)); err != nil {
		t.Fatal(err)
	}
	for _, cl := range []*client{a, c} {
		p := cl.expect("peer-updated").fullPeer(t)
		if p.ID != a.id || p.Name != "Ada" || string(p.Meta) != `{"role":"host"}` {
			t.Fatalf("peer-updated: %+v", p)
		}
	}
	want = []string{a.id + ` Ada {"role":"host"} @` + id1, c.id + " Cy  @" + id2}
	for _, ts := range []*testServer{n1, n2} {
		eventually(t, "the new meta on every node", func() bool { return slices.Equal(peerList(t, ts, "team"), want) })
	}
	late := dial(t, n2)
	if w := late.join("team", nil); len(w.Peers) != 2 || string(w.Peers[0].Meta) != `{"role":"host"}` {
		t.Fatalf("welcome after the update: %s", w.Raw)
	}

	// CloseRoom from node 1 (once it knows the latecomer): everyone, on both nodes, is removed.
	eventually(t, "node 1 to know the latecomer", func() bool { return len(peerList(t, n1, "team")) == 3 })
	count, err := n1.Hub().CloseRoom(ctx, "team")
	if err != nil || count != 3 {
		t.Fatalf("close room: %d %v", count, err)
	}
	for _, cl := range []*client{a, c, late} {
		cl.expectRemoved("room-closed")
	}
	for _, ts := range []*testServer{n1, n2} {
		eventually(t, "no rooms", func() bool {
			rooms, err := ts.Hub().Rooms(ctx)
			return err == nil && len(rooms) == 0
		})
	}
}

// One identity holds one presence per room across nodes: a second connection with a token
// of the same sub, on another node, takes over even in a full room, and the first connection
// is closed with "replaced".
func TestClusterIdentityTakeover(t *testing.T) {
	n := startNATS(t)
	key := auth.NewKey()
	mod := func(c *config.Config) {
		c.APIKeys = []string{key.Spec()}
		c.MaxPeers = 2
		c.NATSNodeTimeout = time.Minute
	}
	n1, n2 := startNode(t, n, mod), startNode(t, n, mod)
	waitCluster(t, n1, n2)
	token := func(identity string) string {
		tok, err := auth.Mint(key, auth.NewClaims(identity, "call", time.Now(), time.Hour))
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}

	first := dial(t, n1)
	first.join("call", map[string]any{"token": token("alice")})
	bob := dial(t, n2)
	bob.join("call", map[string]any{"token": token("bob")})
	first.expect("peer-joined")
	carol := dial(t, n2)
	carol.send(map[string]any{"type": "join", "token": token("carol")})
	carol.expectError("room-full")

	second := dial(t, n2)
	w := second.join("call", map[string]any{"token": token("alice")})
	var welcome struct {
		Peers []wirePeer `json:"peers"`
	}
	if err := json.Unmarshal([]byte(w.Raw), &welcome); err != nil {
		t.Fatal(err)
	}
	// The presence on its way out is neither in the newcomer's welcome nor told of it.
	if len(welcome.Peers) != 1 || welcome.Peers[0].Identity != "bob" {
		t.Fatalf("welcome of the second alice: %s", w.Raw)
	}
	if m := first.next(); m.Type != "error" || m.Code != "replaced" {
		t.Fatalf("the replaced alice got %s, want error replaced", m.Raw)
	}
	first.expectClose(websocket.StatusPolicyViolation)
	if p := bob.expect("peer-joined").fullPeer(t); p.ID != second.id || p.Identity != "alice" {
		t.Fatalf("peer-joined: %+v", p)
	}
	for _, cl := range []*client{bob, second} {
		if pl := cl.expect("peer-left"); pl.peerID() != first.id || pl.Reason != "replaced" {
			t.Fatalf("peer-left: %s", pl.Raw)
		}
	}
	for _, ts := range []*testServer{n1, n2} {
		eventually(t, "one alice on every node", func() bool {
			ps := peerList(t, ts, "call")
			return len(ps) == 2 && ps[0][:len(bob.id)] == bob.id && ps[1][:len(second.id)] == second.id
		})
	}
	// Signaling goes on between the survivors.
	bob.send(map[string]any{"type": "message", "target": second.id, "data": 1})
	if m := second.expect("message"); m.From != bob.id {
		t.Fatalf("relay: %s", m.Raw)
	}
}
