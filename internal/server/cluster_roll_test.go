package server_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/switchboard-rtc/switchboard/internal/config"
	"github.com/switchboard-rtc/switchboard/internal/server"
)

// rollNode is a cluster node that a test stops (SIGTERM: server shutdown with restart
// semantics) and starts again in-process on the same address.
type rollNode struct {
	t      *testing.T
	mod    func(*config.Config)
	addr   string // "127.0.0.1:0" until the first start
	srv    *server.Server
	cancel context.CancelFunc
	done   chan error
}

func newRollNode(t *testing.T, mod func(*config.Config)) *rollNode {
	t.Helper()
	r := &rollNode{t: t, mod: mod, addr: "127.0.0.1:0"}
	r.start()
	t.Cleanup(func() {
		if r.srv != nil {
			r.stop()
		}
	})
	return r
}

func (r *rollNode) start() {
	r.t.Helper()
	cfg := config.Default()
	cfg.Listen = r.addr
	cfg.ShutdownTimeout = 5 * time.Second
	cfg.TURN = false
	r.mod(&cfg)
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	if testing.Verbose() {
		log = slog.New(slog.NewTextHandler(newTestWriter(r.t), &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	srv, err := server.New(cfg, log)
	if err != nil {
		r.t.Fatalf("server.New: %v", err)
	}
	r.addr = srv.Addr().String()
	ctx, cancel := context.WithCancel(context.Background())
	r.srv, r.cancel, r.done = srv, cancel, make(chan error, 1)
	go func() { r.done <- srv.Run(ctx) }()
}

// stop shuts the node down as SIGTERM does and waits until it is gone (its presences taken
// over by the other nodes, or the grace over).
func (r *rollNode) stop() {
	r.t.Helper()
	r.cancel()
	select {
	case err := <-r.done:
		if err != nil {
			r.t.Errorf("server.Run: %v", err)
		}
	case <-time.After(15 * time.Second):
		r.t.Fatalf("node %s did not stop", r.addr)
	}
	r.srv = nil
}

func (r *rollNode) url() string { return "ws://" + r.addr + "/ws" }

// rollFleet places the clients: each reconnects to a node other than the one it lost.
type rollFleet struct {
	mu    sync.Mutex
	nodes []*rollNode
	down  int // the node stopped now, -1: none
	next  int
}

// pick returns the URL of a live node other than avoid, round-robin.
func (f *rollFleet) pick(avoid string) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	for range len(f.nodes) {
		f.next = (f.next + 1) % len(f.nodes)
		if u := f.nodes[f.next].url(); f.next != f.down && u != avoid {
			return u
		}
	}
	return f.nodes[f.next].url()
}

func (f *rollFleet) setDown(i int) {
	f.mu.Lock()
	f.down = i
	f.mu.Unlock()
}

// rollClient is a raw WebSocket client that resumes as the SDK does: it keeps the highest
// seq it received and sends it as last; every relay goes with an id and stays queued until
// acked, and after a resumed welcome the unacked ones go again, in order, with retry. It
// sends numbered messages to its partner and checks the partner's arrive once, in order.
type rollClient struct {
	t     *testing.T
	name  string
	fleet *rollFleet
	room  string

	wmu sync.Mutex // writes, in order

	mu       sync.Mutex
	conn     *websocket.Conn
	url      string
	id       string
	partner  string
	token    string
	last     uint64
	online   bool
	out      []int // relays not acked yet
	sent     int
	got      int // the partner's last message received
	lost     int // partner messages skipped (a crash)
	dupes    int // events at or below last, dropped
	resumes  int
	restored int
	gaps     int
	faults   []string
	changed  chan struct{}
	crashed  bool // its node crashed (TestClusterNodeCrashPeersResume)
	// knows: its node knows the partner (it listed it in the welcome, or announced it)
	knows bool
}

func newRollClient(t *testing.T, f *rollFleet, name, room, url string) *rollClient {
	return &rollClient{t: t, name: name, fleet: f, room: room, url: url, changed: make(chan struct{}, 1)}
}

func (c *rollClient) fault(format string, args ...any) {
	c.faults = append(c.faults, c.name+": "+fmt.Sprintf(format, args...))
}

// connect dials and joins (resuming once it has a token) until it is welcomed or ctx ends.
func (c *rollClient) connect(ctx context.Context) error {
	for attempt := 0; ; attempt++ {
		if err := ctx.Err(); err != nil {
			return err
		}
		if attempt > 0 {
			select { // back off a moment: the cluster may still be learning of the drain
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(20 * time.Millisecond):
			}
		}
		c.mu.Lock()
		url, token, last := c.url, c.token, c.last
		c.mu.Unlock()
		if attempt > 0 {
			url = c.fleet.pick(url)
			c.mu.Lock()
			c.url = url
			c.mu.Unlock()
		}
		dctx, cancel := context.WithTimeout(ctx, waitFor)
		conn, _, err := websocket.Dial(dctx, url, nil)
		cancel()
		if err != nil {
			continue
		}
		conn.SetReadLimit(1 << 20)
		join := map[string]any{"type": "join", "room": c.room, "id": "join"}
		if token != "" {
			join["resume"], join["last"] = token, last
		}
		b, _ := json.Marshal(join)
		wctx, cancel := context.WithTimeout(ctx, waitFor)
		err = conn.Write(wctx, websocket.MessageText, b)
		var w msg
		if err == nil {
			var data []byte
			_, data, err = conn.Read(wctx)
			if err == nil {
				err = json.Unmarshal(data, &w)
				w.Raw = string(data)
			}
		}
		cancel()
		if err != nil || w.Type != "welcome" {
			conn.CloseNow()
			continue // refused (unavailable while the cluster learns), or the node went
		}
		c.welcomed(conn, w, token != "")
		return nil
	}
}

// welcomed takes the new connection: after a resume, the unacked relays go again first.
func (c *rollClient) welcomed(conn *websocket.Conn, w msg, resuming bool) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	c.mu.Lock()
	c.conn, c.token = conn, w.Resume
	switch {
	case c.id == "":
		c.id = w.peerID()
	case w.peerID() != c.id:
		c.fault("id changed from %s to %s", c.id, w.peerID())
	}
	if resuming {
		if !w.Resumed {
			c.fault("started over: %s", w.Raw)
		}
		c.resumes++
		if w.Restored {
			c.restored++
		}
		if w.Gap {
			c.gaps++
		}
	}
	out := append([]int(nil), c.out...)
	partner := c.partner
	c.online = true
	c.mu.Unlock()
	for _, n := range out {
		c.write(conn, fmt.Sprintf(`{"type":"message","target":%q,"id":%d,"retry":true,"data":{"n":%d}}`, partner, n, n))
	}
	select {
	case c.changed <- struct{}{}:
	default:
	}
}

// write writes s on conn; a failure is the connection going (the reader sees it). Under wmu.
func (c *rollClient) write(conn *websocket.Conn, s string) {
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	_ = conn.Write(ctx, websocket.MessageText, []byte(s))
}

// run reads, and reconnects whenever the connection goes, until ctx ends.
func (c *rollClient) run(ctx context.Context, wg *sync.WaitGroup) {
	defer wg.Done()
	for {
		c.mu.Lock()
		conn := c.conn
		c.mu.Unlock()
		err := c.read(ctx, conn)
		c.mu.Lock()
		c.online = false
		c.mu.Unlock()
		conn.CloseNow()
		if ctx.Err() != nil {
			return
		}
		if code := websocket.CloseStatus(err); code != websocket.StatusServiceRestart && code != -1 {
			c.mu.Lock()
			c.fault("connection closed %v", err)
			c.mu.Unlock()
		}
		select {
		case c.changed <- struct{}{}:
		default:
		}
		if c.connect(ctx) != nil {
			return
		}
	}
}

func (c *rollClient) read(ctx context.Context, conn *websocket.Conn) error {
	for {
		_, data, err := conn.Read(ctx)
		if err != nil {
			return err
		}
		var m msg
		if err := json.Unmarshal(data, &m); err != nil {
			return err
		}
		m.Raw = string(data)
		c.handle(m)
	}
}

func (c *rollClient) handle(m msg) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if m.Seq != 0 {
		if m.Seq <= c.last {
			c.dupes++
			return
		}
		c.last = m.Seq
	}
	switch m.Type {
	case "message":
		var v struct{ N int }
		if err := json.Unmarshal(m.Data, &v); err != nil || m.From != c.partner {
			c.fault("unexpected %s", m.Raw)
			return
		}
		switch {
		case v.N <= c.got:
			c.fault("message %d again after %d", v.N, c.got)
		case v.N > c.got+1:
			c.lost += v.N - c.got - 1
			c.got = v.N
		default:
			c.got = v.N
		}
	case "ack":
		var n int
		if json.Unmarshal(m.ID, &n) == nil {
			i := 0
			for i < len(c.out) && c.out[i] <= n {
				i++
			}
			c.out = c.out[i:]
		}
	case "error":
		// A node whose bus crashed under it (in-process, the sockets outlive the crash a
		// moment) refuses relays: answered, so gone; its partner counts it lost. A real
		// kill -9 answers nothing.
		if m.Code != "unavailable" || !c.crashed {
			c.fault("unexpected %s", m.Raw)
		}
		var n int
		if json.Unmarshal(m.ID, &n) == nil {
			i := 0
			for i < len(c.out) && c.out[i] <= n {
				i++
			}
			c.out = c.out[i:]
		}
	case "resume-token":
		c.token = m.Resume
	case "peer-joined":
		if m.peerID() != c.partner {
			c.fault("unexpected %s", m.Raw)
		}
		c.knows = true
	default:
		c.fault("unexpected %s", m.Raw)
	}
}

// send queues relay n+1 to the partner, written now when online.
func (c *rollClient) send() {
	c.mu.Lock()
	c.sent++
	n := c.sent
	c.out = append(c.out, n)
	conn, online, partner := c.conn, c.online, c.partner
	c.mu.Unlock()
	if online {
		c.wmu.Lock()
		c.write(conn, fmt.Sprintf(`{"type":"message","target":%q,"id":%d,"data":{"n":%d}}`, partner, n, n))
		c.wmu.Unlock()
	}
}

// rollPairs starts pairs of clients, the two of each pair on different nodes, relaying to
// each other every 20 ms (bounded) until stop closes.
type rollPairs struct {
	t       *testing.T
	clients []*rollClient
	readers sync.WaitGroup
	senders sync.WaitGroup
	cancel  context.CancelFunc
	stop    chan struct{}
}

func startPairs(t *testing.T, f *rollFleet, pairs int) *rollPairs {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	p := &rollPairs{t: t, cancel: cancel, stop: make(chan struct{})}
	t.Cleanup(p.end)
	for i := range pairs {
		room := fmt.Sprintf("pair-%d", i)
		a := newRollClient(t, f, fmt.Sprintf("%s/a", room), room, f.nodes[(2*i)%len(f.nodes)].url())
		b := newRollClient(t, f, fmt.Sprintf("%s/b", room), room, f.nodes[(2*i+1)%len(f.nodes)].url())
		for _, c := range []*rollClient{a, b} {
			if err := c.connect(ctx); err != nil {
				t.Fatalf("%s: %v", c.name, err)
			}
		}
		a.partner, b.partner = b.id, a.id
		b.knows = true // a was in b's welcome
		p.clients = append(p.clients, a, b)
	}
	for _, c := range p.clients {
		p.readers.Add(1)
		go c.run(ctx, &p.readers)
	}
	// A relay to a partner whose join has not reached the sender's node yet is unknown-target.
	p.waitAll("the partner known", waitFor, func(c *rollClient) bool { return c.knows })
	for _, c := range p.clients {
		p.senders.Add(1)
		go func() {
			defer p.senders.Done()
			tick := time.NewTicker(20 * time.Millisecond)
			defer tick.Stop()
			for range 3000 { // a minute's worth at most
				select {
				case <-p.stop:
					return
				case <-tick.C:
				}
				c.send()
			}
		}()
	}
	return p
}

// end stops everything (idempotent).
func (p *rollPairs) end() {
	select {
	case <-p.stop:
	default:
		close(p.stop)
	}
	p.senders.Wait()
	p.cancel()
	p.readers.Wait()
	for _, c := range p.clients {
		c.mu.Lock()
		if c.conn != nil {
			c.conn.CloseNow()
		}
		c.mu.Unlock()
	}
}

// waitAll waits until cond holds for every client (checked whenever one changes), failing
// after d.
func (p *rollPairs) waitAll(what string, d time.Duration, cond func(*rollClient) bool) {
	p.t.Helper()
	deadline := time.Now().Add(d)
	for _, c := range p.clients {
		for {
			c.mu.Lock()
			ok := cond(c)
			c.mu.Unlock()
			if ok {
				break
			}
			if time.Now().After(deadline) {
				var states []string
				for _, x := range p.clients {
					x.mu.Lock()
					states = append(states, fmt.Sprintf("%s on %s: online %v sent %d unacked %v got %d lost %d last %d resumes %d faults %v",
						x.name, x.url, x.online, x.sent, x.out[:min(len(x.out), 5)], x.got, x.lost, x.last, x.resumes, x.faults))
					x.mu.Unlock()
				}
				p.t.Fatalf("%s: %s not within %v\n%s", c.name, what, d, strings.Join(states, "\n"))
			}
			select {
			case <-c.changed:
			case <-time.After(10 * time.Millisecond): // sends and acks have no signal of their own
			}
		}
	}
}

// settle stops sending and waits until every relay is acked and received; it returns the
// totals.
func (p *rollPairs) settle() (sent, resumes, restored, gaps, lost, dupes int, faults []string) {
	p.t.Helper()
	close(p.stop)
	p.senders.Wait()
	byID := map[string]*rollClient{}
	for _, c := range p.clients {
		byID[c.id] = c
	}
	p.waitAll("every relay acked and received", 20*time.Second, func(c *rollClient) bool {
		partner := byID[c.partner]
		partner.mu.Lock()
		want := partner.sent
		partner.mu.Unlock()
		return len(c.out) == 0 && c.got >= want
	})
	for _, c := range p.clients {
		c.mu.Lock()
		sent += c.sent
		resumes += c.resumes
		restored += c.restored
		gaps += c.gaps
		lost += c.lost
		dupes += c.dupes
		faults = append(faults, c.faults...)
		c.mu.Unlock()
	}
	return
}

func startRollCluster(t *testing.T, n *natsServer, mod func(*config.Config)) *rollFleet {
	t.Helper()
	f := &rollFleet{down: -1}
	for range 3 {
		f.nodes = append(f.nodes, newRollNode(t, func(c *config.Config) {
			c.NATS = n.url()
			c.NATSHeartbeat = testHeartbeat
			c.NATSNodeTimeout = testNodeTimeout
			c.ResumeGrace = 5 * time.Second
			if mod != nil {
				mod(c)
			}
		}))
	}
	f.waitCluster(t)
	return f
}

// waitCluster waits until every node knows the others and takes joins.
func (f *rollFleet) waitCluster(t *testing.T) {
	t.Helper()
	eventually(t, "the cluster to form", func() bool {
		for _, nd := range f.nodes {
			b := natsBusOf(t, nd.srv)
			if b.Nodes() != len(f.nodes) || b.Ready() != nil {
				return false
			}
		}
		return true
	})
}
