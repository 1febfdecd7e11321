package testserver

import (
	"io"
	"net"
	"sync"
	"testing"
)

// Cutter is a TCP proxy on loopback whose connections a test can cut at once, as a network
// outage would: no WebSocket close frame in either direction. New connections still go
// through after a cut.
type Cutter struct {
	ln     net.Listener
	target string
	wg     sync.WaitGroup
	mu     sync.Mutex
	conns  map[net.Conn]struct{}
	closed bool
}

// NewCutter proxies a new loopback port to target (host:port) until the test ends.
func NewCutter(tb testing.TB, target string) *Cutter {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatalf("testserver: cutter: %v", err)
	}
	c := &Cutter{ln: ln, target: target, conns: make(map[net.Conn]struct{})}
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
	n := len(c.conns)
	for x := range c.conns {
		_ = x.Close()
		delete(c.conns, x)
	}
	return n / 2
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
		if !c.track(down, up) {
			return
		}
		c.wg.Add(2)
		go c.pipe(down, up)
		go c.pipe(up, down)
	}
}

func (c *Cutter) track(cs ...net.Conn) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		for _, x := range cs {
			_ = x.Close()
		}
		return false
	}
	for _, x := range cs {
		c.conns[x] = struct{}{}
	}
	return true
}

func (c *Cutter) pipe(dst, src net.Conn) {
	defer c.wg.Done()
	_, _ = io.Copy(dst, src)
	_ = dst.Close()
}

func (c *Cutter) close() {
	c.mu.Lock()
	c.closed = true
	c.mu.Unlock()
	_ = c.ln.Close()
	c.Cut()
	c.wg.Wait()
}
