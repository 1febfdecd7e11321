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

// The resume mode measures how long a node's peers take to come back after the node goes
// away (a SIGTERM sent by the script that runs it): --conns clients join rooms of --room-size
// on --url and print "READY n" on stdout; when a client's connection ends it reconnects at
// once (0-250 ms of jitter, as the SDKs do) to --url2 (a surviving cluster node) or --url (the
// same node, restarted) and joins with its resume token and the last sequence number it
// received. It reports, from the first connection that ended, when each client had its
// presence back (p50, p99, max), how many were resumed, restored or started over, and every
// peer-left any client heard, which should be none.

// resumeOptions are the resume mode's settings.
type resumeOptions struct {
	url, url2     string
	conns         int
	roomSize      int
	sourceIPs     int
	concurrency   int
	dialTimeout   time.Duration
	wait          time.Duration // for the connections to end
	resumeTimeout time.Duration // for a client to be back once its connection ended
	settle        time.Duration // after the last resume, listening for peer-left
}

func parseResumeOptions(args []string, stderr io.Writer) (*resumeOptions, error) {
	o := &resumeOptions{}
	fs := flag.NewFlagSet("switchboard bench resume", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&o.url, "url", defaultNativeURL, "native server URL the clients join")
	fs.StringVar(&o.url2, "url2", "", "URL the clients resume on (another node of the cluster); default --url")
	fs.IntVar(&o.conns, "conns", 1000, "clients")
	fs.IntVar(&o.roomSize, "room-size", 2, "clients per room")
	fs.IntVar(&o.sourceIPs, "source-ips", 8, "spread connections over source addresses 127.0.0.1..127.0.0.K (loopback URLs only)")
	fs.IntVar(&o.concurrency, "concurrency", 50, "parallel connection setups before READY")
	fs.DurationVar(&o.dialTimeout, "dial-timeout", 10*time.Second, "bound on one connection's handshake and join")
	fs.DurationVar(&o.wait, "wait", 10*time.Minute, "how long to wait, after READY, for the connections to end")
	fs.DurationVar(&o.resumeTimeout, "resume-timeout", 60*time.Second, "how long a client keeps trying to resume once its connection ended")
	fs.DurationVar(&o.settle, "settle", 2*time.Second, "after the last client is back, how long to listen for peer-left")
	if err := fs.Parse(args); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrUsage, err)
	}
	if o.url2 == "" {
		o.url2 = o.url
	}
	if o.conns < 1 || o.roomSize < 1 || o.concurrency < 1 {
		return nil, fmt.Errorf("%w: --conns, --room-size and --concurrency must be positive", ErrUsage)
	}
	return o, nil
}

// resumeClient is one client's state across its two connections.
type resumeClient struct {
	room    string
	peer    string
	token   string
	last    atomic.Uint64 // highest seq received
	lostAt  time.Time
	backAt  time.Time
	outcome string // resumed, restored, new, failed
	err     error
}

// resumeWelcome is what the mode reads from a welcome.
type resumeWelcome struct {
	Type     string `json:"type"`
	Peer     string `json:"peer"`
	Resume   string `json:"resume"`
	Resumed  bool   `json:"resumed"`
	Restored bool   `json:"restored"`
	Code     string `json:"code"`
	Message  string `json:"message"`
}

// eventSeq is the seq and type of an event.
type eventSeq struct {
	Type   string `json:"type"`
	Seq    uint64 `json:"seq"`
	Resume string `json:"resume"`
}

func runResume(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	o, err := parseResumeOptions(args, stderr)
	if err != nil {
		return err
	}
	if _, err := raiseNoFile(); err != nil {
		fmt.Fprintf(stderr, "raise the descriptor limit: %v\n", err)
	}
	d1, err := newDialer(o.url, protoNative, o.sourceIPs, o.dialTimeout)
	if err != nil {
		return err
	}
	defer d1.close()
	d2, err := newDialer(o.url2, protoNative, o.sourceIPs, o.dialTimeout)
	if err != nil {
		return err
	}
	defer d2.close()

	run := fmt.Sprintf("%08x", rand.Uint32())
	rcs := make([]*resumeClient, o.conns)
	conns := make([]*client, o.conns)
	sem := make(chan struct{}, o.concurrency)
	var wg sync.WaitGroup
	var firstErr atomic.Pointer[error]
	for i := range rcs {
		rcs[i] = &resumeClient{room: fmt.Sprintf("resume-%s-%d", run, i/o.roomSize)}
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			c, err := d1.dialOnly(ctx, i)
			if err == nil {
				err = rcs[i].join(ctx, c, false)
			}
			if err != nil {
				firstErr.CompareAndSwap(nil, &err)
				if c != nil {
					c.close()
				}
				return
			}
			conns[i] = c
		}()
	}
	wg.Wait()
	if p := firstErr.Load(); p != nil {
		for _, c := range conns {
			if c != nil {
				c.close()
			}
		}
		return fmt.Errorf("join before the restart: %w", *p)
	}
	fmt.Fprintf(stdout, "READY %d\n", o.conns)

	var peerLeft atomic.Int64
	var firstLost atomic.Int64
	done := make(chan struct{})
	var back, lwg sync.WaitGroup
	for i, c := range conns {
		back.Add(1)
		lwg.Add(1)
		go func() {
			defer lwg.Done()
			rcs[i].lifetime(ctx, c, d2, i, o, &peerLeft, &firstLost, back.Done, done)
		}()
	}
	back.Wait() // every client is back, or gave up
	settle := time.NewTimer(o.settle)
	select {
	case <-settle.C:
	case <-ctx.Done():
		settle.Stop()
	}
	close(done)
	lwg.Wait()
	return reportResume(stdout, o, rcs, firstLost.Load(), peerLeft.Load())
}

// dialOnly opens a WebSocket without the protocol handshake.
func (d *dialer) dialOnly(ctx context.Context, slot int) (*client, error) {
	hctx, cancel := context.WithTimeout(ctx, d.timeout)
	defer cancel()
	conn, resp, err := websocket.Dial(hctx, d.url, &websocket.DialOptions{HTTPClient: d.clients[slot%len(d.clients)]})
	if err != nil {
		if resp != nil {
			return nil, fmt.Errorf("dial %s: HTTP %d: %w", d.url, resp.StatusCode, err)
		}
		return nil, fmt.Errorf("dial %s: %w", d.url, err)
	}
	conn.SetReadLimit(maxFrameBytes)
	return &client{conn: conn, proto: protoNative, rctx: context.WithoutCancel(ctx), buf: make([]byte, 0, 512)}, nil
}

// join sends the join (a resume with the token and last seq when resume is set) and reads
// until the welcome.
func (r *resumeClient) join(ctx context.Context, c *client, resume bool) error {
	var msg []byte
	if resume {
		msg = fmt.Appendf(nil, `{"type":"join","id":1,"v":1,"room":%q,"resume":%q,"last":%d}`, r.room, r.token, r.last.Load())
	} else {
		msg = fmt.Appendf(nil, `{"type":"join","id":1,"v":1,"room":%q}`, r.room)
	}
	hctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := c.conn.Write(hctx, websocket.MessageText, msg); err != nil {
		return fmt.Errorf("send join: %w", err)
	}
	for range 64 {
		b, err := c.readCtx(hctx)
		if err != nil {
			return fmt.Errorf("wait for welcome: %w", err)
		}
		var w resumeWelcome
		if err := json.Unmarshal(b, &w); err != nil {
			return fmt.Errorf("decode %q: %w", truncate(b), err)
		}
		switch w.Type {
		case "welcome":
			if w.Resume == "" {
				return errors.New("welcome without a resume token: is resumption off on the server?")
			}
			switch {
			case !resume:
			case w.Restored:
				r.outcome = "restored"
			case w.Resumed:
				r.outcome = "resumed"
			default:
				r.outcome = "new"
			}
			if resume && w.Peer != r.peer && r.outcome != "new" {
				return fmt.Errorf("resumed as %s, was %s", w.Peer, r.peer)
			}
			r.peer, r.token = w.Peer, w.Resume
			return nil
		case "error":
			return fmt.Errorf("join %s: %s: %s", r.room, w.Code, w.Message)
		default:
			r.note(b)
		}
	}
	return errors.New("no welcome within 64 frames")
}

// note takes the seq and a refreshed token from an event; it reports whether it was a
// peer-left.
func (r *resumeClient) note(b []byte) bool {
	var e eventSeq
	if json.Unmarshal(b, &e) != nil {
		return false
	}
	if e.Seq > r.last.Load() {
		r.last.Store(e.Seq)
	}
	if e.Type == "resume-token" && e.Resume != "" {
		r.token = e.Resume
	}
	return e.Type == "peer-left"
}

// lifetime reads until the connection ends, comes back on d (then calls back), and listens
// until done.
func (r *resumeClient) lifetime(ctx context.Context, c *client, d *dialer, slot int, o *resumeOptions, peerLeft, firstLost *atomic.Int64, back func(), done <-chan struct{}) {
	backed := false
	defer func() {
		if !backed {
			back()
		}
	}()
	wctx, cancel := context.WithTimeout(ctx, o.wait)
	defer cancel()
	for {
		b, err := c.readCtx(wctx)
		if err != nil {
			break
		}
		if r.note(b) {
			peerLeft.Add(1)
		}
	}
	c.close()
	if wctx.Err() != nil {
		r.outcome, r.err = "failed", errors.New("the connection did not end within --wait")
		return
	}
	r.lostAt = time.Now()
	firstLost.CompareAndSwap(0, r.lostAt.UnixNano())
	deadline := r.lostAt.Add(o.resumeTimeout)
	delay := time.Duration(rand.Int64N(int64(250 * time.Millisecond)))
	for {
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			r.outcome, r.err = "failed", ctx.Err()
			return
		case <-t.C:
		}
		nc, err := d.dialOnly(ctx, slot)
		if err == nil {
			if err = r.join(ctx, nc, true); err == nil {
				r.backAt = time.Now()
				c = nc
				break
			}
			nc.close()
		}
		if time.Now().After(deadline) {
			r.outcome, r.err = "failed", err
			return
		}
		delay = min(2*delay+50*time.Millisecond, time.Second)
	}
	backed = true
	back()
	closed := make(chan struct{})
	go func() {
		defer close(closed)
		select {
		case <-done:
		case <-ctx.Done():
		}
		c.close()
	}()
	defer func() { <-closed }()
	for {
		b, err := c.readCtx(c.rctx)
		if err != nil {
			return
		}
		if r.note(b) {
			peerLeft.Add(1)
		}
	}
}

func reportResume(w io.Writer, o *resumeOptions, rcs []*resumeClient, firstLost, peerLeft int64) error {
	counts := map[string]int{}
	var since, down []time.Duration
	var firstErr error
	t0 := time.Unix(0, firstLost)
	for _, r := range rcs {
		counts[r.outcome]++
		if r.err != nil && firstErr == nil {
			firstErr = r.err
		}
		if !r.backAt.IsZero() {
			since = append(since, r.backAt.Sub(t0))
			down = append(down, r.backAt.Sub(r.lostAt))
		}
	}
	s, dn := summarize(since), summarize(down)
	fmt.Fprintf(w, "clients %d: resumed %d, restored %d, started over %d, failed %d; peer-left heard %d\n",
		o.conns, counts["resumed"], counts["restored"], counts["new"], counts["failed"], peerLeft)
	fmt.Fprintf(w, "back after the first lost connection: p50 %.1f ms  p99 %.1f ms  max %.1f ms\n", ms(s.P50), ms(s.P99), ms(s.Max))
	fmt.Fprintf(w, "each client's own downtime:            p50 %.1f ms  p99 %.1f ms  max %.1f ms\n", ms(dn.P50), ms(dn.P99), ms(dn.Max))
	if firstErr != nil {
		fmt.Fprintf(w, "first failure: %v\n", firstErr)
	}
	fmt.Fprintf(w, "RESULT mode=resume conns=%d resumed=%d restored=%d new=%d failed=%d peer_left=%d back_p50_ms=%.1f back_p99_ms=%.1f back_max_ms=%.1f down_p50_ms=%.1f down_p99_ms=%.1f\n",
		o.conns, counts["resumed"], counts["restored"], counts["new"], counts["failed"], peerLeft, ms(s.P50), ms(s.P99), ms(s.Max), ms(dn.P50), ms(dn.P99))
	return nil
}
