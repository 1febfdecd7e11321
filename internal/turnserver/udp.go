package turnserver

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"sync"
	"sync/atomic"

	"golang.org/x/net/ipv4"
	"golang.org/x/net/ipv6"
)

// Both ways through a UDP allocation, datagrams are read in batches (recvmmsg) and handed to
// pion one at a time, and what pion writes is queued and sent in batches (sendmmsg; runs to
// one address as one UDP GSO message) before the reader waits for more:
//
//   - client to peer: the listener socket reads, pion writes to the relay socket, the
//     listener's queue sends (trackedPacketConn, relayConn.WriteTo);
//   - peer to client: the relay socket reads, pion writes ChannelData (or a Data indication)
//     to the listener, the relay socket's queue sends (relayConn.ReadFrom,
//     trackedPacketConn.WriteTo).
//
// On a loaded relay one system call then carries many datagrams; on a quiet one a batch is one
// datagram, sent before the loop waits again. Issue 18: the system calls were most of the
// relay's CPU.

// batchSize is how many datagrams a listener's recvmmsg, and one sendmmsg, carry at most.
const batchSize = 64

// relayBatch is how many datagrams a relay socket's recvmmsg carries at most (each relay
// socket has its headers; the buffers are taken only while a batch is handed out).
const relayBatch = 16

// maxDatagram is the largest datagram read: pion's InboundMTU (1600) refuses longer ones,
// and a 2048-byte buffer tells them from those of exactly 1600.
const maxDatagram = 2048

// batchIO is the sending half of golang.org/x/net's ipv4 and ipv6 PacketConns (sendmmsg).
type batchIO interface {
	WriteBatch(ms []ipv4.Message, flags int) (int, error)
}

// udpSender is a UDP socket's sending side for queues: sendmmsg, and whether the kernel
// segments what it sends (UDP GSO) until it has refused once.
type udpSender struct {
	batch batchIO
	gso   atomic.Bool
}

func (s *udpSender) init(c *net.UDPConn) {
	if a, ok := c.LocalAddr().(*net.UDPAddr); ok && a.IP.To4() != nil {
		s.batch = ipv4.NewPacketConn(c)
	} else {
		s.batch = ipv6.NewPacketConn(c)
	}
	s.gso.Store(gsoSupported(c))
}

// trackedPacketConn is one UDP listener socket (several share the port, see listen); done
// closes when pion's read loop has seen it closed. Only that loop calls ReadFrom.
type trackedPacketConn struct {
	*net.UDPConn
	done    chan struct{}
	once    sync.Once
	rewrite func(p []byte, to net.Addr) []byte // forbidDenied: a replacement for p, or nil
	clients *clientRelays                      // the relay socket of each UDP client

	in    *mmsgReader // the last batch read; next is the first not handed out
	n     int
	next  int
	addrs addrCache
	local *net.UDPAddr // LocalAddr with a 16-byte IP: pion's five-tuple key copies a 4-byte one
	out   relayQueue   // datagrams to peers, sent before the next batch is read
	udpSender
}

func newTrackedPacketConn(c *net.UDPConn, rewrite func([]byte, net.Addr) []byte, clients *clientRelays) (*trackedPacketConn, error) {
	r, err := newMmsgReader(c, batchSize, true)
	if err != nil {
		return nil, fmt.Errorf("turnserver: udp listener: %w", err)
	}
	t := &trackedPacketConn{UDPConn: c, done: make(chan struct{}), rewrite: rewrite, clients: clients, in: r}
	la := c.LocalAddr().(*net.UDPAddr)
	t.local = &net.UDPAddr{IP: la.IP.To16(), Port: la.Port, Zone: la.Zone}
	t.udpSender.init(c)
	return t, nil
}

// LocalAddr returns the socket's address.
func (c *trackedPacketConn) LocalAddr() net.Addr { return c.local }

// ReadFrom hands out the next datagram of the current batch; when none is left it sends what
// the relay sockets queued meanwhile, then reads the next batch (waiting for one).
func (c *trackedPacketConn) ReadFrom(p []byte) (int, net.Addr, error) {
	if c.next >= c.n {
		c.out.flush()
		c.n, c.next = 0, 0
		n, err := c.in.readBatch()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				c.once.Do(func() { close(c.done) })
			}
			return 0, nil, err
		}
		c.n = n
	}
	i := c.next
	c.next++
	n := copy(p, c.in.bufs[i][:c.in.size(i)])
	return n, c.addrs.get(c.in.from(i)), nil
}

// WriteTo sends p to a client. ChannelData and Data indications, which pion writes from the
// loop of the client's relay socket, go on that socket's queue; other messages (answers) at
// once, with forbidDenied's rewrite.
func (c *trackedPacketConn) WriteTo(p []byte, to net.Addr) (int, error) {
	if isRelayedData(p) && len(p) <= maxDatagram {
		if rc := c.clients.get(to); rc != nil {
			rc.toClient.add(&c.udpSender, p, to)
			return len(p), nil
		}
	}
	if c.rewrite != nil {
		if q := c.rewrite(p, to); q != nil {
			if _, err := c.UDPConn.WriteTo(q, to); err != nil {
				return 0, err //nolint:wrapcheck // the socket's own error, for pion
			}
			return len(p), nil
		}
	}
	return c.UDPConn.WriteTo(p, to) //nolint:wrapcheck // the socket's own error, for pion
}

// isRelayedData reports whether p is ChannelData (channel numbers 0x4000-0x7FFF) or a Data
// indication: what the server relays from a peer.
func isRelayedData(p []byte) bool {
	return len(p) >= 4 && (p[0]&0xC0 == 0x40 || isType(p, dataIndication))
}

// maxCachedAddrs bounds an addrCache; past it the cache starts over.
const maxCachedAddrs = 4096

// addrCache hands out one *net.UDPAddr per address, so reading a datagram allocates nothing:
// pion keeps the address it is given (in an allocation's five-tuple) and never changes it.
// IPs are in their 16-byte form, which pion's lookups use without copying. One goroutine
// uses a cache.
type addrCache struct {
	m map[netip.AddrPort]*net.UDPAddr
}

func (c *addrCache) get(ap netip.AddrPort) *net.UDPAddr {
	ap = netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
	if a, ok := c.m[ap]; ok {
		return a
	}
	if c.m == nil || len(c.m) >= maxCachedAddrs {
		c.m = make(map[netip.AddrPort]*net.UDPAddr)
	}
	a := udpAddr(ap)
	c.m[ap] = a
	return a
}

// udpAddr returns ap as a *net.UDPAddr with a 16-byte IP.
func udpAddr(ap netip.AddrPort) *net.UDPAddr {
	ip := ap.Addr().As16()
	return &net.UDPAddr{IP: ip[:], Port: int(ap.Port()), Zone: ap.Addr().Zone()}
}

// addrPort returns a as a netip.AddrPort with an unmapped address (false if a is not UDP).
func addrPort(a net.Addr) (netip.AddrPort, bool) {
	u, ok := a.(*net.UDPAddr)
	if !ok {
		return netip.AddrPort{}, false
	}
	ip, ok := netip.AddrFromSlice(u.IP)
	if !ok {
		return netip.AddrPort{}, false
	}
	return netip.AddrPortFrom(ip.Unmap().WithZone(u.Zone), uint16(u.Port)), true //nolint:gosec // a port
}

// zoneName names the interface of an IPv6 scope id, as the net package does.
func zoneName(index int) string {
	if ifc, err := net.InterfaceByIndex(index); err == nil {
		return ifc.Name
	}
	return strconv.Itoa(index)
}
