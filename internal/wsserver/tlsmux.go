package wsserver

import (
	"context"
	"crypto/tls"
	"errors"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"slices"
	"sync"
	"time"

	"github.com/switchboard-rtc/switchboard/internal/clientaddr"
	"github.com/switchboard-rtc/switchboard/internal/stats"
)

// ALPNTURN is the ALPN protocol id of STUN/TURN over TLS (RFC 7443). A client that offers it
// on the shared port gets the TURN server without sniffing.
const ALPNTURN = "stun.turn"

// Defaults of ShareConfig.
const (
	DefaultHandshakeTimeout = 10 * time.Second
	DefaultPendingPerClient = 256
	DefaultMaxPending       = 4096
)

// ShareConfig says how SharedTLSListener shares the HTTPS port with a TURN server. The zero
// value of each field but STUN means its default.
type ShareConfig struct {
	// STUN receives every connection whose client negotiated ALPN "stun.turn" or, without
	// ALPN, sent a STUN message first; the bytes read to tell are read again from it. It owns
	// the connection from then on and must not block long (hand it to an accept loop). Nil
	// closes them.
	STUN func(net.Conn)
	// HandshakeTimeout bounds the TLS handshake and, without ALPN, the first bytes after it
	// (default 10 s; the server passes --header-timeout).
	HandshakeTimeout time.Duration
	// PendingPerClient caps the handshakes under way per client (clientaddr key; default
	// 256, the server passes --http-conns-per-client); MaxPending caps them in all (default
	// 4096). Past either a new connection is closed at once and counted in
	// Stats.RefusedTLSHandshakes.
	PendingPerClient, MaxPending int
	// Clients aggregates client addresses into keys (zero value: IPv4 address, IPv6 /64).
	Clients clientaddr.Aggregator
	// Exempt, if set, reports addresses that PendingPerClient does not cap (the trusted
	// proxies, which carry many clients).
	Exempt func(netip.Addr) bool
	// Stats counts refusals and handshake timeouts; nil: not counted.
	Stats *stats.Stats
	// Closed, if set, is called once for every accepted connection that does not go to
	// net/http, when it closes: refused, failed or timed out here, or handed to STUN and
	// closed there (net/http reports its own through ConnState).
	Closed func()
	// Logger logs refusals at debug level; nil means slog.Default().
	Logger *slog.Logger
}

func (c *ShareConfig) setDefaults() {
	if c.STUN == nil {
		c.STUN = func(conn net.Conn) { _ = conn.Close() }
	}
	if c.HandshakeTimeout <= 0 {
		c.HandshakeTimeout = DefaultHandshakeTimeout
	}
	if c.PendingPerClient <= 0 {
		c.PendingPerClient = DefaultPendingPerClient
	}
	if c.MaxPending <= 0 {
		c.MaxPending = DefaultMaxPending
	}
	if c.Exempt == nil {
		c.Exempt = func(netip.Addr) bool { return false }
	}
	if c.Stats == nil {
		c.Stats = new(stats.Stats)
	}
	if c.Closed == nil {
		c.Closed = func() {}
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
}

// SharedTLSListener is TLSListener for a port that HTTPS shares with TURN over TLS: each
// connection's handshake runs on a goroutine of its own, within sc.HandshakeTimeout and the
// caps on handshakes under way, before net/http sees it. A client that negotiated an ALPN
// protocol (every browser: http/1.1) goes to net/http as the *tls.Conn it is, or to sc.STUN
// for "stun.turn". Without ALPN its first bytes decide (sniff): a STUN message goes to
// sc.STUN, anything else to net/http in a conn that reads those bytes again (ConnTLSContext
// gives its requests their TLS state). Connections the loops take over after a WebSocket
// upgrade work either way. Close ends the handshakes under way and returns when their
// goroutines have.
func SharedTLSListener(inner net.Listener, cfg *tls.Config, sc ShareConfig) net.Listener {
	sc.setDefaults()
	cfg = cfg.Clone()
	if !slices.Contains(cfg.NextProtos, ALPNTURN) {
		cfg.NextProtos = append(cfg.NextProtos, ALPNTURN)
	}
	l := &sharedListener{
		inner: inner, cfg: cfg, sc: sc,
		perClient: clientaddr.NewCounter(sc.PendingPerClient),
		ready:     make(chan net.Conn),
		stopped:   make(chan struct{}),
		done:      make(chan struct{}),
		pending:   make(map[net.Conn]struct{}),
	}
	l.wg.Add(1)
	go l.acceptLoop()
	return l
}

type sharedListener struct {
	inner     net.Listener
	cfg       *tls.Config
	sc        ShareConfig
	perClient *clientaddr.Counter
	ready     chan net.Conn // handshaken connections for net/http
	stopped   chan struct{} // closed when acceptLoop ends, with err set
	err       error
	done      chan struct{} // closed by Close
	closeOnce sync.Once
	wg        sync.WaitGroup // acceptLoop and the handshakes

	mu      sync.Mutex
	pending map[net.Conn]struct{} // raw connections in handshake, closed by Close
	closed  bool
}

// Accept returns the next connection whose handshake is done and that goes to net/http.
func (l *sharedListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.ready:
		return c, nil
	case <-l.stopped:
		return nil, l.err
	}
}

func (l *sharedListener) Addr() net.Addr { return l.inner.Addr() }

// Close stops accepting, closes the connections still in handshake and waits for their
// goroutines.
func (l *sharedListener) Close() error {
	var err error
	l.closeOnce.Do(func() {
		close(l.done)
		err = l.inner.Close()
		l.mu.Lock()
		l.closed = true
		for c := range l.pending {
			_ = c.Close()
		}
		l.mu.Unlock()
		l.wg.Wait()
	})
	return err //nolint:wrapcheck // the listener's own error, for net/http
}

func (l *sharedListener) acceptLoop() {
	defer l.wg.Done()
	var pause time.Duration
	for {
		c, err := l.inner.Accept()
		if err != nil {
			var ne interface{ Temporary() bool }
			if errors.As(err, &ne) && ne.Temporary() && !errors.Is(err, net.ErrClosed) {
				// What net/http does with a temporary accept error: back off and go on.
				pause = min(max(2*pause, 5*time.Millisecond), time.Second)
				t := time.NewTimer(pause)
				select {
				case <-t.C:
					continue
				case <-l.done:
					t.Stop()
				}
			}
			select {
			case <-l.done:
				err = net.ErrClosed
			default:
			}
			l.err = err
			close(l.stopped)
			return
		}
		pause = 0
		l.admit(c)
	}
}

// admit starts c's handshake, or closes c when its client, or everyone, has too many under way.
func (l *sharedListener) admit(c net.Conn) {
	ip := clientaddr.AddrIP(c.RemoteAddr())
	key := l.sc.Clients.Key(ip)
	capped := !l.sc.Exempt(ip)
	l.mu.Lock()
	refused := ""
	switch {
	case l.closed:
		refused = "closing"
	case len(l.pending) >= l.sc.MaxPending:
		refused = "too many TLS handshakes under way"
	case capped && !l.perClient.Acquire(key):
		refused = "client over its TLS handshakes under way"
	default:
		l.pending[c] = struct{}{}
		l.wg.Add(1)
	}
	l.mu.Unlock()
	if refused != "" {
		if refused != "closing" {
			l.sc.Stats.RefusedTLSHandshakes.Add(1)
			l.sc.Logger.Debug("TLS connection refused: "+refused, "client", c.RemoteAddr().String())
		}
		_ = c.Close()
		l.sc.Closed()
		return
	}
	go func() {
		defer l.wg.Done()
		ok := l.handshake(c)
		l.mu.Lock()
		delete(l.pending, c)
		l.mu.Unlock()
		if capped {
			l.perClient.Release(key)
		}
		if !ok {
			_ = c.Close()
			l.sc.Closed()
		}
	}()
}

// handshake runs c's TLS handshake and routes the connection; it reports false when c must
// be closed (the handshake failed or timed out, or the listener is closing).
func (l *sharedListener) handshake(c net.Conn) bool {
	var tc *tls.Conn
	if tcp, ok := c.(*net.TCPConn); ok {
		tc = tls.Server(&loopConn{TCPConn: tcp}, l.cfg)
	} else {
		tc = tls.Server(c, l.cfg)
	}
	_ = tc.SetDeadline(time.Now().Add(l.sc.HandshakeTimeout))
	if err := tc.HandshakeContext(context.Background()); err != nil {
		l.handshakeFailed(err)
		return false
	}
	var first []byte
	switch tc.ConnectionState().NegotiatedProtocol {
	case ALPNTURN:
		_ = tc.SetDeadline(time.Time{})
		l.sc.STUN(&sniffedConn{Conn: tc, onClose: l.sc.Closed})
		return true
	case "":
		var buf [sniffLen]byte
		n, kind := 0, sniffMore
		for kind == sniffMore && n < len(buf) {
			m, err := tc.Read(buf[n:])
			n += m
			if kind = sniff(buf[:n]); kind == sniffMore && err != nil {
				if errors.Is(err, os.ErrDeadlineExceeded) {
					l.sc.Stats.Timeouts[stats.TimeoutTLSHandshake].Add(1)
				}
				return false
			}
		}
		_ = tc.SetDeadline(time.Time{})
		first = buf[:n]
		if kind == sniffSTUN {
			l.sc.STUN(&sniffedConn{Conn: tc, replay: first, onClose: l.sc.Closed})
			return true
		}
	default:
		_ = tc.SetDeadline(time.Time{})
	}
	var hc net.Conn = tc
	if first != nil {
		hc = &sniffedConn{Conn: tc, replay: first}
	}
	select {
	case l.ready <- hc:
		return true
	case <-l.done:
		return false
	}
}

// handshakeFailed counts a handshake cut by the deadline, and answers plain HTTP sent to
// the TLS port with a 400 as net/http does.
func (l *sharedListener) handshakeFailed(err error) {
	if errors.Is(err, os.ErrDeadlineExceeded) {
		l.sc.Stats.Timeouts[stats.TimeoutTLSHandshake].Add(1)
		return
	}
	var re tls.RecordHeaderError
	if errors.As(err, &re) && re.Conn != nil && looksLikeHTTP(re.RecordHeader) {
		_ = re.Conn.SetWriteDeadline(time.Now().Add(time.Second))
		_, _ = re.Conn.Write([]byte("HTTP/1.0 400 Bad Request\r\n\r\nClient sent an HTTP request to an HTTPS server.\n"))
	}
}

// looksLikeHTTP is net/http's test of a TLS record header that is an HTTP request.
func looksLikeHTTP(hdr [5]byte) bool {
	switch string(hdr[:]) {
	case "GET /", "HEAD ", "POST ", "PUT /", "OPTIO":
		return true
	}
	return false
}

// sniffedConn is a TLS connection whose first bytes were read to tell where it goes: Read
// returns them first. onClose, if set, runs once when it closes.
type sniffedConn struct {
	*tls.Conn
	replay  []byte
	onClose func()
	once    sync.Once
}

func (c *sniffedConn) Read(p []byte) (int, error) {
	if len(c.replay) > 0 {
		n := copy(p, c.replay)
		c.replay = c.replay[n:]
		return n, nil
	}
	return c.Conn.Read(p) //nolint:wrapcheck // the conn's own error
}

func (c *sniffedConn) Close() error {
	err := c.Conn.Close()
	if c.onClose != nil {
		c.once.Do(c.onClose)
	}
	return err //nolint:wrapcheck // the conn's own error
}

// unwrapSniffed returns the *tls.Conn of a sniffed connection for the loop to take over; its
// replayed bytes must all have been read (net/http read them with the request).
func unwrapSniffed(c net.Conn) (net.Conn, error) {
	sc, ok := c.(*sniffedConn)
	if !ok {
		return c, nil
	}
	if len(sc.replay) > 0 {
		return nil, errors.New("sniffed bytes not read before the upgrade")
	}
	return sc.Conn, nil
}

type connTLSKey struct{}

// ConnTLSContext is an http.Server ConnContext: for a connection SharedTLSListener sniffed
// (net/http sets Request.TLS only for a *tls.Conn) it keeps the TLS state, which ConnTLS
// returns for each of its requests.
func ConnTLSContext(ctx context.Context, c net.Conn) context.Context {
	if sc, ok := c.(*sniffedConn); ok {
		st := sc.ConnectionState()
		return context.WithValue(ctx, connTLSKey{}, &st)
	}
	return ctx
}

// ConnTLS returns the TLS state ConnTLSContext kept in ctx, or nil.
func ConnTLS(ctx context.Context) *tls.ConnectionState {
	st, _ := ctx.Value(connTLSKey{}).(*tls.ConnectionState)
	return st
}
