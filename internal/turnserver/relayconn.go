package turnserver

import (
	"fmt"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"

	"github.com/pion/stun/v4"
)

// relayConn is a UDP relay socket that drops datagrams to and from denied peers. What pion
// writes through it goes on the queue of whoever reads its client (udp.go, queue.go): the
// UDP listener the allocation was made on, or the client's TCP or TLS connection once
// linked to it (relayPorts); until then it writes at once. It reads peers' datagrams in
// batches and sends what pion relays from them to a UDP client through toClient.
type relayConn struct {
	net.PacketConn
	g     *relayGen
	user  string
	close sync.Once
	q     atomic.Pointer[relayQueue] // client to peer; nil: write at once
	port  int                        // local port, for relayPorts
	udpSender

	// Peer to client; only pion's loop of this allocation reads.
	in       *mmsgReader // nil: read one at a time from PacketConn
	n, next  int
	peers    map[netip.AddrPort]peer
	toClient relayQueue
	client   atomic.Pointer[netip.AddrPort] // its UDP client, in clientRelays
	stream   atomic.Pointer[trackedConn]    // its TCP or TLS client
}

// peer is a peer address as handed to pion and whether the filter allows it.
type peer struct {
	addr    *net.UDPAddr
	allowed bool
}

// maxPeers bounds a relay socket's cache of peer addresses; past it the cache starts over.
const maxPeers = 64

func (g *relayGen) newRelayConn(pc net.PacketConn, user string) *relayConn {
	rc := &relayConn{PacketConn: pc, g: g, user: user}
	u, ok := pc.(*net.UDPConn)
	if !ok {
		return rc
	}
	_ = setReadBuffer(u, RelayReadBuffer)
	rc.udpSender.init(u)
	rc.port = u.LocalAddr().(*net.UDPAddr).Port
	if in, err := newMmsgReader(u, relayBatch, false); err == nil {
		rc.in = in
	}
	if g.queue != nil {
		rc.q.Store(g.queue)
	}
	if g.relays != nil {
		g.relays.put(rc)
	}
	return rc
}

func (c *relayConn) WriteTo(p []byte, addr net.Addr) (int, error) {
	if !c.g.filter.AllowedAddr(addr) {
		c.g.denied(addr)
		return 0, fmt.Errorf("%w: %v", ErrPeerDenied, addr)
	}
	if q := c.q.Load(); q != nil && len(p) <= maxDatagram { // pion reads 1,600 bytes at most
		q.add(&c.udpSender, p, addr)
		return len(p), nil
	}
	return c.PacketConn.WriteTo(p, addr) //nolint:wrapcheck // the socket's own error, for pion
}

// ReadFrom hands out the next datagram from an allowed peer; when the batch is done it sends
// what pion relayed to the client meanwhile, then reads the next batch (waiting for one).
func (c *relayConn) ReadFrom(p []byte) (int, net.Addr, error) {
	if c.in == nil {
		return c.readOne(p)
	}
	for {
		if c.next >= c.n {
			c.toClient.flush()
			if s := c.stream.Load(); s != nil {
				s.flushWrites()
			}
			c.in.release()
			c.n, c.next = 0, 0
			n, err := c.in.readBatch()
			if err != nil {
				return 0, nil, err
			}
			c.n = n
		}
		i := c.next
		c.next++
		from := c.peer(c.in.from(i))
		if !from.allowed {
			c.g.denied(from.addr)
			continue
		}
		return copy(p, c.in.bufs[i][:c.in.size(i)]), from.addr, nil
	}
}

// peer returns ap's address and verdict, from the cache.
func (c *relayConn) peer(ap netip.AddrPort) peer {
	ap = netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
	if e, ok := c.peers[ap]; ok {
		return e
	}
	if c.peers == nil || len(c.peers) >= maxPeers {
		c.peers = make(map[netip.AddrPort]peer)
	}
	e := peer{addr: udpAddr(ap), allowed: c.g.filter.Allowed(ap.Addr())}
	c.peers[ap] = e
	return e
}

func (c *relayConn) readOne(p []byte) (int, net.Addr, error) {
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
		if c.g.relays != nil {
			c.g.relays.remove(c)
		}
		if a := c.client.Load(); a != nil && c.g.clients != nil {
			c.g.clients.remove(*a, c)
		}
		c.toClient.flush()
	})
	return err //nolint:wrapcheck // the socket's own error, for pion
}

// relayPorts holds the live relay sockets by port. Pion makes a relay socket without saying
// for which client: a TCP or TLS connection learns its relay's port from the Allocate
// success answer it carries (XOR-RELAYED-ADDRESS), the allocation event of a UDP client
// names it, and each looks the socket up here.
type relayPorts struct {
	mu     sync.Mutex
	byPort map[int]*relayConn
}

func (r *relayPorts) put(c *relayConn) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.byPort == nil {
		r.byPort = make(map[int]*relayConn)
	}
	r.byPort[c.port] = c
}

func (r *relayPorts) remove(c *relayConn) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.byPort[c.port] == c {
		delete(r.byPort, c.port)
	}
}

func (r *relayPorts) get(port int) *relayConn {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.byPort[port]
}

// link has the relay socket named in p, an Allocate success answer written to client,
// send through the client's queue, and flush what it relays to the client.
func (r *relayPorts) link(p []byte, client *trackedConn) {
	m := &stun.Message{Raw: append([]byte(nil), p...)}
	var relayed stun.XORMappedAddress
	if m.Decode() != nil || relayed.GetFromAs(m, stun.AttrXORRelayedAddress) != nil {
		return
	}
	if c := r.get(relayed.Port); c != nil {
		c.stream.Store(client)
		c.q.Store(&client.out)
		client.linked.Store(true)
	}
}

// clientRelays maps each UDP client to its allocation's relay socket, for the listener to
// queue what pion relays to the client on that socket's queue. It is read for every such
// datagram from every allocation's loop, and written once per allocation: a sync.Map, whose
// reads take no lock.
type clientRelays struct {
	m sync.Map // netip.AddrPort -> *relayConn
}

// allocated notes the allocation of the relay socket on port for client (a UDP client: one
// over TCP or TLS is sent to through its connection).
func (r *clientRelays) allocated(client net.Addr, port int, relays *relayPorts) {
	ap, ok := addrPort(client)
	if !ok {
		return
	}
	if c := relays.get(port); c != nil {
		c.client.Store(&ap)
		r.m.Store(ap, c)
	}
}

// deleted forgets client's allocation.
func (r *clientRelays) deleted(client net.Addr) {
	if ap, ok := addrPort(client); ok {
		r.m.Delete(ap)
	}
}

func (r *clientRelays) remove(ap netip.AddrPort, c *relayConn) { r.m.CompareAndDelete(ap, c) }

func (r *clientRelays) get(a net.Addr) *relayConn {
	ap, ok := addrPort(a)
	if !ok {
		return nil
	}
	c, _ := r.m.Load(ap)
	rc, _ := c.(*relayConn)
	return rc
}
