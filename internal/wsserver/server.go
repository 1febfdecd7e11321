package wsserver

import (
	"context"
	"crypto/sha1"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"github.com/switchboard-rtc/switchboard/internal/bus"
	"github.com/switchboard-rtc/switchboard/internal/clientaddr"
	"github.com/switchboard-rtc/switchboard/internal/hub"
	"github.com/switchboard-rtc/switchboard/internal/membudget"
	"github.com/switchboard-rtc/switchboard/internal/stats"
)

// ErrClosed is returned once the server is shutting down.
var ErrClosed = errors.New("wsserver: server closed")

// Subprotocol is the WebSocket subprotocol name of the native protocol. Clients may ask for it;
// the server also accepts clients that ask for none.
const Subprotocol = "switchboard.v1"

// Config configures a Server. Zero values mean defaults.
type Config struct {
	// Hub receives every connection's frames. Required.
	Hub *hub.Hub
	// MaxFrameBytes caps a frame and a reassembled message (default 64 KiB); over it the
	// connection is closed with 1009.
	MaxFrameBytes int
	// SendQueueBytes caps the bytes waiting for a slow peer (default 1 MiB); over it the peer
	// is dropped.
	SendQueueBytes int
	// PingInterval is how long a peer may be quiet before it is pinged (default 10 s).
	PingInterval time.Duration
	// PeerTimeout is how long a peer may be silent before it is dropped (default 30 s).
	PeerTimeout time.Duration
	// CloseTimeout bounds a closing handshake (default 3 s).
	CloseTimeout time.Duration
	// FrameTimeout bounds how long a frame, or a fragmented message, may take to arrive once
	// it began (default 10 s); past it the connection is closed with 1008.
	FrameTimeout time.Duration
	// AllowedOrigins lists the browser origins accepted besides the server's own (origin.go):
	// "https://app.example.com", patterns like "https://*.example.com" or "*.example.com"
	// (any scheme, default port), or "*" for any.
	AllowedOrigins []string
	// PublicURL, when set (e.g. "https://call.example.com"), is where browsers reach the
	// server: it is the server's own origin, and requests for another Host are refused.
	PublicURL string
	// Loops is the number of event loops (default half of GOMAXPROCS, at least 1).
	Loops int
	// Logger is the server's logger (default slog.Default()).
	Logger *slog.Logger
	// Descriptors, when set, keeps count of the process's file descriptors (descriptors.go):
	// while it is Full new connections are refused with 503 before the upgrade, and the
	// server notes (-1) each hijacked connection's descriptor as it closes.
	Descriptors Descriptors
	// ConnsPerClient caps the WebSocket connections one client (Clients' key of the TCP peer
	// address) holds open at once, adopted ones included (default 256; negative: no cap);
	// upgrades over it get 429 with Retry-After before any 101 (clients.go).
	ConnsPerClient int
	// Clients aggregates peer addresses into clients (zero value: IPv4 address, IPv6 /64).
	Clients clientaddr.Aggregator
	// BatchSlice is how long a loop handles one batch of ready connections before it writes
	// what the batch relayed and waits again: it bounds how long one connection's burst
	// delays the others (default 2ms).
	BatchSlice time.Duration
	// Budget, when set, is charged for every send queue and partial frame (memory.go); when
	// nine tenths of it are held, upgrades are answered 503.
	Budget *membudget.Budget
	// KernelSendBuffer is what a connection's kernel send buffer holds when full: charged to
	// Budget while its send queue is not empty.
	KernelSendBuffer int64
	// Proxies are the trusted reverse proxies: a request from one counts for the client its
	// forwarding headers name (nil: every client is its TCP peer).
	Proxies *clientaddr.Proxies
}

func (c *Config) setDefaults() {
	if c.MaxFrameBytes == 0 {
		c.MaxFrameBytes = 64 << 10
	}
	if c.SendQueueBytes == 0 {
		c.SendQueueBytes = 1 << 20
	}
	if c.PingInterval == 0 {
		c.PingInterval = 10 * time.Second
	}
	if c.PeerTimeout == 0 {
		c.PeerTimeout = 30 * time.Second
	}
	if c.CloseTimeout == 0 {
		c.CloseTimeout = 3 * time.Second
	}
	if c.FrameTimeout == 0 {
		c.FrameTimeout = 10 * time.Second
	}
	if c.Loops == 0 {
		// Half the CPUs: the loops do the socket I/O of established connections; the other
		// half is left to handshakes (net/http), the garbage collector and, on a small machine,
		// whatever shares it. One loop also serves peers in strict arrival order, which keeps
		// the latency tail short.
		c.Loops = max(1, runtime.GOMAXPROCS(0)/2)
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.BatchSlice == 0 {
		c.BatchSlice = 2 * time.Millisecond
	}
	if c.ConnsPerClient == 0 {
		c.ConnsPerClient = 256
	}
}

func (c *Config) validate() error {
	switch {
	case c.Hub == nil:
		return errors.New("wsserver: Config.Hub is required")
	case c.MaxFrameBytes < 128 || c.MaxFrameBytes > 16<<20:
		return fmt.Errorf("wsserver: max frame bytes %d is outside 128..16MiB", c.MaxFrameBytes)
	case c.SendQueueBytes < c.MaxFrameBytes:
		return fmt.Errorf("wsserver: send queue %d is smaller than a frame (%d)", c.SendQueueBytes, c.MaxFrameBytes)
	case c.PingInterval <= 0 || c.PeerTimeout <= c.PingInterval:
		return fmt.Errorf("wsserver: peer timeout %v must exceed ping interval %v", c.PeerTimeout, c.PingInterval)
	case c.Loops < 1:
		return fmt.Errorf("wsserver: %d loops", c.Loops)
	case c.FrameTimeout < 0:
		return fmt.Errorf("wsserver: frame timeout %v is negative", c.FrameTimeout)
	}
	return c.validateOrigins()
}

// Server is the native WebSocket endpoint. It implements http.Handler for the upgrade request.
type Server struct {
	cfg    Config
	public *origin // PublicURL's origin; nil when unset

	proxyHinted atomic.Bool // hintProxy has logged
	hub         *hub.Hub
	stats       *stats.Stats
	log         *slog.Logger
	loops       []*loop
	next        atomic.Uint32

	open      atomic.Int64        // this server's connections
	perClient *clientaddr.Counter // connections open per client
	closing   atomic.Bool
	mu        sync.Mutex
	idle      chan struct{} // closed when the last connection closes during shutdown
	wg        sync.WaitGroup
}

// New starts a Server's event loops. Stop them with Shutdown or Close.
func New(cfg Config) (*Server, error) {
	cfg.setDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	s := &Server{cfg: cfg, hub: cfg.Hub, stats: cfg.Hub.Stats(), log: cfg.Logger, idle: make(chan struct{}),
		perClient: clientaddr.NewCounter(cfg.ConnsPerClient)}
	s.public, _ = parsePublicURL(cfg.PublicURL) // validated
	for i := 0; i < cfg.Loops; i++ {
		l, err := newLoop(s)
		if err != nil {
			for _, l := range s.loops {
				l.shutdown()
			}
			s.wg.Wait()
			return nil, err
		}
		s.loops = append(s.loops, l)
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			l.run()
		}()
	}
	return s, nil
}

func (s *Server) tickInterval() time.Duration {
	return min(time.Second, s.cfg.PingInterval/4, s.cfg.CloseTimeout/2, s.cfg.FrameTimeout/4)
}

// ServeHTTP upgrades a GET request to a WebSocket connection.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.serve(w, r, nil)
}

func (s *Server) serve(w http.ResponseWriter, r *http.Request, newHandler func(*Conn) Handler) {
	if status, msg := s.checkUpgrade(r); status != 0 {
		s.stats.HandshakesRefused.Add(1)
		if status == http.StatusUpgradeRequired {
			w.Header().Set("Sec-WebSocket-Version", "13")
		}
		http.Error(w, msg, status)
		return
	}
	if s.cfg.Descriptors != nil && s.cfg.Descriptors.Full() {
		s.refuseDescriptors(w)
		return
	}
	if s.cfg.Budget.Full() {
		s.refuseMemory(w)
		return
	}
	client, ok := s.admitClient(w, r)
	if !ok {
		return
	}
	// Count the connection from here on, so a Shutdown that starts now waits for it; one that
	// started already is seen here (Shutdown sets closing before it reads the count).
	s.open.Add(1)
	if s.closing.Load() {
		s.release()
		s.perClient.Release(client)
		s.stats.HandshakesRefused.Add(1)
		http.Error(w, "server is shutting down", http.StatusServiceUnavailable)
		return
	}
	hj, ok := w.(http.Hijacker)
	if !ok {
		s.release()
		s.perClient.Release(client)
		http.Error(w, "connection cannot be upgraded", http.StatusInternalServerError)
		return
	}
	netConn, brw, err := hj.Hijack()
	if err != nil {
		s.release()
		s.perClient.Release(client)
		s.log.Warn("hijack failed", "err", err)
		return
	}
	if err := s.upgrade(r, netConn, brw.Reader.Buffered(), client, newHandler); err != nil {
		s.log.Debug("upgrade failed", "remote", r.RemoteAddr, "err", err)
	}
}

func (s *Server) checkUpgrade(r *http.Request) (int, string) {
	switch {
	case s.closing.Load():
		return http.StatusServiceUnavailable, "server is shutting down"
	case r.Method != http.MethodGet:
		return http.StatusMethodNotAllowed, "WebSocket upgrade needs GET"
	case !headerHasToken(r.Header, "Connection", "upgrade") || !headerHasToken(r.Header, "Upgrade", "websocket"):
		return http.StatusUpgradeRequired, "this endpoint speaks WebSocket"
	case r.Header.Get("Sec-WebSocket-Version") != "13":
		return http.StatusUpgradeRequired, "unsupported WebSocket version"
	}
	if key, err := base64.StdEncoding.DecodeString(r.Header.Get("Sec-WebSocket-Key")); err != nil || len(key) != 16 {
		return http.StatusBadRequest, "bad Sec-WebSocket-Key"
	}
	if !s.HostAllowed(r) {
		return http.StatusMisdirectedRequest, "this server is not " + r.Host
	}
	if !s.originAllowed(r) {
		return http.StatusForbidden, "origin not allowed"
	}
	return 0, ""
}

func headerHasToken(h http.Header, name, token string) bool {
	for _, v := range h.Values(name) {
		for _, t := range strings.Split(v, ",") {
			if strings.EqualFold(strings.TrimSpace(t), token) {
				return true
			}
		}
	}
	return false
}

var acceptGUID = []byte("258EAFA5-E914-47DA-95CA-C5AB0DC85B11")

func acceptKey(key string) string {
	h := sha1.New()
	h.Write([]byte(key))
	h.Write(acceptGUID)
	return base64.StdEncoding.EncodeToString(h.Sum(nil))
}

// upgrade answers the handshake on netConn and moves the socket to an event loop. The caller
// counted the connection in s.open; upgrade releases it if the socket does not get to a loop.
func (s *Server) upgrade(r *http.Request, netConn net.Conn, buffered int, client netip.Prefix, newHandler func(*Conn) Handler) (err error) {
	// A TLS connection's own TCP connection is closed, not the TLS one: that would send a
	// close_notify the loop, which takes the session over on a duplicate descriptor, never
	// wrote.
	closeConn := netConn.Close
	defer func() { _ = closeConn() }()
	registered := false
	defer func() {
		if !registered {
			s.release()
			s.perClient.Release(client)
			s.fdClosed() // netConn, closed by the defer above
		}
	}()
	if buffered > 0 {
		// The client sent frames before it saw our answer; RFC 6455 §4.1 forbids that.
		return errors.New("data before handshake completed")
	}
	// A connection SharedTLSListener sniffed: the loop takes over the TLS connection under it.
	if netConn, err = unwrapSniffed(netConn); err != nil {
		return err
	}
	tcp, ok := netConn.(*net.TCPConn)
	var tc *tls.Conn
	var lc *loopConn
	out := io.Writer(netConn)
	if t, isTLS := netConn.(*tls.Conn); isTLS {
		if lc, ok = t.NetConn().(*loopConn); ok {
			tc, tcp, closeConn = t, lc.TCPConn, lc.TCPConn.Close
		}
	}
	if !ok {
		return fmt.Errorf("not a TCP connection: %T", netConn)
	}
	// The loop's own descriptor first: out of descriptors, the client gets a 503 rather than
	// a 101 on a socket that is then dropped.
	fd, err := dupConn(tcp)
	if err != nil {
		s.stats.HandshakesRefused.Add(1)
		if errors.Is(err, unix.EMFILE) || errors.Is(err, unix.ENFILE) {
			s.stats.RefusedDescriptors.Add(1)
		}
		_, _ = out.Write([]byte(refusedResponse))
		return err
	}
	resp := "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: " +
		acceptKey(r.Header.Get("Sec-WebSocket-Key")) + "\r\n"
	if headerHasToken(r.Header, "Sec-WebSocket-Protocol", Subprotocol) {
		resp += "Sec-WebSocket-Protocol: " + Subprotocol + "\r\n"
	}
	resp += "\r\n"
	// A fresh socket's send buffer takes these few bytes at once: no deadline needed.
	if _, err := out.Write([]byte(resp)); err != nil {
		unix.Close(fd)
		return fmt.Errorf("write handshake: %w", err)
	}
	now := time.Now()
	c := &conn{fd: fd, client: client, lastRead: now.UnixNano(), lastPing: now.UnixNano()}
	c.l = s.loops[int(s.next.Add(1))%len(s.loops)]
	if tc != nil {
		c.tls, lc.c = tc, c // from here on its records go through c's descriptor
	}
	s.newAccounts(c)
	if newHandler != nil {
		c.ext = newHandler(&Conn{c: c})
	} else {
		c.sess = s.hub.Connect(c, now)
		c.sess.SetClient(client)
		c.sess.AsyncJoins() // a cluster join must not stall the loop's other connections
		// A browser cannot set headers on a WebSocket: the access token may come in the URL.
		if tok := r.URL.Query().Get("access_token"); tok != "" {
			c.sess.SetAccessToken(tok)
		}
	}
	s.stats.Handshakes.Add(1)
	s.stats.Connections.Add(1)
	if err := c.l.add(c); err != nil {
		// A flush still due (an adopting protocol's first packet, queued during the loop's
		// batch) must not write to the descriptor once closed, and what it queued is given back.
		c.mu.Lock()
		c.closed = true
		c.out = nil
		c.releaseAccounts()
		unix.Close(fd)
		c.mu.Unlock()
		s.stats.Connections.Add(-1)
		if c.ext != nil {
			c.ext.Closed("shutdown") // its handler may hold a session: let it go
		}
		return err
	}
	registered = true
	// A Shutdown that began while this handshake was under way may have said goodbye to the
	// loops' connections before this one was among them: say it to this one too. (Shutdown
	// sets closing before it posts its goodbyes, so one of the two always sees this conn.)
	if s.closing.Load() {
		c.l.post(func(now time.Time) { c.closeWith(hub.CloseGoingAway, "server shutting down", "shutdown", now) })
	}
	return nil
}

func (s *Server) connClosed(c *conn) {
	s.perClient.Release(c.client)
	s.fdClosed()
	s.stats.Connections.Add(-1)
	s.release()
}

// release uncounts one connection; the last one during shutdown wakes Shutdown.
func (s *Server) release() {
	if s.open.Add(-1) == 0 && s.closing.Load() {
		s.mu.Lock()
		select {
		case <-s.idle:
		default:
			close(s.idle)
		}
		s.mu.Unlock()
	}
}

// Shutdown refuses new connections, sends every peer a close frame (1001 Going Away), waits
// until they are gone or ctx ends, then closes what is left and stops the event loops.
func (s *Server) Shutdown(ctx context.Context) error {
	return s.shutdown(ctx, hub.CloseGoingAway, "server shutting down", "shutdown")
}

// Restart is Shutdown for a restart: every connection is closed with 1012 (service restart)
// and reason "restart", after what is queued for it, for its client to come back at once and
// resume. The hub's presences are muted first (hub.Shutdown(true)), so nobody hears a leave.
func (s *Server) Restart(ctx context.Context) error {
	return s.shutdown(ctx, hub.CloseServiceRestart, "restart", bus.ReasonRestart)
}

func (s *Server) shutdown(ctx context.Context, code int, reason, leaveReason string) error {
	if s.closing.Swap(true) {
		s.wg.Wait()
		return nil
	}
	s.hub.Drain()
	for _, l := range s.loops {
		l.post(func(now time.Time) {
			for _, c := range l.snapshot() {
				c.closeWith(code, reason, leaveReason, now)
			}
		})
	}
	var err error
	if s.open.Load() > 0 {
		select {
		case <-s.idle:
		case <-ctx.Done():
			err = fmt.Errorf("wsserver: shutdown: %w", ctx.Err())
		}
	}
	for _, l := range s.loops {
		l.shutdown()
	}
	s.wg.Wait()
	return err
}

// Close stops the server at once, closing every connection without waiting.
func (s *Server) Close() error {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := s.Shutdown(ctx); err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	return nil
}
