package turnserver

import (
	"net"
	"sync"

	"golang.org/x/net/ipv4"
)

// maxSegments and maxGSOBytes bound one segmented message: the kernel's UDP_MAX_SEGMENTS
// (64 before Linux 6.x raised it) and an IP datagram's 64 KiB less headers.
const (
	maxSegments = 64
	maxGSOBytes = 65000
)

// slabs holds the buffers of queues that have datagrams waiting: a queue takes one with its
// first datagram and gives it back once sent, so an idle client costs no buffer.
var slabs = sync.Pool{New: func() any { return new([batchSize * maxDatagram]byte) }}

// relayQueue holds datagrams to send, with the socket to send each through, in the order
// pion wrote them, until flush. Client to peer, a UDP listener has one for the allocations
// made through it, a TCP or TLS client connection one for its allocation; peer to client,
// each relay socket has one. Whoever reads the datagrams pion relays flushes its queue
// before it waits for more, and pion writes them from that reader's loop, so a queue has one
// writer and is flushed by it. The mutex keeps it sound if that ever changes, and lets a
// closing connection or socket flush it.
type relayQueue struct {
	mu   sync.Mutex
	msgs []ipv4.Message
	to   []*udpSender // the socket of each message
	one  [][]byte     // the Buffers of each message, one buffer each
	slab *[batchSize * maxDatagram]byte

	// flush's scratch: the messages of one sendmmsg, their buffers, their GSO headers.
	send []ipv4.Message
	iov  [][]byte
	oob  [][]byte
}

// add queues a copy of p for c to send to addr; a full queue is sent first.
func (q *relayQueue) add(c *udpSender, p []byte, addr net.Addr) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if len(q.msgs) == batchSize {
		q.flushLocked()
	}
	if q.slab == nil {
		q.slab = slabs.Get().(*[batchSize * maxDatagram]byte) //nolint:forcetypeassert // the pool's own type
		if q.one == nil {
			q.one = make([][]byte, batchSize)
		}
	}
	i := len(q.msgs)
	q.one[i] = q.slab[i*maxDatagram : i*maxDatagram+copy(q.slab[i*maxDatagram:(i+1)*maxDatagram], p)]
	q.msgs = append(q.msgs, ipv4.Message{Buffers: q.one[i : i+1 : i+1], Addr: addr})
	q.to = append(q.to, c)
}

func (q *relayQueue) flush() {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.flushLocked()
}

// flushLocked sends the queue: one sendmmsg per run of messages of the same socket, and
// within it, where the socket can, datagrams to one peer of one size (the last may be
// shorter) as one message the kernel splits (UDP GSO), so they cross the stack once. A
// datagram the socket refuses (closed with its allocation, buffer full) is dropped, as a
// write pion made itself would have been.
func (q *relayQueue) flushLocked() {
	if len(q.msgs) == 0 {
		return
	}
	for start := 0; start < len(q.msgs); {
		c := q.to[start]
		end := start + 1
		for end < len(q.msgs) && q.to[end] == c {
			end++
		}
		q.sendRun(c, q.msgs[start:end])
		start = end
	}
	clear(q.msgs)
	clear(q.to)
	clear(q.one)
	q.msgs, q.to = q.msgs[:0], q.to[:0]
	slabs.Put(q.slab)
	q.slab = nil
}

// sendRun sends ms through c.
func (q *relayQueue) sendRun(c *udpSender, ms []ipv4.Message) {
	if !c.gso.Load() {
		writeAll(c.batch, ms)
		return
	}
	if q.iov == nil {
		q.iov = make([][]byte, batchSize)
	}
	send := q.send[:0]
	for i := 0; i < len(ms); {
		first := ms[i].Buffers[0]
		j, total := i+1, len(first)
		for j < len(ms) && j-i < maxSegments && sameAddr(ms[j].Addr, ms[i].Addr) {
			b := ms[j].Buffers[0]
			if len(b) > len(first) || total+len(b) > maxGSOBytes || len(ms[j-1].Buffers[0]) < len(first) {
				break
			}
			total += len(b)
			j++
		}
		if j-i == 1 {
			send = append(send, ms[i])
		} else {
			iov := q.iov[i:j:j]
			for k := range iov {
				iov[k] = ms[i+k].Buffers[0]
			}
			for len(q.oob) <= len(send) {
				q.oob = append(q.oob, make([]byte, 0, gsoSpace))
			}
			send = append(send, ipv4.Message{Buffers: iov, Addr: ms[i].Addr, OOB: appendGSO(q.oob[len(send)][:0], len(first))})
		}
		i = j
	}
	q.send = send
	for len(send) > 0 {
		n, err := c.batch.WriteBatch(send, 0)
		if err == nil {
			send = send[min(n, len(send)):]
			continue
		}
		if n >= len(send) {
			break
		}
		if m := send[n]; len(m.Buffers) > 1 {
			// The kernel or the interface refused the segmented message (no checksum
			// offload, a route whose MTU the size exceeds): its datagrams go one by one, and
			// the socket sends that way from now on.
			c.gso.Store(false)
			for _, b := range m.Buffers {
				writeAll(c.batch, []ipv4.Message{{Buffers: [][]byte{b}, Addr: m.Addr}})
			}
		}
		send = send[n+1:]
	}
	clear(q.iov)
	clear(q.send)
	q.send = q.send[:0]
}

// writeAll sends ms through b, skipping a datagram the socket refuses.
func writeAll(b batchIO, ms []ipv4.Message) {
	for len(ms) > 0 {
		n, err := b.WriteBatch(ms, 0)
		if err != nil {
			n++ // skip the datagram that failed
		}
		ms = ms[min(n, len(ms)):]
	}
}

// sameAddr reports whether a and b are the same UDP address (pion hands the same pointer
// for every datagram on a channel).
func sameAddr(a, b net.Addr) bool {
	if a == b {
		return true
	}
	x, ok1 := a.(*net.UDPAddr)
	y, ok2 := b.(*net.UDPAddr)
	return ok1 && ok2 && x.Port == y.Port && x.IP.Equal(y.IP) && x.Zone == y.Zone
}
