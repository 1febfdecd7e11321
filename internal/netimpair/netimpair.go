// Package netimpair impairs the UDP sockets of in-process Pion peers the way a long, lossy,
// reordering path would: every datagram a socket sends is delayed by Delay plus a jitter drawn
// uniformly from ±Jitter (so datagrams overtake each other, as netem's jitter makes them do)
// or dropped with probability Loss. Both peers wrapped: the round trip is twice Delay.
//
// It wraps a transport.Net for SettingEngine.SetNet, so the peers keep their real loopback
// sockets and everything above them (ICE, DTLS, SCTP) runs unchanged. pion/transport's vnet
// has delay and jitter too, but its jitter delays the whole queue (no reordering), which is
// what data channels struggle with on Wi-Fi and mobile paths.
package netimpair

import (
	"container/heap"
	"math/rand/v2"
	"net"
	"sync"
	"time"

	"github.com/pion/transport/v5"
)

// Config is an impairment. The zero value changes nothing.
type Config struct {
	Delay  time.Duration // one way
	Jitter time.Duration // each datagram's delay is Delay ± a uniform draw up to Jitter
	Loss   float64       // probability that a datagram is dropped, 0..1
	// Rate, when not 0, is the link's capacity in bytes per second: datagrams leave one after
	// the other at that pace (a bottleneck spreads a sender's bursts, as real paths do), and
	// those that would wait more than QueueDelay behind it are dropped (a router's queue).
	Rate       int64
	QueueDelay time.Duration // default 50 ms
	Seed       uint64        // for the draws (0: a fixed default, so runs are comparable)
}

// maxQueued bounds the datagrams one socket holds in flight. Beyond it datagrams are dropped,
// as a full router queue does.
const maxQueued = 1 << 16

// Net returns base with every UDP socket it opens impaired by c.
func Net(base transport.Net, c Config) transport.Net {
	return &impairedNet{Net: base, cfg: c}
}

type impairedNet struct {
	transport.Net
	cfg  Config
	mu   sync.Mutex
	seed uint64
}

func (n *impairedNet) rng() *rand.Rand {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.seed++
	s := n.cfg.Seed
	if s == 0 {
		s = 0x5eed
	}
	return rand.New(rand.NewPCG(s, n.seed))
}

// ListenUDP implements transport.Net.
func (n *impairedNet) ListenUDP(network string, laddr *net.UDPAddr) (transport.UDPConn, error) {
	c, err := n.Net.ListenUDP(network, laddr)
	if err != nil {
		return nil, err //nolint:wrapcheck // Pion's own error, passed through
	}
	return &udpConn{UDPConn: c, link: newLink(n.cfg, n.rng(), c)}, nil
}

// ListenPacket implements transport.Net.
func (n *impairedNet) ListenPacket(network, address string) (net.PacketConn, error) {
	c, err := n.Net.ListenPacket(network, address)
	if err != nil {
		return nil, err //nolint:wrapcheck // Pion's own error, passed through
	}
	return &packetConn{PacketConn: c, link: newLink(n.cfg, n.rng(), c)}, nil
}

// udpConn is a transport.UDPConn whose sends go through its link.
type udpConn struct {
	transport.UDPConn
	link *link
}

func (c *udpConn) WriteTo(b []byte, addr net.Addr) (int, error) { return c.link.send(b, addr) }

func (c *udpConn) WriteToUDP(b []byte, addr *net.UDPAddr) (int, error) {
	return c.link.send(b, addr)
}

func (c *udpConn) WriteMsgUDP(b, _ []byte, addr *net.UDPAddr) (int, int, error) {
	n, err := c.link.send(b, addr)
	return n, 0, err
}

func (c *udpConn) Close() error {
	c.link.close()
	return c.UDPConn.Close() //nolint:wrapcheck // the socket's own error
}

// packetConn is a net.PacketConn whose sends go through its link.
type packetConn struct {
	net.PacketConn
	link *link
}

func (c *packetConn) WriteTo(b []byte, addr net.Addr) (int, error) { return c.link.send(b, addr) }

func (c *packetConn) Close() error {
	c.link.close()
	return c.PacketConn.Close() //nolint:wrapcheck // the socket's own error
}

// link holds one socket's datagrams until their release time, then writes them in release
// order from its own goroutine (started with the first datagram, stopped by close).
type link struct {
	cfg  Config
	out  net.PacketConn // writes the released datagrams
	mu   sync.Mutex
	rng  *rand.Rand
	q    queue
	seq  uint64
	wake chan struct{}
	done chan struct{}
	once sync.Once
	run  bool
	free time.Time // when the link is free to send the next datagram (Rate)
}

func newLink(c Config, rng *rand.Rand, out net.PacketConn) *link {
	return &link{cfg: c, out: out, rng: rng, wake: make(chan struct{}, 1), done: make(chan struct{})}
}

// send queues a copy of b for addr, or drops it. It never blocks.
func (l *link) send(b []byte, addr net.Addr) (int, error) {
	if l.cfg == (Config{Seed: l.cfg.Seed}) {
		return l.out.WriteTo(b, addr) //nolint:wrapcheck // the socket's own error
	}
	l.mu.Lock()
	now := time.Now()
	depart := now
	if l.cfg.Rate > 0 {
		// Serialized behind the datagrams before it; dropped when the queue is too long.
		depart = l.free
		if depart.Before(now) {
			depart = now
		}
		qd := l.cfg.QueueDelay
		if qd <= 0 {
			qd = 50 * time.Millisecond
		}
		if depart.Sub(now) > qd {
			l.mu.Unlock()
			return len(b), nil // the queue is full: tail drop
		}
		depart = depart.Add(time.Duration(int64(len(b)+28) * int64(time.Second) / l.cfg.Rate))
		l.free = depart
	}
	if l.cfg.Loss > 0 && l.rng.Float64() < l.cfg.Loss || len(l.q) >= maxQueued {
		l.mu.Unlock()
		return len(b), nil // lost on the way: the sender cannot tell
	}
	d := l.cfg.Delay
	if j := l.cfg.Jitter; j > 0 {
		d += time.Duration(l.rng.Int64N(int64(2*j)+1)) - j
	}
	l.seq++
	heap.Push(&l.q, datagram{at: depart.Add(max(d, 0)), seq: l.seq, b: append([]byte(nil), b...), to: addr})
	first := !l.run
	l.run = true
	l.mu.Unlock()
	if first {
		go l.loop()
	}
	select {
	case l.wake <- struct{}{}:
	default:
	}
	return len(b), nil
}

func (l *link) close() { l.once.Do(func() { close(l.done) }) }

// loop writes every datagram at its release time until close.
func (l *link) loop() {
	t := time.NewTimer(time.Hour)
	defer t.Stop()
	for {
		l.mu.Lock()
		var due []datagram
		now := time.Now()
		for len(l.q) > 0 && !l.q[0].at.After(now) {
			due = append(due, heap.Pop(&l.q).(datagram))
		}
		next := time.Hour
		if len(l.q) > 0 {
			next = l.q[0].at.Sub(now)
		}
		l.mu.Unlock()
		for _, d := range due {
			_, _ = l.out.WriteTo(d.b, d.to) // a datagram the kernel refuses is lost, as on a link
		}
		t.Reset(next)
		select {
		case <-l.done:
			return
		case <-l.wake:
		case <-t.C:
		}
	}
}

// datagram is one queued send.
type datagram struct {
	at  time.Time
	seq uint64 // ties broken in send order
	b   []byte
	to  net.Addr
}

// queue is a min-heap of datagrams by release time.
type queue []datagram

func (q queue) Len() int { return len(q) }
func (q queue) Less(i, j int) bool {
	if q[i].at.Equal(q[j].at) {
		return q[i].seq < q[j].seq
	}
	return q[i].at.Before(q[j].at)
}
func (q queue) Swap(i, j int) { q[i], q[j] = q[j], q[i] }
func (q *queue) Push(x any)   { *q = append(*q, x.(datagram)) }
func (q *queue) Pop() any {
	old := *q
	d := old[len(old)-1]
	old[len(old)-1] = datagram{}
	*q = old[:len(old)-1]
	return d
}
