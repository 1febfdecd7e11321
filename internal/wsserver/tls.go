package wsserver

import (
	"crypto/tls"
	"errors"
	"io"
	"net"
	"time"

	"golang.org/x/sys/unix"
)

// TLSListener returns a listener whose connections speak TLS with cfg, in a form the event
// loops can take over after a WebSocket upgrade: while net/http serves a connection its TLS
// records go through the TCP connection as usual; once upgraded, the loop reads and writes
// them on its own descriptor, non-blocking, like any other connection's bytes (tls.go).
func TLSListener(inner net.Listener, cfg *tls.Config) net.Listener {
	return &tlsListener{Listener: inner, cfg: cfg}
}

type tlsListener struct {
	net.Listener
	cfg *tls.Config
}

func (l *tlsListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	if tcp, ok := c.(*net.TCPConn); ok {
		return tls.Server(&loopConn{TCPConn: tcp}, l.cfg), nil
	}
	return tls.Server(c, l.cfg), nil
}

// loopConn is the transport under a TLS connection: the TCP connection while net/http serves
// it, then, once c is set (before the loop owns c), the loop's descriptor: reads return
// errWouldBlock instead of waiting (crypto/tls keeps its state over a temporary error and the
// loop reads again when epoll says so), and writes never fail for want of room (what the
// socket cannot take waits in c's queue, as for a plain connection).
type loopConn struct {
	*net.TCPConn
	c *conn
}

// errWouldBlock is a temporary net.Error: the descriptor has nothing to read now.
var errWouldBlock = wouldBlock{}

type wouldBlock struct{}

func (wouldBlock) Error() string   { return "would block" }
func (wouldBlock) Timeout() bool   { return true }
func (wouldBlock) Temporary() bool { return true }

// Read is called by crypto/tls from the loop's readTLS, with c.mu held.
func (lc *loopConn) Read(p []byte) (int, error) {
	if lc.c == nil {
		return lc.TCPConn.Read(p)
	}
	if lc.c.closed {
		return 0, net.ErrClosed // the descriptor's number may be another connection's by now
	}
	for {
		n, err := unix.Read(lc.c.fd, p)
		switch {
		case errors.Is(err, unix.EINTR):
			continue
		case errors.Is(err, unix.EAGAIN):
			return 0, errWouldBlock
		case err != nil:
			return 0, err
		case n == 0:
			return 0, io.EOF
		}
		return n, nil
	}
}

// Write is called by crypto/tls with c.mu held: from conn.write, and from readTLS when
// reading makes crypto/tls answer (an alert for a bad record, a KeyUpdate).
func (lc *loopConn) Write(p []byte) (int, error) {
	if lc.c == nil {
		return lc.TCPConn.Write(p)
	}
	return lc.c.writeRawLocked(p)
}

var errSlow = errors.New("send queue full")

// writeRawLocked writes the bytes of a TLS record, queueing what the socket cannot take; it
// fails only when the connection is gone or its queue overflowed (it is then shut down).
// c.mu is held.
func (c *conn) writeRawLocked(p []byte) (int, error) {
	if c.closed {
		return 0, net.ErrClosed // never write a descriptor the loop has closed
	}
	if err := c.sendLocked(p, false, c.l.srv.cfg.SendQueueBytes+tlsRecordOverhead); err != nil {
		return 0, err
	}
	return len(p), nil
}

// tlsRecordOverhead is what TLS adds to the bytes of a queue's worth of frames: a header and
// a tag per 16 KiB record, with room to spare.
const tlsRecordOverhead = 4 << 10

// readTLS reads what the client sent through its TLS connection, record by record, until the
// descriptor has nothing more: crypto/tls may hold decrypted bytes the descriptor no longer
// shows, and epoll would not report them. It stops once the connection is closed (a close
// frame, a protocol error): after that the descriptor's number may be handed to a new
// connection, whose bytes must not be read here, nor an alert written to it. Each read holds
// c.mu, as writes do, because crypto/tls may write while it reads. Loop goroutine only.
func (l *loop) readTLS(c *conn, now time.Time) {
	for c.state != stateClosed {
		c.mu.Lock()
		n, err := c.tls.Read(l.buf)
		c.mu.Unlock()
		if n > 0 {
			c.lastRead = now.UnixNano()
			if c.state == stateOpen {
				l.consume(c, l.buf[:n], now)
			}
		}
		switch {
		case err == nil:
			continue
		case errors.Is(err, errWouldBlock):
			return
		default:
			l.loseConn(c, "closed")
			return
		}
	}
}

// consume handles data read for c after what it carried: complete frames are handled, a
// partial one is kept. Loop goroutine only.
func (l *loop) consume(c *conn, data []byte, now time.Time) {
	if len(c.in) > 0 {
		data = append(c.in, data...)
	} else {
		c.inSince = now.UnixNano()
	}
	used := c.process(data, now)
	rest := data[used:]
	if c.state != stateOpen || len(rest) == 0 {
		c.in = nil
		return
	}
	if used > 0 {
		c.inSince = now.UnixNano()
	}
	c.in = append(make([]byte, 0, max(2*len(rest), minPartial)), rest...)
}
