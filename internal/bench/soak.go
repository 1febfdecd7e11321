package bench

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"
)

// The soak mode keeps clients busy for a long time while their connections are cut and their
// servers restart: --conns clients in rooms of --room-size each send a numbered message to
// every other member of their room every --interval; at random moments a client cuts its own
// connection (no close frame) and resumes, or leaves and joins again as someone new (churn).
// A connection the server ends (a restart's 1012, a drain) is resumed on the next --url.
// Clients resume as the SDKs do: join with the token and the last seq, re-send the messages
// not acked with "retry":true. Every --report it prints what was sent, acked and received and
// how many were lost (acked, never received) or received twice; the script beside it samples
// the servers.

type soakOptions struct {
	urls        []string
	conns       int
	roomSize    int
	sourceIPs   int
	dialTimeout time.Duration
	duration    time.Duration
	interval    time.Duration
	cutEvery    time.Duration // mean time between one client's cuts
	churnEvery  time.Duration // mean time between one client's leave-and-join
	report      time.Duration
}

type urlList []string

func (u *urlList) String() string     { return fmt.Sprint(*u) }
func (u *urlList) Set(s string) error { *u = append(*u, s); return nil }

func parseSoakOptions(args []string, stderr io.Writer) (*soakOptions, error) {
	o := &soakOptions{}
	var urls urlList
	fs := flag.NewFlagSet("switchboard bench soak", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Var(&urls, "url", "native server URL (repeat for the nodes of a cluster: clients spread over them and resume on the next)")
	fs.IntVar(&o.conns, "conns", 200, "clients")
	fs.IntVar(&o.roomSize, "room-size", 4, "clients per room")
	fs.IntVar(&o.sourceIPs, "source-ips", 8, "spread connections over source addresses 127.0.0.1..127.0.0.K")
	fs.DurationVar(&o.dialTimeout, "dial-timeout", 10*time.Second, "bound on one connection's handshake and join")
	fs.DurationVar(&o.duration, "duration", 30*time.Minute, "how long to run")
	fs.DurationVar(&o.interval, "interval", time.Second, "each client sends one message to each room peer this often")
	fs.DurationVar(&o.cutEvery, "cut-every", 2*time.Minute, "mean time between one client's connection cuts (0: none)")
	fs.DurationVar(&o.churnEvery, "churn-every", 5*time.Minute, "mean time between one client's leave and join as someone new (0: none)")
	fs.DurationVar(&o.report, "report", time.Minute, "print the counts this often")
	if err := fs.Parse(args); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrUsage, err)
	}
	o.urls = urls
	if len(o.urls) == 0 {
		o.urls = []string{defaultNativeURL}
	}
	if o.conns < 2 || o.roomSize < 2 || o.interval <= 0 || o.report <= 0 {
		return nil, fmt.Errorf("%w: --conns and --room-size must be at least 2, --interval and --report positive", ErrUsage)
	}
	return o, nil
}

// soakCounts are the run's totals.
type soakCounts struct {
	sent, acked, received, dup, lost, outOfOrder atomic.Int64
	cuts, churns, restarts                       atomic.Int64
	resumed, restored, startedOver, failures     atomic.Int64
	peerLeft                                     atomic.Int64
}

// soakRoom is what the members of one room know of each other: per sender and target, the
// highest message number acked by the server and the numbers received.
type soakRoom struct {
	mu       sync.Mutex
	members  map[string]bool     // peer ids in the room now
	acked    map[[2]string]int64 // (from, to) → highest acked number
	received map[[2]string]*soakGot
}

// soakGot is the numbers received from one sender by one target: all up to upTo, and those
// beyond it.
type soakGot struct {
	upTo  int64
	extra map[int64]bool
}

// add records n and reports whether it had been received before.
func (g *soakGot) add(n int64) (dup bool) {
	if n <= g.upTo || g.extra[n] {
		return true
	}
	if n != g.upTo+1 {
		if g.extra == nil {
			g.extra = map[int64]bool{}
		}
		g.extra[n] = true
		return false
	}
	g.upTo = n
	for g.extra[g.upTo+1] {
		delete(g.extra, g.upTo+1)
		g.upTo++
	}
	return false
}

func (g *soakGot) has(n int64) bool { return g != nil && (n <= g.upTo || g.extra[n]) }

func runSoak(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	o, err := parseSoakOptions(args, stderr)
	if err != nil {
		return err
	}
	if _, err := raiseNoFile(); err != nil {
		fmt.Fprintf(stderr, "raise the descriptor limit: %v\n", err)
	}
	var ds []*dialer
	for _, u := range o.urls {
		d, err := newDialer(u, protoNative, o.sourceIPs, o.dialTimeout)
		if err != nil {
			return err
		}
		defer d.close()
		ds = append(ds, d)
	}
	ctx, cancel := context.WithTimeout(ctx, o.duration)
	defer cancel()
	// The last moments only receive, so that what was acked has arrived when the run ends.
	quiet := time.Now().Add(o.duration - min(o.duration/4, 2*o.interval+2*time.Second))
	run := fmt.Sprintf("%08x", rand.Uint32())
	rooms := make([]*soakRoom, (o.conns+o.roomSize-1)/o.roomSize)
	for i := range rooms {
		rooms[i] = &soakRoom{members: map[string]bool{}, acked: map[[2]string]int64{}, received: map[[2]string]*soakGot{}}
	}
	var c soakCounts
	var wg sync.WaitGroup
	for i := range o.conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sc := &soakClient{o: o, ds: ds, slot: i, quiet: quiet, room: fmt.Sprintf("soak-%s-%d", run, i/o.roomSize), r: rooms[i/o.roomSize], c: &c, log: stderr}
			sc.live(ctx)
		}()
	}
	start := time.Now()
	tick := time.NewTicker(o.report)
	defer tick.Stop()
	for done := false; !done; {
		select {
		case <-tick.C:
		case <-ctx.Done():
			done = true
		}
		if done {
			wg.Wait()
			for _, r := range rooms {
				c.lost.Add(r.lostAtEnd())
			}
		}
		fmt.Fprintf(stdout, "%6.0fs sent %d acked %d received %d | cuts %d churns %d server-ended %d | resumed %d restored %d started-over %d failed %d | peer-left %d dup %d\n",
			time.Since(start).Seconds(), c.sent.Load(), c.acked.Load(), c.received.Load(), c.cuts.Load(), c.churns.Load(), c.restarts.Load(),
			c.resumed.Load(), c.restored.Load(), c.startedOver.Load(), c.failures.Load(), c.peerLeft.Load(), c.dup.Load())
	}
	fmt.Fprintf(stdout, "RESULT mode=soak conns=%d sent=%d acked=%d received=%d lost=%d dup=%d cuts=%d churns=%d server_ended=%d resumed=%d restored=%d started_over=%d failed=%d\n",
		o.conns, c.sent.Load(), c.acked.Load(), c.received.Load(), c.lost.Load(), c.dup.Load(), c.cuts.Load(), c.churns.Load(), c.restarts.Load(),
		c.resumed.Load(), c.restored.Load(), c.startedOver.Load(), c.failures.Load())
	return nil
}

// lostAtEnd counts messages acked by the server but never received by a member still in the
// room.
func (r *soakRoom) lostAtEnd() int64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	var lost int64
	for k, top := range r.acked {
		if !r.members[k[0]] || !r.members[k[1]] {
			continue // one of them left: what was in flight then is not owed
		}
		got := r.received[k]
		for n := int64(1); n <= top; n++ {
			if !got.has(n) {
				lost++
			}
		}
	}
	return lost
}

// soakClient is one client across its connections and identities.
type soakClient struct {
	o     *soakOptions
	ds    []*dialer
	slot  int
	quiet time.Time // no sending, cutting or churning after this
	room  string
	r     *soakRoom
	c     *soakCounts
	log   io.Writer

	peer, token string
	last        uint64
	nextURL     int
	seqOut      map[string]int64 // target → last number sent
	unacked     map[string]soakMsg
	conn        *client
}

type soakMsg struct {
	target string
	n      int64
}

// soakFrame is what the client reads from any frame.
type soakFrame struct {
	Type     string                `json:"type"`
	ID       string                `json:"id"`
	Peer     json.RawMessage       `json:"peer"`
	Peers    []struct{ ID string } `json:"peers"`
	Resume   string                `json:"resume"`
	Resumed  bool                  `json:"resumed"`
	Restored bool                  `json:"restored"`
	Seq      uint64                `json:"seq"`
	From     string                `json:"from"`
	Data     struct{ N int64 }     `json:"data"`
	Code     string                `json:"code"`
	Reason   string                `json:"reason"`
}

// live runs the client until ctx ends.
func (s *soakClient) live(ctx context.Context) {
	s.nextURL = s.slot % len(s.ds)
	for ctx.Err() == nil {
		if err := s.connect(ctx, s.token != ""); err != nil {
			// An attempt that failed (a node restarting, a refused join): try the next
			// node with the same token, as the SDKs do; the welcome says what came of it.
			if ctx.Err() == nil {
				s.c.failures.Add(1)
				s.nextURL = (s.nextURL + 1) % len(s.ds)
				_ = sleepCtx(ctx, 200*time.Millisecond)
			}
			continue
		}
		ended := s.session(ctx)
		s.conn.close()
		switch ended {
		case "churn":
			s.r.mu.Lock()
			delete(s.r.members, s.peer)
			s.r.mu.Unlock()
			s.token, s.peer = "", ""
		case "server":
			s.nextURL = (s.nextURL + 1) % len(s.ds)
			_ = sleepCtx(ctx, time.Duration(rand.Int64N(int64(250*time.Millisecond))))
		}
	}
	if s.conn != nil {
		s.conn.close()
	}
}

// connect dials and joins (resuming with the token when resume is set).
func (s *soakClient) connect(ctx context.Context, resume bool) error {
	c, err := s.ds[s.nextURL].dialOnly(ctx, s.slot)
	if err != nil {
		return err
	}
	s.conn = c
	var join []byte
	if resume {
		join = fmt.Appendf(nil, `{"type":"join","id":"j","room":%q,"resume":%q,"last":%d}`, s.room, s.token, s.last)
	} else {
		join = fmt.Appendf(nil, `{"type":"join","id":"j","room":%q}`, s.room)
		s.last, s.seqOut, s.unacked = 0, map[string]int64{}, map[string]soakMsg{}
	}
	hctx, cancel := context.WithTimeout(ctx, s.o.dialTimeout)
	defer cancel()
	if err := c.conn.Write(hctx, websocket.MessageText, join); err != nil {
		c.close()
		return fmt.Errorf("send join: %w", err)
	}
	for range 512 {
		b, err := c.readCtx(hctx)
		if err != nil {
			c.close()
			return fmt.Errorf("wait for welcome: %w", err)
		}
		var f soakFrame
		if json.Unmarshal(b, &f) != nil {
			continue
		}
		if f.Type == "error" {
			c.close()
			return fmt.Errorf("join: %s", f.Code)
		}
		if f.Type != "welcome" {
			continue
		}
		var self string
		_ = json.Unmarshal(f.Peer, &self)
		switch {
		case !resume:
		case f.Restored:
			s.c.restored.Add(1)
		case f.Resumed:
			s.c.resumed.Add(1)
		default:
			s.c.startedOver.Add(1)
			s.last, s.seqOut, s.unacked = 0, map[string]int64{}, map[string]soakMsg{}
			s.r.mu.Lock()
			delete(s.r.members, s.peer)
			s.r.mu.Unlock()
		}
		s.peer, s.token = self, f.Resume
		s.r.mu.Lock()
		s.r.members[s.peer] = true
		s.r.mu.Unlock()
		if f.Resumed || f.Restored {
			for id, m := range s.unacked {
				if err := s.send(ctx, id, m, true); err != nil {
					c.close()
					return err
				}
			}
		}
		return nil
	}
	c.close()
	return errors.New("no welcome within 512 frames")
}

func (s *soakClient) send(ctx context.Context, id string, m soakMsg, retry bool) error {
	r := ""
	if retry {
		r = `,"retry":true`
	}
	b := fmt.Appendf(nil, `{"type":"message","id":%q,"target":%q,"data":{"n":%d}%s}`, id, m.target, m.n, r)
	if err := s.conn.conn.Write(ctx, websocket.MessageText, b); err != nil {
		return fmt.Errorf("send: %w", err)
	}
	return nil
}

// session reads and sends until the connection ends: "cut" (this client cut it), "churn" (it
// left to come back as someone new), "server" (the server ended it), or "" when ctx ended.
func (s *soakClient) session(ctx context.Context) string {
	frames := make(chan soakFrame, 64)
	readErr := make(chan error, 1)
	go func() {
		for {
			b, err := s.conn.readCtx(s.conn.rctx)
			if err != nil {
				readErr <- err
				close(frames)
				return
			}
			var f soakFrame
			if json.Unmarshal(b, &f) == nil {
				frames <- f
			}
		}
	}()
	drain := func() {
		s.conn.close()
		for range frames {
		}
	}
	tick := time.NewTicker(s.o.interval)
	defer tick.Stop()
	var cutAt, churnAt <-chan time.Time
	if s.o.cutEvery > 0 {
		cutAt = time.After(time.Duration(rand.ExpFloat64() * float64(s.o.cutEvery)))
	}
	if s.o.churnEvery > 0 {
		churnAt = time.After(time.Duration(rand.ExpFloat64() * float64(s.o.churnEvery)))
	}
	for {
		select {
		case <-ctx.Done():
			drain()
			return ""
		case <-cutAt:
			if time.Now().After(s.quiet) {
				continue
			}
			s.c.cuts.Add(1)
			drain()
			return "cut"
		case <-churnAt:
			if time.Now().After(s.quiet) {
				continue
			}
			s.c.churns.Add(1)
			_ = s.conn.write([]byte(`{"type":"leave"}`))
			drain()
			return "churn"
		case f, ok := <-frames:
			if !ok {
				if ctx.Err() != nil {
					return ""
				}
				s.c.restarts.Add(1)
				return "server"
			}
			s.handle(f)
		case <-tick.C:
			if time.Now().After(s.quiet) {
				cutAt, churnAt = nil, nil
				continue
			}
			s.r.mu.Lock()
			var targets []string
			for id := range s.r.members {
				if id != s.peer {
					targets = append(targets, id)
				}
			}
			s.r.mu.Unlock()
			for _, t := range targets {
				s.seqOut[t]++
				m := soakMsg{target: t, n: s.seqOut[t]}
				id := fmt.Sprintf("%s.%d", t[:min(8, len(t))], m.n)
				s.unacked[id] = m
				s.c.sent.Add(1)
				if s.send(ctx, id, m, false) != nil {
					break
				}
			}
		}
	}
}

// handle takes one frame of the session.
func (s *soakClient) handle(f soakFrame) {
	if f.Seq != 0 {
		if f.Seq <= s.last {
			s.c.dup.Add(1)
			return
		}
		s.last = f.Seq
	}
	switch f.Type {
	case "ack":
		if m, ok := s.unacked[f.ID]; ok {
			delete(s.unacked, f.ID)
			s.c.acked.Add(1)
			k := [2]string{s.peer, m.target}
			s.r.mu.Lock()
			s.r.acked[k] = max(s.r.acked[k], m.n)
			s.r.mu.Unlock()
		}
	case "error":
		if f.Code == "unknown-target" {
			delete(s.unacked, f.ID) // the target left
		}
	case "message":
		s.c.received.Add(1)
		k := [2]string{f.From, s.peer}
		s.r.mu.Lock()
		g := s.r.received[k]
		if g == nil {
			g = &soakGot{}
			s.r.received[k] = g
		}
		if g.add(f.Data.N) {
			s.c.dup.Add(1)
		}
		s.r.mu.Unlock()
	case "peer-left":
		if f.Reason != "left" { // churn leaves; anything else is a presence lost
			s.c.peerLeft.Add(1)
		}
	case "resume-token":
		s.token = f.Resume
	}
}
