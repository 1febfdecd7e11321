package turnserver

import (
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/stun/v4"

	"github.com/switchboard-rtc/switchboard/internal/clientaddr"
	"github.com/switchboard-rtc/switchboard/internal/fdlimit"
)

// The success answers that put a client TCP connection to use: an allocation made on it, or
// (RFC 6062) its binding as the data connection of a relayed TCP connection.
var (
	allocateSuccess       = stun.NewType(stun.MethodAllocate, stun.ClassSuccessResponse)
	connectionBindSuccess = stun.NewType(stun.MethodConnectionBind, stun.ClassSuccessResponse)
)

// connTable holds the client connections of every stream listener (TCP, and TLS when on): it
// caps them overall and per client (clientaddr key), so the caps are the same whichever way
// clients come, and closes them all on close (pion's listener loops leave accepted
// connections open).
type connTable struct {
	rewrite   func(p []byte, to net.Addr) []byte // forbidDenied: a replacement for p, or nil
	max       int                                // connections in all
	perClient int                                // connections per client key
	clients   clientaddr.Aggregator
	idle      time.Duration
	allocate  time.Duration // from accept to the first allocation or ConnectionBind
	stats     *Stats
	log       func(msg string, args ...any) // debug log
	relays    *relayPorts                   // links a connection's relay socket to its queue
	wg        sync.WaitGroup

	mu     sync.Mutex
	conns  map[*trackedConn]struct{}
	byKey  map[netip.Prefix]int
	closed bool
}

// trackedListener is a stream listener (TCP, or connections already in TLS) whose client
// connections go into its table: over a cap they are closed at accept; those not put to use
// (an allocation or a ConnectionBind) within the allocate deadline and idle ones are closed.
type trackedListener struct {
	net.Listener
	t    *connTable
	done chan struct{} // closed when Accept has failed: pion's loop is over
	once sync.Once
}

func (l *trackedListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			l.once.Do(func() { close(l.done) })
			return nil, err //nolint:wrapcheck // the listener's own error, for pion
		}
		if tc := l.t.add(c); tc != nil {
			return tc, nil
		}
		_ = closeConn(c)
	}
}

// survivingAccept wraps a TCP listener of the server's so that accept failing for want of
// descriptors (EMFILE, ENFILE) pauses and retries, logged once in a while, instead of
// returning the error, which would end the accept loop for good (pion's, or ListenTLS's).
func survivingAccept(ln net.Listener, log *slog.Logger) net.Listener {
	return fdlimit.NewListener(ln, nil, log, nil)
}

// closeConn closes a client connection. One over TLS is ended without a close_notify: its
// TCP connection is closed first. crypto/tls would wait up to 5 s for room in the send buffer
// of a client that stopped reading (the table closes its connections one after the other), and
// fail, for pion to log as a warning, when the client is gone (a reset); TURN's own framing
// tells a cut message, so the alert is not needed.
func closeConn(c net.Conn) error {
	t, ok := c.(interface{ NetConn() net.Conn })
	if !ok {
		return c.Close() //nolint:wrapcheck // the conn's own error, for pion
	}
	err := t.NetConn().Close()
	_ = c.Close() // the TLS side's (and the shared port's) bookkeeping; fails at once
	return err    //nolint:wrapcheck // the conn's own error, for pion
}

// add tracks c, or returns nil when c must be closed (over a cap, or the table is closed).
func (t *connTable) add(c net.Conn) *trackedConn {
	key := t.clients.KeyOf(c.RemoteAddr())
	tc := &trackedConn{Conn: c, t: t, key: key, useBy: time.Now().Add(t.allocate)}
	t.mu.Lock()
	defer t.mu.Unlock()
	switch {
	case t.closed:
	case len(t.conns) >= t.max:
		t.stats.TCPFull.Add(1)
		t.log("turn: TCP connection refused: connection cap reached", "client", c.RemoteAddr().String(), "cap", t.max)
	case t.byKey[key] >= t.perClient:
		t.stats.TCPPerClient.Add(1)
		t.log("turn: TCP connection refused: client over its connection cap", "client", c.RemoteAddr().String(), "key", key.String(), "cap", t.perClient)
	default:
		t.conns[tc] = struct{}{}
		t.byKey[key]++
		t.wg.Add(1)
		return tc
	}
	return nil
}

func (t *connTable) closeAll() {
	t.mu.Lock()
	t.closed = true
	conns := make([]*trackedConn, 0, len(t.conns))
	for c := range t.conns {
		conns = append(conns, c)
	}
	t.mu.Unlock()
	for _, c := range conns {
		_ = closeConn(c.Conn) // pion's loop sees the error and calls Close
	}
}

type trackedConn struct {
	net.Conn
	t     *connTable
	key   netip.Prefix
	useBy time.Time   // the allocate deadline
	used  atomic.Bool // an Allocate or ConnectionBind succeeded on it
	once  sync.Once

	// Read ahead and batched writes (stream.go). rmu serializes readers: pion's loop and a
	// ConnectionBind's copy may both be in Read when the connection ends.
	rmu        sync.Mutex
	ra         []byte
	raPos, raN int
	out        relayQueue
	wmu        sync.Mutex
	wslab      *[batchSize * maxDatagram]byte
	wbuf       []byte
	linked     atomic.Bool
}

// markUsed notes an answer that puts the connection to use (p is one message as pion writes
// it) and lifts the allocate deadline of a read in progress.
func (c *trackedConn) markUsed(p []byte) {
	if c.used.Load() || !isType(p, allocateSuccess) && !isType(p, connectionBindSuccess) {
		return
	}
	c.used.Store(true)
	_ = c.Conn.SetReadDeadline(time.Now().Add(c.t.idle))
}

func (c *trackedConn) Close() error {
	err := closeConn(c.Conn)
	c.out.flush()
	c.flushWrites()
	c.once.Do(func() {
		c.t.mu.Lock()
		delete(c.t.conns, c)
		if c.t.byKey[c.key]--; c.t.byKey[c.key] <= 0 {
			delete(c.t.byKey, c.key)
		}
		c.t.mu.Unlock()
		c.t.wg.Done()
	})
	return err //nolint:wrapcheck // the conn's own error, for pion
}

// count returns how many client connections are open.
func (t *connTable) count() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.conns)
}
