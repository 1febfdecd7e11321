package server_test

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
	natsserver "github.com/nats-io/nats-server/v2/server"
	"github.com/pion/webrtc/v4"

	"github.com/switchboard-rtc/switchboard/internal/bus/natsbus"
	"github.com/switchboard-rtc/switchboard/internal/config"
	"github.com/switchboard-rtc/switchboard/internal/testserver"
	"github.com/switchboard-rtc/switchboard/sdk"
)

// Cluster timings for tests: a dead node is noticed within testNodeTimeout + a heartbeat. The
// timeout is generous so a node stalled by a loaded machine (race detector, 2 shared cores) is
// not dropped by mistake.
const (
	testHeartbeat   = 100 * time.Millisecond
	testNodeTimeout = 2 * time.Second
)

// natsServer is a real NATS server embedded in the test process on a loopback port.
type natsServer struct {
	t     *testing.T
	port  int
	s     *natsserver.Server
	store string // JetStream's directory; "" without JetStream
}

func startNATS(t *testing.T) *natsServer {
	t.Helper()
	n := &natsServer{t: t, port: natsserver.RANDOM_PORT}
	n.start()
	t.Cleanup(n.stop)
	return n
}

// startNATSJS is startNATS with JetStream (the cluster's resume secret and token ledger).
func startNATSJS(t *testing.T) *natsServer {
	t.Helper()
	n := &natsServer{t: t, port: natsserver.RANDOM_PORT, store: t.TempDir()}
	n.start()
	t.Cleanup(n.stop)
	return n
}

// start runs the server, on the same port as before when restarted.
func (n *natsServer) start() {
	n.t.Helper()
	s, err := natsserver.NewServer(&natsserver.Options{Host: "127.0.0.1", Port: n.port, NoLog: true, NoSigs: true,
		JetStream: n.store != "", StoreDir: n.store})
	if err != nil {
		n.t.Fatalf("nats: %v", err)
	}
	go s.Start()
	if !s.ReadyForConnections(waitFor) {
		n.t.Fatal("nats server not ready")
	}
	n.s = s
	n.port = s.Addr().(*net.TCPAddr).Port
}

func (n *natsServer) url() string { return fmt.Sprintf("nats://127.0.0.1:%d", n.port) }

func (n *natsServer) stop() {
	if n.s != nil {
		n.s.Shutdown()
		n.s.WaitForShutdown()
		n.s = nil
	}
}

// startNode runs a full server joined to the cluster on n, with fast heartbeats.
func startNode(t *testing.T, n *natsServer, mod func(*config.Config)) *testServer {
	t.Helper()
	return startServer(t, func(c *config.Config) {
		c.NATS = n.url()
		c.NATSHeartbeat = testHeartbeat
		c.NATSNodeTimeout = testNodeTimeout
		if mod != nil {
			mod(c)
		}
	})
}

func natsBus(t *testing.T, ts *testServer) *natsbus.Bus {
	t.Helper()
	b, ok := ts.Hub().Bus().(*natsbus.Bus)
	if !ok {
		t.Fatalf("bus is %T, not the NATS bus", ts.Hub().Bus())
	}
	return b
}

// eventually polls cond until it holds, failing the test after waitFor.
func eventually(t *testing.T, what string, cond func() bool) {
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

// waitCluster waits until every node knows all the others and takes joins.
func waitCluster(t *testing.T, nodes ...*testServer) {
	t.Helper()
	eventually(t, "the cluster to form", func() bool {
		for _, ts := range nodes {
			b := natsBus(t, ts)
			if b.Nodes() != len(nodes) || b.Ready() != nil {
				return false
			}
		}
		return true
	})
}

func status(t *testing.T, url string) int {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

func TestClusterPresenceRelayAndOrdering(t *testing.T) {
	n := startNATS(t)
	n1, n2, n3 := startNode(t, n, nil), startNode(t, n, nil), startNode(t, n, nil)
	waitCluster(t, n1, n2, n3)

	a, b, c := dial(t, n1), dial(t, n2), dial(t, n3)
	wa := a.join("standup", map[string]any{"name": "Ada", "meta": map[string]any{"avatar": "fox"}})
	if len(wa.Peers) != 0 {
		t.Fatalf("first welcome: %s", wa.Raw)
	}
	wb := b.join("standup", map[string]any{"name": "Grace"})
	if len(wb.Peers) != 1 || wb.Peers[0].ID != a.id || wb.Peers[0].Name != "Ada" || string(wb.Peers[0].Meta) != `{"avatar":"fox"}` {
		t.Fatalf("welcome on node 2 should list Ada from node 1 with her meta: %s", wb.Raw)
	}
	if pj := a.expect("peer-joined"); pj.peerID() != b.id {
		t.Fatalf("peer-joined on node 1: %s", pj.Raw)
	}
	wc := c.join("standup", nil)
	if len(wc.Peers) != 2 || wc.Peers[0].ID != a.id || wc.Peers[1].ID != b.id {
		t.Fatalf("welcome on node 3 should list Ada then Grace: %s", wc.Raw)
	}
	for _, cl := range []*client{a, b} {
		if pj := cl.expect("peer-joined"); pj.peerID() != c.id {
			t.Fatalf("peer-joined: %s", pj.Raw)
		}
	}

	// Relays across nodes keep the order per sender→target pair, both ways at once.
	const count = 300
	var wg sync.WaitGroup
	for _, p := range []struct{ from, to *client }{{a, b}, {b, a}, {c, a}} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range count {
				if err := p.from.c.Write(context.Background(), 1, fmt.Appendf(nil, `{"type":"message","target":%q,"data":{"n":%d}}`, p.to.id, i)); err != nil {
					t.Errorf("write: %v", err)
					return
				}
			}
		}()
	}
	wg.Wait()
	next := map[string]map[string]int{a.id: {}, b.id: {}}
	for range 3 * count {
		var m msg
		select {
		case m = <-a.msgs:
		case m = <-b.msgs:
		case <-time.After(waitFor):
			t.Fatal("relays missing")
		}
		if m.Type != "message" {
			t.Fatalf("got %s", m.Raw)
		}
		to := a.id
		if m.From == a.id {
			to = b.id
		}
		want := next[to][m.From]
		if string(m.Data) != fmt.Sprintf(`{"n":%d}`, want) {
			t.Fatalf("from %s to %s: got %s, want n=%d", m.From, to, m.Data, want)
		}
		next[to][m.From]++
	}

	// Broadcast reaches every other node once; unknown targets are refused as on one node.
	a.send(map[string]any{"type": "message", "broadcast": true, "data": "hi all", "id": 1})
	a.expect("ack")
	for _, cl := range []*client{b, c} {
		if m := cl.expect("message"); m.From != a.id || string(m.Data) != `"hi all"` {
			t.Fatalf("broadcast: %s", m.Raw)
		}
	}
	other := dial(t, n2)
	other.join("elsewhere", nil)
	a.send(map[string]any{"type": "offer", "target": other.id, "data": map[string]any{}, "id": 2})
	a.expectError("unknown-target")

	// Leave and close are announced on every node.
	b.send(map[string]any{"type": "leave"})
	for _, cl := range []*client{a, c} {
		if pl := cl.expect("peer-left"); pl.peerID() != b.id || pl.Reason != "left" {
			t.Fatalf("peer-left: %s", pl.Raw)
		}
	}
	if err := c.c.Close(websocket.StatusNormalClosure, "bye"); err != nil {
		t.Fatalf("close: %v", err)
	}
	if pl := a.expect("peer-left"); pl.peerID() != c.id || pl.Reason != "closed" {
		t.Fatalf("peer-left after close: %s", pl.Raw)
	}
	a.expectNothing(50 * time.Millisecond)
}

func TestClusterRoomLimitUnderConcurrentJoins(t *testing.T) {
	n := startNATS(t)
	const limit, tries = 4, 24
	nodes := []*testServer{
		startNode(t, n, func(c *config.Config) { c.MaxPeers = limit }),
		startNode(t, n, func(c *config.Config) { c.MaxPeers = limit }),
		startNode(t, n, func(c *config.Config) { c.MaxPeers = limit }),
	}
	waitCluster(t, nodes...)
	for round := range 3 { // several rooms: different coordinators
		room := fmt.Sprintf("capped-%d", round)
		clients := make([]*client, tries)
		for i := range clients {
			clients[i] = dial(t, nodes[i%len(nodes)])
		}
		start := make(chan struct{})
		var wg sync.WaitGroup
		for _, cl := range clients {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				_ = cl.c.Write(context.Background(), 1, fmt.Appendf(nil, `{"type":"join","room":%q}`, room))
			}()
		}
		close(start)
		wg.Wait()
		joined, full := 0, 0
		var in []*client
		for _, cl := range clients {
			switch m := cl.next(); {
			case m.Type == "welcome":
				joined++
				cl.id = m.peerID()
				in = append(in, cl)
			case m.Type == "error" && m.Code == "room-full":
				full++
			default:
				t.Fatalf("join answered %s", m.Raw)
			}
		}
		if joined != limit || full != tries-limit {
			t.Fatalf("room %s: %d joined and %d refused; want %d and %d", room, joined, full, limit, tries-limit)
		}
		// A place freed on one node can be taken from another.
		in[0].send(map[string]any{"type": "leave"})
		for _, cl := range in[1:] {
			for {
				if m := cl.next(); m.Type == "peer-left" {
					break
				}
			}
		}
		// The coordinator and the late joiner's node learn of the leave asynchronously: wait
		// for that node's replica (a welcome lists the joining node's view of the room), then
		// retry while the coordinator still counts the leaver.
		lateNode := nodes[(round+1)%len(nodes)]
		eventually(t, "the late node to hear the leave", func() bool { return len(peerList(t, lateNode, room)) == limit-1 })
		late := dial(t, lateNode)
		eventually(t, "a place in the room", func() bool {
			late.send(map[string]any{"type": "join", "room": room})
			m := late.next()
			if m.Type == "welcome" && len(m.Peers) != limit-1 {
				t.Fatalf("late welcome: %s", m.Raw)
			}
			return m.Type == "welcome"
		})
	}
}

func TestClusterNATSOutageAndRecovery(t *testing.T) {
	n := startNATS(t)
	const nodeTimeout = 500 * time.Millisecond
	mod := func(c *config.Config) { c.NATSNodeTimeout = nodeTimeout }
	n1, n2 := startNode(t, n, mod), startNode(t, n, mod)
	waitCluster(t, n1, n2)
	a, b := dial(t, n1), dial(t, n2)
	a.join("room", nil)
	b.join("room", nil)
	a.expect("peer-joined")

	n.stop()
	for _, ts := range []*testServer{n1, n2} {
		eventually(t, "readyz to fail", func() bool { return status(t, ts.base+"/readyz") == http.StatusServiceUnavailable })
		if got := status(t, ts.base+"/healthz"); got != http.StatusOK {
			t.Fatalf("healthz %d during the outage", got)
		}
	}
	late := dial(t, n1)
	late.send(map[string]any{"type": "join", "room": "room", "id": 1})
	late.expectError("unavailable")
	// Existing sockets stay open; what is relayed meanwhile may be lost (at most once).
	a.send(map[string]any{"type": "message", "target": b.id, "data": "during", "id": 7})
	a.expect("ack")

	// The outage outlasts the node timeout: nodes that cannot hear anyone judge no one.
	<-time.After(2 * nodeTimeout)
	n.start()
	for _, ts := range []*testServer{n1, n2} {
		eventually(t, "readyz to recover", func() bool { return status(t, ts.base+"/readyz") == http.StatusOK })
	}
	waitCluster(t, n1, n2)
	w := late.join("room", nil)
	if len(w.Peers) != 2 || w.Peers[0].ID != a.id || w.Peers[1].ID != b.id {
		t.Fatalf("welcome after recovery: %s", w.Raw)
	}
	for _, cl := range []*client{a, b} {
		pj := cl.next()
		if pj.Type == "message" && string(pj.Data) == `"during"` {
			pj = cl.next() // the relay sent during the outage made it
		}
		if pj.Type != "peer-joined" || pj.peerID() != late.id {
			t.Fatalf("peer-joined after recovery: %s", pj.Raw)
		}
	}
	b.send(map[string]any{"type": "message", "target": a.id, "data": "after"})
	if m := a.expect("message"); string(m.Data) != `"after"` {
		t.Fatalf("relay after recovery: %s", m.Raw)
	}
	// Nobody was reported gone, then or one node timeout later.
	a.expectNothing(nodeTimeout + 4*testHeartbeat)
	b.expectNothing(50 * time.Millisecond)
}

func TestClusterSDKPeersOnTwoNodes(t *testing.T) {
	n := startNATS(t)
	n1, n2 := startNode(t, n, nil), startNode(t, n, nil)
	waitCluster(t, n1, n2)
	ctx, cancel := context.WithTimeout(context.Background(), 2*waitFor)
	defer cancel()

	echo := func(p *sdk.Peer) {
		p.OnDataChannel(func(dc *webrtc.DataChannel) {
			dc.OnMessage(func(m webrtc.DataChannelMessage) { _ = dc.SendText("echo:" + string(m.Data)) })
		})
	}
	a, err := sdk.Dial(ctx, n1.base, "call", &sdk.Options{Name: "a", Loopback: true, OnPeer: echo})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	got := make(chan string, 1)
	b, err := sdk.Dial(ctx, n2.base, "call", &sdk.Options{Name: "b", Loopback: true, OnPeer: func(p *sdk.Peer) {
		dc, err := p.CreateDataChannel("chat", nil)
		if err != nil {
			t.Error(err)
			return
		}
		dc.OnOpen(func() { _ = dc.SendText("hello across nodes") })
		dc.OnMessage(func(m webrtc.DataChannelMessage) {
			select {
			case got <- string(m.Data):
			default:
			}
		})
	}})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	select {
	case s := <-got:
		if s != "echo:hello across nodes" {
			t.Fatalf("got %q", s)
		}
	case <-ctx.Done():
		t.Fatal("no data channel message across nodes")
	}
}

// A node started while NATS is down serves /healthz, refuses joins, and joins the cluster by
// itself when NATS comes up.
func TestClusterNodeStartsWithoutNATS(t *testing.T) {
	n := startNATS(t)
	n.stop()
	ts := startNode(t, n, nil)
	if got := status(t, ts.base+"/readyz"); got != http.StatusServiceUnavailable {
		t.Fatalf("readyz %d without NATS", got)
	}
	if got := status(t, ts.base+"/healthz"); got != http.StatusOK {
		t.Fatalf("healthz %d without NATS", got)
	}
	c := dial(t, ts)
	c.send(map[string]any{"type": "join", "room": "r"})
	c.expectError("unavailable")
	n.start()
	other := startNode(t, n, nil)
	waitCluster(t, ts, other)
	c.join("r", nil)
	d := dial(t, other)
	if w := d.join("r", nil); len(w.Peers) != 1 || w.Peers[0].ID != c.id {
		t.Fatalf("welcome: %s", w.Raw)
	}
}

// A lost connection resumed on the same node keeps its presence cluster-wide: the other node's
// peer sees no leave, and relays sent meanwhile across nodes are replayed. A token presented to
// another node is unknown there: the client gets a new presence (docs/cluster.md).
func TestClusterResumeOnSameNode(t *testing.T) {
	n := startNATS(t)
	n1, n2 := startNode(t, n, nil), startNode(t, n, nil)
	waitCluster(t, n1, n2)
	a, b := dial(t, n1), dial(t, n2)
	wa := a.join("r", nil)
	b.join("r", nil)
	a.expect("peer-joined")

	a.c.CloseNow() // lost, not closed
	eventually(t, "the presence to be kept", func() bool { return n1.Hub().Stats().Parked.Load() == 1 })
	for i := range 3 {
		b.send(map[string]any{"type": "message", "id": i, "target": a.id, "data": i})
		b.expect("ack")
	}
	a2 := dial(t, n1)
	a2.send(map[string]any{"type": "join", "room": "r", "resume": wa.Resume, "last": 1})
	w := a2.expect("welcome")
	if w.peerID() != a.id || !w.Resumed {
		t.Fatalf("resumed welcome: %s", w.Raw)
	}
	for i := range 3 {
		if m := a2.expect("message"); m.From != b.id || string(m.Data) != fmt.Sprint(i) {
			t.Fatalf("held message %d: %s", i, m.Raw)
		}
	}
	b.expectNothing(50 * time.Millisecond) // no peer-left, no peer-joined

	elsewhere := dial(t, n2)
	we := elsewhere.join("r", map[string]any{"resume": w.Resume})
	if we.Resumed || we.peerID() == a.id || len(we.Peers) != 2 {
		t.Fatalf("token on another node: %s", we.Raw)
	}
}

// One node loses its own NATS connection for a moment (the others keep theirs): what it missed
// meanwhile (a leave, a join on another node) reaches its peers after it reconnects, through
// the state syncs.
func TestClusterNodeMissesMessagesAndCatchesUp(t *testing.T) {
	n := startNATS(t)
	cut := testserver.NewCutter(t, fmt.Sprintf("127.0.0.1:%d", n.port))
	n1 := startNode(t, n, func(c *config.Config) { c.NATSNodeTimeout = time.Minute })
	n2 := startNode(t, n, func(c *config.Config) {
		c.NATS = "nats://" + cut.Addr()
		c.NATSNodeTimeout = time.Minute
	})
	waitCluster(t, n1, n2)
	a, b, x := dial(t, n1), dial(t, n2), dial(t, n1)
	a.join("r", nil)
	x.join("r", nil)
	a.expect("peer-joined")
	b.join("r", nil)
	a.expect("peer-joined")
	x.expect("peer-joined")

	if cut.Cut() == 0 {
		t.Fatal("node 2 was not connected through the proxy")
	}
	eventually(t, "node 2 to notice", func() bool { return natsBus(t, n2).Ready() != nil })
	x.send(map[string]any{"type": "leave"}) // published while node 2 is away: lost for it
	a.expect("peer-left")
	y := dial(t, n1)
	y.join("r", nil)
	a.expect("peer-joined")

	eventually(t, "node 2 to reconnect", func() bool { return natsBus(t, n2).Ready() == nil })
	got := map[string]string{}
	for len(got) < 2 {
		m := b.next()
		switch m.Type {
		case "peer-left", "peer-joined":
			got[m.Type] = m.peerID()
		default:
			t.Fatalf("unexpected %s", m.Raw)
		}
	}
	if got["peer-left"] != x.id || got["peer-joined"] != y.id {
		t.Fatalf("node 2's peer saw %v; want x (%s) gone and y (%s) arrived", got, x.id, y.id)
	}
	b.send(map[string]any{"type": "message", "target": y.id, "data": 1})
	if m := y.expect("message"); m.From != b.id {
		t.Fatalf("relay after catching up: %s", m.Raw)
	}
}
