package turnserver

import (
	"errors"
	"net"
	"net/netip"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/stun/v4"

	"github.com/switchboard-rtc/switchboard/internal/clientaddr"
)

// The success answers that put a client TCP connection to use: an allocation made on it, or
// (RFC 6062) its binding as the data connection of a relayed TCP connection.
var (
	allocateSuccess       = stun.NewType(stun.MethodAllocate, stun.ClassSuccessResponse)
	connectionBindSuccess = stun.NewType(stun.MethodConnectionBind, stun.ClassSuccessResponse)
)

// trackedListener is the TCP listener: it caps client connections overall and per client
// (clientaddr key), closes connections that are not put to use (an allocation or a
// ConnectionBind) within the allocate deadline and idle ones, and closes them all on close
// (pion's listener loop leaves accepted connections open).
type trackedListener struct {
	net.Listener
	rewrite   func(p []byte, to net.Addr) []byte // forbidDenied: a replacement for p, or nil
	max       int                                // connections in all
	perClient int                                // connections per client key
	clients   clientaddr.Aggregator
	idle      time.Duration
	allocate  time.Duration // from accept to the first allocation or ConnectionBind
	stats     *Stats
	log       func(msg string, args ...any) // debug log
	wg        sync.WaitGroup
	done      chan struct{}
	once      sync.Once

	mu     sync.Mutex
	conns  map[*trackedConn]struct{}
	byKey  map[netip.Prefix]int
	closed bool
}

func (l *trackedListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			l.once.Do(func() { close(l.done) })
			return nil, err //nolint:wrapcheck // the listener's own error, for pion
		}
		key := l.clients.KeyOf(c.RemoteAddr())
		tc := &trackedConn{Conn: c, l: l, key: key, useBy: time.Now().Add(l.allocate)}
		l.mu.Lock()
		switch {
		case l.closed:
		case len(l.conns) >= l.max:
			l.stats.TCPFull.Add(1)
			l.log("turn: TCP connection refused: connection cap reached", "client", c.RemoteAddr().String(), "cap", l.max)
		case l.byKey[key] >= l.perClient:
			l.stats.TCPPerClient.Add(1)
			l.log("turn: TCP connection refused: client over its connection cap", "client", c.RemoteAddr().String(), "key", key.String(), "cap", l.perClient)
		default:
			l.conns[tc] = struct{}{}
			l.byKey[key]++
			l.wg.Add(1)
			l.mu.Unlock()
			return tc, nil
		}
		l.mu.Unlock()
		_ = c.Close()
	}
}

func (l *trackedListener) closeAll() {
	l.mu.Lock()
	l.closed = true
	conns := make([]*trackedConn, 0, len(l.conns))
	for c := range l.conns {
		conns = append(conns, c)
	}
	l.mu.Unlock()
	for _, c := range conns {
		_ = c.Conn.Close() // pion's loop sees the error and calls Close
	}
}

type trackedConn struct {
	net.Conn
	l     *trackedListener
	key   netip.Prefix
	useBy time.Time   // the allocate deadline
	used  atomic.Bool // an Allocate or ConnectionBind succeeded on it
	once  sync.Once
}

// Read extends the idle deadline before each read: a client silent for the idle time gets
// a timeout error, and pion's loop closes the connection. Until the connection is put to use
// the deadline is at most the allocate deadline.
func (c *trackedConn) Read(p []byte) (int, error) {
	for {
		used := c.used.Load()
		deadline := time.Now().Add(c.l.idle)
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
		c.l.stats.TCPNoAllocate.Add(1)
		c.l.log("turn: TCP connection closed: no allocation in time", "client", c.RemoteAddr().String(), "deadline", c.l.allocate)
		return n, err //nolint:wrapcheck // the conn's own error, for pion
	}
}

// markUsed notes an answer that puts the connection to use (p is one message as pion writes
// it) and lifts the allocate deadline of a read in progress.
func (c *trackedConn) markUsed(p []byte) {
	if c.used.Load() || !isType(p, allocateSuccess) && !isType(p, connectionBindSuccess) {
		return
	}
	c.used.Store(true)
	_ = c.Conn.SetReadDeadline(time.Now().Add(c.l.idle))
}

func (c *trackedConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(func() {
		c.l.mu.Lock()
		delete(c.l.conns, c)
		if c.l.byKey[c.key]--; c.l.byKey[c.key] <= 0 {
			delete(c.l.byKey, c.key)
		}
		c.l.mu.Unlock()
		c.l.wg.Done()
	})
	return err //nolint:wrapcheck // the conn's own error, for pion
}
