package turnserver

import (
	"fmt"
	"net"
	"sync"
	"sync/atomic"

	"github.com/pion/stun/v4"
)

// relayConn is a UDP relay socket that drops datagrams to and from denied peers. What pion
// writes through it goes on the queue of whoever reads its client (udp.go, queue.go): the
// UDP listener the allocation was made on, or the client's TCP or TLS connection once
// linked to it (streamRelays); until then, and for other sockets, it writes at once.
type relayConn struct {
	net.PacketConn
	g     *relayGen
	user  string
	close sync.Once
	q     atomic.Pointer[relayQueue] // nil: write at once
	batch batchIO                    // sendmmsg on this socket, for q
	gso   atomic.Bool                // the kernel segments what q sends through this socket
	port  int                        // local port, for streamRelays
}

func (g *relayGen) newRelayConn(pc net.PacketConn, user string) *relayConn {
	rc := &relayConn{PacketConn: pc, g: g, user: user}
	u, ok := pc.(*net.UDPConn)
	if !ok {
		return rc
	}
	rc.batch = newBatchIO(u)
	rc.gso.Store(gsoSupported(u))
	rc.port = u.LocalAddr().(*net.UDPAddr).Port
	switch {
	case g.queue != nil:
		rc.q.Store(g.queue)
	case g.streams != nil:
		g.streams.put(rc)
	}
	return rc
}

func (c *relayConn) WriteTo(p []byte, addr net.Addr) (int, error) {
	if !c.g.filter.AllowedAddr(addr) {
		c.g.denied(addr)
		return 0, fmt.Errorf("%w: %v", ErrPeerDenied, addr)
	}
	if q := c.q.Load(); q != nil && len(p) <= maxDatagram { // pion reads 1,600 bytes at most
		q.add(c, p, addr)
		return len(p), nil
	}
	return c.PacketConn.WriteTo(p, addr) //nolint:wrapcheck // the socket's own error, for pion
}

func (c *relayConn) ReadFrom(p []byte) (int, net.Addr, error) {
	for {
		n, addr, err := c.PacketConn.ReadFrom(p)
		if err != nil || c.g.filter.AllowedAddr(addr) {
			return n, addr, err //nolint:wrapcheck // the socket's own error, for pion
		}
		c.g.denied(addr)
	}
}

func (c *relayConn) Close() error {
	err := c.PacketConn.Close()
	c.close.Do(func() {
		c.g.quota.give(c.user)
		if c.g.streams != nil {
			c.g.streams.remove(c)
		}
	})
	return err //nolint:wrapcheck // the socket's own error, for pion
}

// streamRelays links the relay sockets of allocations made over TCP and TLS to their client
// connection, so they send through its queue. Pion makes the relay socket without saying for
// which client; the connection learns its relay's port from the Allocate success answer it
// carries (XOR-RELAYED-ADDRESS) and looks the socket up here.
type streamRelays struct {
	mu     sync.Mutex
	byPort map[int]*relayConn
}

func (r *streamRelays) put(c *relayConn) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.byPort == nil {
		r.byPort = make(map[int]*relayConn)
	}
	r.byPort[c.port] = c
}

func (r *streamRelays) remove(c *relayConn) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.byPort[c.port] == c {
		delete(r.byPort, c.port)
	}
}

// link has the relay socket named in p, an Allocate success answer, send through q.
func (r *streamRelays) link(p []byte, q *relayQueue) {
	m := &stun.Message{Raw: append([]byte(nil), p...)}
	var relayed stun.XORMappedAddress
	if m.Decode() != nil || relayed.GetFromAs(m, stun.AttrXORRelayedAddress) != nil {
		return
	}
	r.mu.Lock()
	c := r.byPort[relayed.Port]
	delete(r.byPort, relayed.Port)
	r.mu.Unlock()
	if c != nil {
		c.q.Store(q)
	}
}
