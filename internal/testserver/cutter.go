package testserver

import (
	"net"
	"sync"
	"sync/atomic"
	"testing"
)

// Cutter is a TCP proxy on loopback whose connections a test can cut at once, as a network
// outage would: no WebSocket close frame in either direction. Cut closes them (both ends see
// the TCP connection end); Sever drops them silently: from then on nothing passes in either
// direction and neither end is told (no FIN, no RST), as when a network path dies — what the
// server writes into it is lost. New connections still go through after either.
type Cutter struct {
	ln     net.Listener
	target string
	wg     sync.WaitGroup
	mu     sync.Mutex
	links  map[*link]struct{}
	closed bool
}

// link is one proxied connection: the client's side (down) and the target's (up).
type link struct {
	down, up net.Conn
	severed  atomic.Bool
	ends     atomic.Int32 // pipes finished
}

// NewCutter proxies a new loopback port to target (host:port) until the test ends.
func NewCutter(tb testing.TB, target string) *Cutter {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatalf("testserver: cutter: %v", err)
	}
	c := &Cutter{ln: ln, target: target, links: make(map[*link]struct{})}
	c.wg.Add(1)
	go c.accept()
	tb.Cleanup(c.close)
	return c
}

// Addr returns the proxy's host:port.
func (c *Cutter) Addr() string { return c.ln.Addr().String() }

// Cut closes every connection through the proxy and returns how many there were.
func (c *Cutter) Cut() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for l := range c.links {
		if !l.severed.Load() {
			n++
		}
		_ = l.down.Close()
		_ = l.up.Close()
		delete(c.links, l)
	}
	return n
}

// Sever silently drops every connection through the proxy (see Cutter) and returns how many
// there were. Each end's socket is closed only once that end closes its own.
func (c *Cutter) Sever() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for l := range c.links {
		if !l.severed.Swap(true) {
			n++
		}
	}
	return n
}

func (c *Cutter) accept() {
	defer c.wg.Done()
	for {
		down, err := c.ln.Accept()
		if err != nil {
			return
		}
		up, err := net.Dial("tcp", c.target)
		if err != nil {
			_ = down.Close()
			continue
		}
		l := &link{down: down, up: up}
		if !c.track(l) {
			return
		}
		c.wg.Add(2)
		go c.pipe(l, up, down)
		go c.pipe(l, down, up)
	}
}

func (c *Cutter) track(l *link) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		_ = l.down.Close()
		_ = l.up.Close()
		return false
	}
	c.links[l] = struct{}{}
	return true
}

// pipe copies src to dst until src ends; once the link is severed what it reads is dropped,
// and the end of src is not passed on to dst.
func (c *Cutter) pipe(l *link, dst, src net.Conn) {
	defer c.wg.Done()
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 && !l.severed.Load() {
			if _, werr := dst.Write(buf[:n]); werr != nil {
				_ = src.Close()
				break
			}
		}
		if err != nil {
			break
		}
	}
	if l.severed.Load() {
		_ = src.Close() // this end is gone; the other is left as it was
	} else {
		_ = dst.Close()
	}
	if l.ends.Add(1) == 2 {
		c.mu.Lock()
		delete(c.links, l)
		c.mu.Unlock()
		_ = l.down.Close()
		_ = l.up.Close()
	}
}

func (c *Cutter) close() {
	c.mu.Lock()
	c.closed = true
	c.mu.Unlock()
	_ = c.ln.Close()
	c.Cut()
	c.wg.Wait()
}
