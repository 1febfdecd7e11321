package main

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"
)

// The canary: two legitimate native peers in one room, A relaying a message to B every
// interval, for as long as the benchmark runs. Every message's fate goes to the log as
// `SENT_MS SEQ LATENCY_US` (LATENCY_US -1: lost — not delivered within --loss-after, or not
// sent because the pair had no connection); `#` lines say what happened to the connections.
// The report cuts the log into the attacks' windows by SENT_MS.

type canaryOpts struct {
	url        string
	srcA, srcB netip.Addr
	interval   time.Duration
	lossAfter  time.Duration
	out        string
}

func runCanary(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("canary", flag.ContinueOnError)
	fs.SetOutput(stderr)
	o := canaryOpts{}
	var a, b string
	fs.StringVar(&o.url, "url", "ws://127.0.0.1:8080/ws", "the server's native WebSocket URL")
	fs.StringVar(&a, "src-a", "127.0.0.2", "source address of the sending peer")
	fs.StringVar(&b, "src-b", "127.0.0.3", "source address of the receiving peer")
	fs.DurationVar(&o.interval, "interval", 100*time.Millisecond, "time between messages")
	fs.DurationVar(&o.lossAfter, "loss-after", 5*time.Second, "a message not delivered this long after sending counts as lost")
	fs.StringVar(&o.out, "out", "canary.log", "log of every message's fate")
	if err := fs.Parse(args); err != nil {
		return errUsage
	}
	var err error
	if o.srcA, err = netip.ParseAddr(a); err != nil {
		return fmt.Errorf("--src-a: %w", err)
	}
	if o.srcB, err = netip.ParseAddr(b); err != nil {
		return fmt.Errorf("--src-b: %w", err)
	}
	f, err := os.Create(o.out)
	if err != nil {
		return fmt.Errorf("--out: %w", err)
	}
	c := &canary{o: o, w: bufio.NewWriter(f), pending: map[int64]time.Time{}}
	runErr := c.run(ctx)
	c.mu.Lock()
	flushErr := c.w.Flush()
	c.mu.Unlock()
	closeErr := f.Close()
	if runErr != nil {
		return runErr
	}
	if flushErr != nil {
		return fmt.Errorf("write %s: %w", o.out, flushErr)
	}
	if closeErr != nil {
		return fmt.Errorf("write %s: %w", o.out, closeErr)
	}
	fmt.Fprintf(stdout, "canary: %d messages, %d lost, %d reconnects\n", c.seq, c.lost, c.reconnects.Load())
	return nil
}

type canary struct {
	o          canaryOpts
	mu         sync.Mutex // guards w, pending, seq, lost
	w          *bufio.Writer
	pending    map[int64]time.Time // seq → when sent (monotonic)
	seq, lost  int64
	cur        atomic.Pointer[canaryPair]
	reconnects atomic.Int64
}

// canaryPair is one connection of each peer, and B's id.
type canaryPair struct {
	a, b     *websocket.Conn
	bID      string
	deadOnce sync.Once
	dead     chan struct{}
	readers  sync.WaitGroup // readA and readB, waited for after the connections close
}

func (p *canaryPair) fail() { p.deadOnce.Do(func() { close(p.dead) }) }

func (p *canaryPair) isDead() bool {
	select {
	case <-p.dead:
		return true
	default:
		return false
	}
}

func (c *canary) run(ctx context.Context) error {
	var wg sync.WaitGroup
	connCtx, stopConn := context.WithCancel(context.WithoutCancel(ctx))
	ready := make(chan struct{})
	wg.Add(1)
	go func() {
		defer wg.Done()
		c.keepConnected(connCtx, ready)
	}()
	// Messages count from the first connection on: before it the canary has not started.
	select {
	case <-ready:
	case <-ctx.Done():
		stopConn()
		wg.Wait()
		return nil
	}
	tick := time.NewTicker(c.o.interval)
	sweep := time.NewTicker(500 * time.Millisecond)
	defer sweep.Stop()
loop:
	for {
		select {
		case <-ctx.Done():
			break loop
		case now := <-tick.C:
			c.send(ctx, now)
		case now := <-sweep.C:
			c.sweep(now, false)
		}
	}
	tick.Stop()
	// Let what is in flight arrive, then give up on it.
	deadline := time.Now().Add(c.o.lossAfter)
	for time.Now().Before(deadline) {
		c.mu.Lock()
		n := len(c.pending)
		c.mu.Unlock()
		if n == 0 {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	c.sweep(time.Now(), true)
	stopConn()
	wg.Wait()
	return nil
}

// keepConnected connects the pair, waits for it to fail, and connects again, until ctx ends.
// It closes ready once the pair is first connected.
func (c *canary) keepConnected(ctx context.Context, ready chan<- struct{}) {
	first := true
	for ctx.Err() == nil {
		p, err := c.connect(ctx)
		if err != nil {
			c.note("connect failed: %v", err)
			_ = sleepCtx(ctx, 200*time.Millisecond)
			continue
		}
		c.cur.Store(p)
		if first {
			close(ready)
		} else {
			c.reconnects.Add(1)
		}
		first = false
		select {
		case <-p.dead:
			c.note("connection lost")
		case <-ctx.Done():
		}
		c.cur.Store(nil)
		p.fail()
		if ctx.Err() != nil {
			_ = p.a.Close(websocket.StatusNormalClosure, "")
			_ = p.b.Close(websocket.StatusNormalClosure, "")
		}
		_ = p.a.CloseNow()
		_ = p.b.CloseNow()
		p.readers.Wait()
		if ctx.Err() != nil {
			return
		}
		_ = sleepCtx(ctx, 200*time.Millisecond)
	}
}

// connect joins A then B to a fresh room and starts both readers.
func (c *canary) connect(ctx context.Context) (*canaryPair, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	var rb [6]byte
	_, _ = rand.Read(rb[:])
	room := "canary-" + hex.EncodeToString(rb[:])
	a, _, err := dialNative(ctx, c.o.url, c.o.srcA, room)
	if err != nil {
		return nil, fmt.Errorf("peer A: %w", err)
	}
	b, wb, err := dialNative(ctx, c.o.url, c.o.srcB, room)
	if err != nil {
		_ = a.CloseNow()
		return nil, fmt.Errorf("peer B: %w", err)
	}
	p := &canaryPair{a: a, b: b, bID: wb.Peer, dead: make(chan struct{})}
	p.readers.Add(2)
	go func() {
		defer p.readers.Done()
		c.readA(p)
	}()
	go func() {
		defer p.readers.Done()
		c.readB(p)
	}()
	c.note("connected in room %s", room)
	return p, nil
}

// dialNative opens a native connection from src and joins room.
func dialNative(ctx context.Context, url string, src netip.Addr, room string) (*websocket.Conn, welcome, error) {
	d := tcpDialer(src, 5*time.Second, 0)
	hc := &http.Client{Transport: &http.Transport{Proxy: nil, DialContext: d.DialContext, MaxIdleConns: 1}}
	conn, resp, err := websocket.Dial(ctx, url, &websocket.DialOptions{HTTPClient: hc})
	if err != nil {
		if resp != nil {
			return nil, welcome{}, &statusError{code: resp.StatusCode}
		}
		return nil, welcome{}, fmt.Errorf("dial: %w", err)
	}
	conn.SetReadLimit(1 << 20)
	join := fmt.Appendf(nil, `{"type":"join","id":1,"v":1,"room":%q}`, room)
	if err := conn.Write(ctx, websocket.MessageText, join); err != nil {
		_ = conn.CloseNow()
		return nil, welcome{}, fmt.Errorf("send join: %w", err)
	}
	for range 64 {
		_, p, err := conn.Read(ctx)
		if err != nil {
			_ = conn.CloseNow()
			return nil, welcome{}, fmt.Errorf("wait for the welcome: %w", err)
		}
		w, ok, err := parseWelcome(p)
		if err != nil {
			_ = conn.CloseNow()
			return nil, welcome{}, err
		}
		if ok {
			return conn, w, nil
		}
	}
	_ = conn.CloseNow()
	return nil, welcome{}, errors.New("no welcome within 64 frames")
}

// readA discards what the sender receives (it must read to answer pings).
func (c *canary) readA(p *canaryPair) {
	for {
		if _, _, err := p.a.Read(context.Background()); err != nil {
			p.fail()
			return
		}
	}
}

// readB records every canary message B receives.
func (c *canary) readB(p *canaryPair) {
	for {
		_, msg, err := p.b.Read(context.Background())
		if err != nil {
			p.fail()
			return
		}
		now := time.Now()
		var m struct {
			Type string `json:"type"`
			Data struct {
				Seq int64 `json:"seq"`
			} `json:"data"`
		}
		if json.Unmarshal(msg, &m) != nil || m.Type != "message" {
			continue
		}
		c.mu.Lock()
		if t, ok := c.pending[m.Data.Seq]; ok {
			delete(c.pending, m.Data.Seq)
			fmt.Fprintf(c.w, "%d %d %d\n", unixMS(t), m.Data.Seq, now.Sub(t).Microseconds())
		}
		c.mu.Unlock()
	}
}

// send relays the next message, or records it lost when the pair has no connection.
func (c *canary) send(ctx context.Context, now time.Time) {
	c.mu.Lock()
	c.seq++
	seq := c.seq
	c.pending[seq] = now
	c.mu.Unlock()
	p := c.cur.Load()
	if p == nil || p.isDead() {
		c.markLost(seq)
		return
	}
	wctx, cancel := context.WithTimeout(ctx, c.o.lossAfter)
	defer cancel()
	msg := fmt.Appendf(nil, `{"type":"message","target":%q,"data":{"seq":%d}}`, p.bID, seq)
	if err := p.a.Write(wctx, websocket.MessageText, msg); err != nil {
		c.note("send %d: %v", seq, err)
		p.fail()
		c.markLost(seq)
	}
}

func (c *canary) markLost(seq int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if t, ok := c.pending[seq]; ok {
		delete(c.pending, seq)
		c.lost++
		fmt.Fprintf(c.w, "%d %d -1\n", unixMS(t), seq)
	}
}

// sweep records as lost what has waited longer than lossAfter (everything when all), and
// flushes the log.
func (c *canary) sweep(now time.Time, all bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for seq, t := range c.pending {
		if all || now.Sub(t) > c.o.lossAfter {
			delete(c.pending, seq)
			c.lost++
			fmt.Fprintf(c.w, "%d %d -1\n", unixMS(t), seq)
		}
	}
	_ = c.w.Flush()
}

// note writes a # line.
func (c *canary) note(format string, args ...any) {
	c.mu.Lock()
	defer c.mu.Unlock()
	fmt.Fprintf(c.w, "# %d %s\n", unixMS(time.Now()), fmt.Sprintf(format, args...))
}
