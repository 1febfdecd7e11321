package sioserver

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/switchboard-rtc/switchboard/internal/clientaddr"
	"github.com/switchboard-rtc/switchboard/internal/hub"
	"github.com/switchboard-rtc/switchboard/internal/membudget"
	"github.com/switchboard-rtc/switchboard/internal/stats"
	"github.com/switchboard-rtc/switchboard/internal/wsserver"
	"github.com/switchboard-rtc/switchboard/protocol"
)

// ErrBadConfig is returned by New for an invalid Config.
var ErrBadConfig = errors.New("sioserver: bad config")

// Config configures a Server. Zero values mean defaults.
type Config struct {
	// Hub receives every socket's messages. Required.
	Hub *hub.Hub
	// WS is the native endpoint whose event loops, limits and Origin policy the WebSocket
	// transport shares. Required.
	WS *wsserver.Server
	// MaxPayload caps an Engine.IO packet and a long-polling request body (default 64 KiB,
	// which should equal the WebSocket endpoint's MaxFrameBytes). Larger bodies get 413 before
	// they are read.
	MaxPayload int
	// SendQueueBytes caps what waits for a long-polling client's next GET (default 1 MiB); over
	// it the socket is dropped as slow.
	SendQueueBytes int
	// PingInterval is how often the server pings (default 10 s, which should equal the
	// WebSocket endpoint's PingInterval); PingTimeout how long after a ping a client that sends no pong
	// is dropped (default 20 s: the WebSocket endpoint's PeerTimeout minus PingInterval).
	PingInterval time.Duration
	PingTimeout  time.Duration
	// ConnectTimeout is how long a session may stay open without a Socket.IO CONNECT
	// (default 45 s, Socket.IO's connectTimeout); then it is closed.
	ConnectTimeout time.Duration
	// UpgradeTimeout is how long a WebSocket opened to upgrade a polling session may take to
	// finish the upgrade (default 10 s, Engine.IO's upgradeTimeout); it is checked on the
	// ping beat, so a probe is closed between UpgradeTimeout and UpgradeTimeout+PingInterval.
	UpgradeTimeout time.Duration
	// MaxSessions caps the Engine.IO sessions open at once (default 100,000); handshakes
	// over it get 503.
	MaxSessions int
	// SessionsPerClient caps the Engine.IO sessions one client (Clients' key of the TCP peer
	// address) holds open at once (default 64; negative: no cap); its handshakes over it get
	// 429 with Retry-After, so one client cannot fill the MaxSessions table for everyone.
	SessionsPerClient int
	// Clients aggregates peer addresses into clients (zero value: IPv4 address, IPv6 /64).
	Clients clientaddr.Aggregator
	// Budget, when set, is charged for every long-polling queue (memory.go); when nine
	// tenths of it are held, handshakes are answered 503.
	Budget *membudget.Budget
	// Proxies are the trusted reverse proxies: a request from one counts for the client its
	// forwarding headers name (nil: every client is its TCP peer).
	Proxies *clientaddr.Proxies
	// Lobby is where sockets in no room reach each other by socket id (lobby.go): nil means
	// this node's own; in a cluster the bus's (*natsbus.Bus), so they reach each other across
	// nodes.
	Lobby Lobby
	// Logger is the server's logger (default slog.Default()).
	Logger *slog.Logger
}

func (c *Config) setDefaults() {
	if c.MaxPayload == 0 {
		c.MaxPayload = 64 << 10
	}
	if c.SendQueueBytes == 0 {
		c.SendQueueBytes = 1 << 20
	}
	if c.PingInterval == 0 {
		c.PingInterval = 10 * time.Second
	}
	if c.PingTimeout == 0 {
		c.PingTimeout = 20 * time.Second
	}
	if c.MaxSessions == 0 {
		c.MaxSessions = 100_000
	}
	if c.SessionsPerClient == 0 {
		c.SessionsPerClient = 64
	}
	if c.ConnectTimeout == 0 {
		c.ConnectTimeout = 45 * time.Second
	}
	if c.UpgradeTimeout == 0 {
		c.UpgradeTimeout = 10 * time.Second
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
}

func (c *Config) validate() error {
	switch {
	case c.Hub == nil || c.WS == nil:
		return fmt.Errorf("%w: Hub and WS are required", ErrBadConfig)
	case c.MaxPayload < 128:
		return fmt.Errorf("%w: max payload %d", ErrBadConfig, c.MaxPayload)
	case c.SendQueueBytes < c.MaxPayload:
		return fmt.Errorf("%w: send queue %d is smaller than a payload (%d)", ErrBadConfig, c.SendQueueBytes, c.MaxPayload)
	case c.PingInterval <= 0 || c.PingTimeout <= 0:
		return fmt.Errorf("%w: ping interval %v, timeout %v", ErrBadConfig, c.PingInterval, c.PingTimeout)
	case c.ConnectTimeout < 0 || c.UpgradeTimeout < 0:
		return fmt.Errorf("%w: connect timeout %v, upgrade timeout %v", ErrBadConfig, c.ConnectTimeout, c.UpgradeTimeout)
	case c.MaxSessions < 1:
		return fmt.Errorf("%w: max sessions %d", ErrBadConfig, c.MaxSessions)
	}
	return nil
}

// Server is the Socket.IO endpoint. It implements http.Handler for /socket.io/.
type Server struct {
	cfg    Config
	hub    *hub.Hub
	ws     *wsserver.Server
	stats  *stats.Stats
	log    *slog.Logger
	open   []byte // the open packet's fields after the sid, for a polling session
	openWS []byte // the same for a WebSocket session (no upgrades)

	mu        sync.Mutex
	sessions  map[string]*session // by Engine.IO sid
	perClient *clientaddr.Counter // sessions open per client

	lobby   Lobby         // sockets in no room, by socket id
	cluster Cluster       // the lobby's, when it spans a cluster: recovery across nodes (across.go)
	grace   time.Duration // how long a socket whose connection was lost is kept (0: no recovery)

	sockMu sync.Mutex
	socks  map[string]*sock // the sockets a pid can take back, by pid (recovery.go)
	parked int              // how many of them are parked

	closing    atomic.Bool
	restarting atomic.Bool // Restart: sessions closed as lost, sockets handed over (drain.go)
	stop       chan struct{}
	wg         sync.WaitGroup
}

// New returns a Server and starts its timer goroutine; stop it with Close.
func New(cfg Config) (*Server, error) {
	cfg.setDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	s := &Server{
		cfg:       cfg,
		hub:       cfg.Hub,
		ws:        cfg.WS,
		stats:     cfg.Hub.Stats(),
		log:       cfg.Logger,
		sessions:  make(map[string]*session),
		perClient: clientaddr.NewCounter(cfg.SessionsPerClient),
		lobby:     cfg.Lobby,
		grace:     cfg.Hub.ResumeGrace(),
		socks:     make(map[string]*sock),
		stop:      make(chan struct{}),
	}
	if s.lobby == nil {
		s.lobby = newMemLobby(s.stats)
	}
	if c, ok := s.lobby.(Cluster); ok && s.grace > 0 {
		s.cluster = c
		if err := c.HandleSockets(s.serveMove); err != nil {
			return nil, fmt.Errorf("sioserver: %w", err)
		}
	}
	s.open = fmt.Appendf(nil, `","upgrades":["websocket"],"pingInterval":%d,"pingTimeout":%d,"maxPayload":%d}`,
		cfg.PingInterval.Milliseconds(), cfg.PingTimeout.Milliseconds(), cfg.MaxPayload)
	s.openWS = fmt.Appendf(nil, `","upgrades":[],"pingInterval":%d,"pingTimeout":%d,"maxPayload":%d}`,
		cfg.PingInterval.Milliseconds(), cfg.PingTimeout.Milliseconds(), cfg.MaxPayload)
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		s.timers()
	}()
	return s, nil
}

// Engine.IO error codes, sent as {"code":N,"message":...} with an HTTP error status.
const (
	errUnknownTransport = 0
	errUnknownSID       = 1
	errBadMethod        = 2
	errBadRequest       = 3
	errForbidden        = 4
	errBadVersion       = 5
)

func httpError(w http.ResponseWriter, status, code int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	fmt.Fprintf(w, `{"code":%d,"message":%q}`, code, msg)
}

// ServeHTTP serves Engine.IO requests: the handshake, long-polling GETs and POSTs, and
// WebSocket upgrades (new sessions or upgrades of polling ones).
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if !s.ws.OriginAllowed(r) {
		s.stats.HandshakesRefused.Add(1)
		httpError(w, http.StatusForbidden, errForbidden, "origin not allowed")
		return
	}
	if o := r.Header.Get("Origin"); o != "" {
		w.Header().Set("Access-Control-Allow-Origin", o)
		w.Header().Set("Access-Control-Allow-Credentials", "true")
		w.Header().Add("Vary", "Origin")
	}
	if r.Method == http.MethodOptions {
		w.Header().Set("Access-Control-Allow-Methods", "GET, POST")
		if h := r.Header.Get("Access-Control-Request-Headers"); h != "" {
			w.Header().Set("Access-Control-Allow-Headers", h)
		}
		w.WriteHeader(http.StatusNoContent)
		return
	}
	q := r.URL.Query()
	if q.Get("EIO") != "4" {
		httpError(w, http.StatusBadRequest, errBadVersion, "unsupported protocol version: this server speaks Engine.IO 4 (socket.io-client v3 and v4)")
		return
	}
	if s.closing.Load() || s.restarting.Load() {
		httpError(w, http.StatusServiceUnavailable, errBadRequest, "server is shutting down")
		return
	}
	sid := q.Get("sid")
	switch q.Get("transport") {
	case "polling":
		switch {
		case sid == "" && r.Method == http.MethodGet:
			s.handshakePolling(w, r)
		case sid == "":
			httpError(w, http.StatusBadRequest, errBadMethod, "bad handshake method")
		case r.Method == http.MethodGet:
			s.poll(w, r, sid)
		case r.Method == http.MethodPost:
			s.post(w, r, sid)
		default:
			httpError(w, http.StatusBadRequest, errBadRequest, "bad request")
		}
	case "websocket":
		if r.Method != http.MethodGet {
			httpError(w, http.StatusBadRequest, errBadMethod, "bad handshake method")
			return
		}
		if sid == "" {
			s.handshakeWebSocket(w, r)
		} else {
			s.upgrade(w, r, sid)
		}
	default:
		httpError(w, http.StatusBadRequest, errUnknownTransport, "transport unknown")
	}
}

// newSession registers a new session for client, or returns nil and the refusal's HTTP
// status: 429 when the client holds its share of sessions, 503 when the table is full.
func (s *Server) newSession(now time.Time, client netip.Prefix) (*session, int) {
	if !s.perClient.Acquire(client) {
		return nil, http.StatusTooManyRequests
	}
	ss := &session{srv: s, sid: string(protocol.NewPeerID()), client: client, wake: make(chan struct{}, 1)}
	ss.lastPong.Store(now.UnixNano())
	ss.lastPing.Store(now.UnixNano())
	ss.created = now.UnixNano()
	s.mu.Lock()
	if len(s.sessions) >= s.cfg.MaxSessions {
		s.mu.Unlock()
		s.perClient.Release(client)
		return nil, http.StatusServiceUnavailable
	}
	s.sessions[ss.sid] = ss
	ss.acct = s.cfg.Budget.NewAccount(membudget.PollQueue, ss.dropSlow)
	s.stats.SocketIOSessions.Add(1)
	s.mu.Unlock()
	return ss, 0
}

// handshake registers a new session for the client of r, or answers the refusal and
// returns nil.
func (s *Server) handshake(w http.ResponseWriter, r *http.Request) *session {
	if s.cfg.Budget.Full() {
		s.refuseMemory(w)
		return nil
	}
	ss, status := s.newSession(time.Now(), s.cfg.Clients.Key(s.cfg.Proxies.ClientIP(r)))
	switch status {
	case 0:
		return ss
	case http.StatusTooManyRequests:
		s.stats.HandshakesRefused.Add(1)
		s.stats.RefusedClientSessions.Add(1)
		w.Header().Set("Retry-After", "10")
		httpError(w, status, errForbidden, "too many sessions from this address")
	default:
		s.stats.HandshakesRefused.Add(1)
		httpError(w, status, errBadRequest, "too many sessions")
	}
	return nil
}

func (s *Server) session(sid string) *session {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.sessions[sid]
}

func (s *Server) removeSession(ss *session) {
	s.mu.Lock()
	removed := s.sessions[ss.sid] == ss
	if removed {
		delete(s.sessions, ss.sid)
		s.stats.SocketIOSessions.Add(-1)
	}
	s.mu.Unlock()
	if removed {
		s.perClient.Release(ss.client)
		ss.releaseMemory()
	}
}

// appendOpen appends the Engine.IO open packet for sid: a polling session may upgrade to
// WebSocket, a WebSocket one has nowhere to go.
func (s *Server) appendOpen(dst []byte, sid string, ws bool) []byte {
	dst = append(dst, `0{"sid":"`...)
	dst = append(dst, sid...)
	if ws {
		return append(dst, s.openWS...)
	}
	return append(dst, s.open...)
}

func (s *Server) handshakePolling(w http.ResponseWriter, r *http.Request) {
	ss := s.handshake(w, r)
	if ss == nil {
		return
	}
	w.Header().Set("Content-Type", "text/plain; charset=UTF-8")
	_, _ = w.Write(s.appendOpen(nil, ss.sid, false))
}

func (s *Server) handshakeWebSocket(w http.ResponseWriter, r *http.Request) {
	ss := s.handshake(w, r)
	if ss == nil {
		return
	}
	adopted := false
	s.ws.Adopt(w, r, func(c *wsserver.Conn) wsserver.Handler {
		adopted = true
		ss.mu.Lock()
		ss.ws = c
		ss.mu.Unlock()
		c.SendText(func(dst []byte) []byte { return s.appendOpen(dst, ss.sid, true) })
		return (*wsTransport)(ss)
	})
	if !adopted {
		s.removeSession(ss) // the upgrade was refused
	}
}

// upgrade answers a WebSocket request for an existing polling session: the probe.
func (s *Server) upgrade(w http.ResponseWriter, r *http.Request, sid string) {
	ss := s.session(sid)
	if ss == nil {
		httpError(w, http.StatusBadRequest, errUnknownSID, "session ID unknown")
		return
	}
	var refused *refusedWS
	s.ws.Adopt(w, r, func(c *wsserver.Conn) wsserver.Handler {
		ss.mu.Lock()
		defer ss.mu.Unlock()
		if ss.ws != nil || ss.prober != nil || ss.closed {
			// Upgraded already, or another WebSocket is probing: Engine.IO's server accepts
			// the WebSocket and closes it.
			refused = &refusedWS{c: c}
			return refused
		}
		ss.prober = &probe{ss: ss, c: c, since: time.Now()}
		return ss.prober
	})
	if refused != nil {
		refused.c.Close(closeNormal, "session already upgraded or upgrading")
	}
}

// timers pings polling sessions (WebSocket ones are pinged by the WebSocket endpoint's loops)
// and closes the sessions whose client missed a pong or never connected.
func (s *Server) timers() {
	tick := time.NewTicker(min(time.Second, s.cfg.PingInterval/4, s.cfg.ConnectTimeout/4))
	defer tick.Stop()
	for {
		select {
		case <-s.stop:
			return
		case now := <-tick.C:
			s.tick(now)
		}
	}
}

func (s *Server) tick(now time.Time) {
	t := now.UnixNano()
	interval := int64(s.cfg.PingInterval)
	s.mu.Lock()
	all := make([]*session, 0, len(s.sessions))
	for _, ss := range s.sessions {
		all = append(all, ss)
	}
	s.mu.Unlock()
	for _, ss := range all {
		ss.mu.Lock()
		upgraded, doom, doomCode, closed, closedAt := ss.ws != nil, ss.doom, ss.doomCode, ss.closed, ss.closedAt
		connected := ss.id != "" || ss.holding // holding: a CONNECT is being answered
		ss.mu.Unlock()
		switch {
		case closed: // kept to deliver its last packets to a GET that did not come
			if t-closedAt > int64(s.cfg.PingTimeout) {
				s.removeSession(ss)
			}
		case doom != "":
			ss.closeWith(doomCode, doom)
		case !connected && t-ss.created > int64(s.cfg.ConnectTimeout):
			// Socket.IO's connectTimeout: an Engine.IO session that never connected a socket.
			s.stats.Timeouts[stats.TimeoutConnect].Add(1)
			ss.close("timeout")
		case ss.pongLate(t, &s.cfg):
			// Only a pong counts: GETs, other packets and WebSocket messages do not.
			ss.lose("timeout")
		case upgraded:
			continue
		case t-ss.lastPing.Load() >= interval:
			ss.lastPing.Store(t)
			ss.pinged(now) // before the client can answer it
			ss.notePing()
			ss.sendPacket(func(dst []byte) []byte { return append(dst, eioPing) })
		}
	}
}

// Disconnect drops the Engine.IO connection of the socket with id, as a lost connection
// would (the client's reason is "transport close" and it reconnects; the socket is kept for
// its recovery). It reports whether the socket was found.
func (s *Server) Disconnect(id protocol.PeerID) bool {
	s.mu.Lock()
	var found *session
	for _, ss := range s.sessions {
		ss.mu.Lock()
		match := ss.id == id && !ss.closed
		ss.mu.Unlock()
		if match {
			found = ss
			break
		}
	}
	s.mu.Unlock()
	if found == nil {
		return false
	}
	found.lose("closed")
	return true
}

// Shutdown refuses new sessions and closes the open ones (WebSocket ones are closed by the
// WebSocket endpoint's own Shutdown), then stops the timers. ctx bounds nothing yet: polling
// sessions end at once.
func (s *Server) Shutdown(ctx context.Context) error {
	if s.closing.Swap(true) {
		return nil
	}
	close(s.stop)
	s.mu.Lock()
	all := make([]*session, 0, len(s.sessions))
	for _, ss := range s.sessions {
		all = append(all, ss)
	}
	s.mu.Unlock()
	for _, ss := range all {
		ss.close("shutdown")
		s.removeSession(ss)
	}
	s.endAll()
	s.wg.Wait()
	return ctx.Err()
}

// Close is Shutdown without a deadline.
func (s *Server) Close() error {
	return s.Shutdown(context.Background())
}
