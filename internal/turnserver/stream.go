package turnserver

import (
	"errors"
	"os"
	"time"
)

// A TCP or TLS client's connection batches both ways, as the UDP listener does (udp.go):
//
//   - client to peer: it reads ahead (pion reads a frame's worth, 1,600 bytes, at a time;
//     one system call then carries a dozen ChannelData frames), and its allocation's relay
//     socket, once linked to it by the Allocate answer (relayPorts.link), queues what pion
//     relays on the connection's queue, sent before the next read from the connection;
//   - peer to client: the ChannelData frames pion writes from the relay socket's loop are
//     gathered and written together before that loop waits for the peer again.
//
// One goroutine reads at a time (pion's loop, then a relayed TCP connection's copy; when the
// connection ends both may call Read: rmu keeps them apart).

// readAhead is the read-ahead buffer of a client connection: one TLS record's worth.
const readAhead = 16 << 10

// Read hands out what was read ahead, else reads from the connection. It extends the idle
// deadline before each read from the connection: a client silent for the idle time gets a
// timeout error, and pion's loop closes the connection. Until the connection is put to use
// the deadline is at most the allocate deadline.
func (c *trackedConn) Read(p []byte) (int, error) {
	c.rmu.Lock()
	defer c.rmu.Unlock()
	if c.raPos < c.raN {
		n := copy(p, c.ra[c.raPos:c.raN])
		c.raPos += n
		return n, nil
	}
	c.out.flush()
	if len(p) >= readAhead {
		return c.read(p)
	}
	if c.ra == nil {
		c.ra = make([]byte, readAhead)
	}
	n, err := c.read(c.ra)
	c.raPos, c.raN = 0, n
	if n > 0 {
		c.raPos = copy(p, c.ra[:n])
	}
	return c.raPos, err
}

func (c *trackedConn) read(p []byte) (int, error) {
	for {
		used := c.used.Load()
		deadline := time.Now().Add(c.t.idle)
		if !used && c.useBy.Before(deadline) {
			deadline = c.useBy
		}
		_ = c.Conn.SetReadDeadline(deadline)
		n, err := c.Conn.Read(p)
		if err == nil || used || !errors.Is(err, os.ErrDeadlineExceeded) || time.Now().Before(c.useBy) {
			return n, err //nolint:wrapcheck // the conn's own error, for pion
		}
		if c.used.Load() {
			continue // put to use while this read waited on the allocate deadline
		}
		c.t.stats.TCPNoAllocate.Add(1)
		c.t.log("turn: TCP connection closed: no allocation in time", "client", c.RemoteAddr().String(), "deadline", c.t.allocate)
		return n, err //nolint:wrapcheck // the conn's own error, for pion
	}
}

// Write sends p (one STUN message or channel data frame, as pion writes them) to the client,
// with forbidDenied's rewrite; an Allocate or ConnectionBind success marks the connection used,
// and an Allocate success links the relay socket it names to the connection. Relayed data
// from a linked relay socket is gathered until flushWrites.
func (c *trackedConn) Write(p []byte) (int, error) {
	c.markUsed(p)
	if c.t.relays != nil && isType(p, allocateSuccess) {
		c.t.relays.link(p, c)
	}
	if c.linked.Load() && isRelayedData(p) && c.gather(p) {
		return len(p), nil
	}
	if c.t.rewrite != nil {
		if q := c.t.rewrite(p, c.RemoteAddr()); q != nil {
			if _, err := c.Conn.Write(q); err != nil {
				return 0, err //nolint:wrapcheck // the conn's own error, for pion
			}
			return len(p), nil
		}
	}
	return c.Conn.Write(p) //nolint:wrapcheck // the conn's own error, for pion
}

// gather adds p to the frames written together at the next flushWrites (false: p is too
// long, write it at once).
func (c *trackedConn) gather(p []byte) bool {
	if len(p) > maxDatagram {
		return false
	}
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if c.wslab == nil {
		c.wslab = slabs.Get().(*[batchSize * maxDatagram]byte) //nolint:forcetypeassert // the pool's own type
		c.wbuf = c.wslab[:0]
	}
	if len(c.wbuf)+len(p) > cap(c.wbuf) {
		c.writeLocked()
	}
	c.wbuf = append(c.wbuf, p...)
	return true
}

// flushWrites writes the gathered frames. An error is the connection's end, which pion's
// loop sees on its next read.
func (c *trackedConn) flushWrites() {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	c.writeLocked()
	if c.wslab != nil {
		slabs.Put(c.wslab)
		c.wslab, c.wbuf = nil, nil
	}
}

func (c *trackedConn) writeLocked() {
	if len(c.wbuf) > 0 {
		_, _ = c.Conn.Write(c.wbuf)
		c.wbuf = c.wbuf[:0]
	}
}
