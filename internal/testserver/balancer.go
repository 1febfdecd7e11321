package testserver

import (
	"io"
	"net"
	"sync"
	"testing"
	"time"
)

// Balancer is a TCP load balancer on loopback in front of the nodes of a cluster, as a
// deployment puts one in front of its servers: each new connection goes to the next backend
// in turn that accepts it, so while a node restarts its clients come back through the
// balancer to the others. Connections already open stay where they are.
type Balancer struct {
	ln       net.Listener
	backends []string
	wg       sync.WaitGroup

	mu     sync.Mutex
	next   int
	conns  map[net.Conn]struct{}
	closed bool
	counts map[string]int // connections made to each backend
	tryFor time.Duration  // how long a new connection waits for a backend (TryFor)
	done   chan struct{}  // closed when the balancer closes
}

// NewBalancer balances a new loopback port over backends (host:port) until the test ends.
func NewBalancer(tb testing.TB, backends ...string) *Balancer {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatalf("testserver: balancer: %v", err)
	}
	b := &Balancer{ln: ln, backends: backends, conns: make(map[net.Conn]struct{}), counts: make(map[string]int), done: make(chan struct{})}
	b.wg.Add(1)
	go b.accept()
	tb.Cleanup(b.close)
	return b
}

// Addr returns the balancer's host:port.
func (b *Balancer) Addr() string { return b.ln.Addr().String() }

// TryFor makes a new connection that finds no backend up try them again for up to d before it
// is closed, as a load balancer with retries does (Caddy's lb_try_duration): a single node's
// restart then looks to its clients like a slow connect, not a refused one. Call it before
// the first connection.
func (b *Balancer) TryFor(d time.Duration) {
	b.mu.Lock()
	b.tryFor = d
	b.mu.Unlock()
}

// Count returns how many connections went to backend.
func (b *Balancer) Count(backend string) int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.counts[backend]
}

func (b *Balancer) accept() {
	defer b.wg.Done()
	for {
		down, err := b.ln.Accept()
		if err != nil {
			return
		}
		b.wg.Add(1)
		go b.serve(down)
	}
}

// serve connects down to the first backend that accepts, starting with the next in turn.
func (b *Balancer) serve(down net.Conn) {
	defer b.wg.Done()
	b.mu.Lock()
	start := b.next
	b.next = (b.next + 1) % len(b.backends)
	until := time.Now().Add(b.tryFor)
	b.mu.Unlock()
	for {
		for i := range b.backends {
			addr := b.backends[(start+i)%len(b.backends)]
			up, err := net.DialTimeout("tcp", addr, time.Second)
			if err != nil {
				continue
			}
			if !b.track(addr, down, up) {
				return
			}
			b.wg.Add(2)
			go b.pipe(down, up)
			b.pipe(up, down)
			return
		}
		if time.Now().After(until) {
			break
		}
		select { // no backend is up: try again shortly
		case <-b.done:
			_ = down.Close()
			return
		case <-time.After(50 * time.Millisecond):
		}
	}
	_ = down.Close() // no backend is up
}

func (b *Balancer) track(addr string, cs ...net.Conn) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		for _, x := range cs {
			_ = x.Close()
		}
		return false
	}
	b.counts[addr]++
	for _, x := range cs {
		b.conns[x] = struct{}{}
	}
	return true
}

// pipe copies src to dst; when src ends, dst is closed (and forgotten) so the other side
// sees the end too.
func (b *Balancer) pipe(dst, src net.Conn) {
	defer b.wg.Done()
	_, _ = io.Copy(dst, src)
	_ = dst.Close()
	_ = src.Close()
	b.mu.Lock()
	delete(b.conns, dst)
	delete(b.conns, src)
	b.mu.Unlock()
}

func (b *Balancer) close() {
	b.mu.Lock()
	if !b.closed {
		close(b.done)
	}
	b.closed = true
	for x := range b.conns {
		_ = x.Close()
	}
	b.mu.Unlock()
	_ = b.ln.Close()
	b.wg.Wait()
}
