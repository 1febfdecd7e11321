package turnserver

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"sync"

	"golang.org/x/net/ipv4"
	"golang.org/x/net/ipv6"
)

// The UDP listener reads datagrams in batches (recvmmsg) and hands them to pion's read loop
// one at a time; the relay sockets of the allocations made through it queue what pion writes
// to peers and send it in batches (sendmmsg) before the listener reads the next batch. On a
// loaded relay one system call then carries many datagrams each way; on a quiet one a batch
// is one datagram, sent before the loop waits again. Issue 18: the syscalls were most of
// the relay's CPU.

// batchSize is how many datagrams one recvmmsg or sendmmsg carries at most.
const batchSize = 64

// maxDatagram is the largest datagram read: pion's InboundMTU (1600) refuses longer ones,
// and a 2048-byte buffer tells them from those of exactly 1600.
const maxDatagram = 2048

// batchIO is the sending half of golang.org/x/net's ipv4 and ipv6 PacketConns (sendmmsg).
type batchIO interface {
	WriteBatch(ms []ipv4.Message, flags int) (int, error)
}

// newBatchIO returns sendmmsg for c in its address family.
func newBatchIO(c *net.UDPConn) batchIO {
	if a, ok := c.LocalAddr().(*net.UDPAddr); ok && a.IP.To4() != nil {
		return ipv4.NewPacketConn(c)
	}
	return ipv6.NewPacketConn(c)
}

// trackedPacketConn is one UDP listener socket (several share the port, see listen); done
// closes when pion's read loop has seen it closed. Only that loop calls ReadFrom.
type trackedPacketConn struct {
	*net.UDPConn
	done    chan struct{}
	once    sync.Once
	rewrite func(p []byte, to net.Addr) []byte // forbidDenied: a replacement for p, or nil

	reader batchReader
	in     []datagram // the last batch read; next is the first not handed out
	n      int
	next   int
	addrs  addrCache
	local  *net.UDPAddr // LocalAddr with a 16-byte IP: pion's five-tuple key copies a 4-byte one
	out    relayQueue   // datagrams to peers, sent before the next batch is read
}

func newTrackedPacketConn(c *net.UDPConn, rewrite func([]byte, net.Addr) []byte) (*trackedPacketConn, error) {
	t := &trackedPacketConn{UDPConn: c, done: make(chan struct{}), rewrite: rewrite}
	la := c.LocalAddr().(*net.UDPAddr)
	t.local = &net.UDPAddr{IP: la.IP.To16(), Port: la.Port, Zone: la.Zone}
	t.in = make([]datagram, batchSize)
	buf := make([]byte, batchSize*maxDatagram)
	bufs := make([][]byte, batchSize)
	for i := range t.in {
		bufs[i] = buf[i*maxDatagram : (i+1)*maxDatagram : (i+1)*maxDatagram]
		t.in[i].buf = bufs[i]
	}
	r, err := newBatchReader(c, bufs)
	if err != nil {
		return nil, fmt.Errorf("turnserver: udp listener: %w", err)
	}
	t.reader = r
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
		n, err := c.reader.readBatch(c.in)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				c.once.Do(func() { close(c.done) })
			}
			return 0, nil, err
		}
		c.n = n
	}
	d := &c.in[c.next]
	c.next++
	n := copy(p, d.buf[:min(d.n, len(d.buf))])
	return n, c.addrs.get(d.from), nil
}

// datagram is one datagram of a batch read into buf.
type datagram struct {
	buf  []byte
	n    int
	from netip.AddrPort
}

// batchReader reads datagrams into the buffers it was made with (recvmmsg on Linux).
type batchReader interface {
	readBatch(ds []datagram) (int, error)
}

// maxCachedAddrs bounds an addrCache; past it the cache starts over.
const maxCachedAddrs = 4096

// addrCache hands out one *net.UDPAddr per client address, so reading a datagram allocates
// nothing: pion keeps the address it is given (in an allocation's five-tuple) and never
// changes it. IPs are in their 16-byte form, which pion's lookups use without copying.
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
	ip := ap.Addr().As16()
	a := &net.UDPAddr{IP: ip[:], Port: int(ap.Port()), Zone: ap.Addr().Zone()}
	c.m[ap] = a
	return a
}

// zoneName names the interface of an IPv6 scope id, as the net package does.
func zoneName(index int) string {
	if ifc, err := net.InterfaceByIndex(index); err == nil {
		return ifc.Name
	}
	return strconv.Itoa(index)
}
