package hub

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/switchboard-rtc/switchboard/internal/bus"
	"github.com/switchboard-rtc/switchboard/internal/membudget"
	"github.com/switchboard-rtc/switchboard/internal/resume"
	"github.com/switchboard-rtc/switchboard/internal/stats"
	"github.com/switchboard-rtc/switchboard/protocol"
)

// Config configures a Hub. The zero value means defaults.
type Config struct {
	// MaxPeersPerRoom caps room size (default 50).
	MaxPeersPerRoom int
	// MaxMetaBytes caps a join's meta object (default 1024).
	MaxMetaBytes int
	// RateLimit is the sustained messages per second a connection may send (default 200);
	// RateBurst the bucket size (default 2×RateLimit).
	RateLimit float64
	RateBurst float64
	// RateStrikes is how many rejected messages a connection may send, refilled at a tenth of
	// that per second, before it is closed (default 100).
	RateStrikes float64
	// ResumeGrace is how long the presence of a peer whose connection was lost (no close
	// frame, no leave) is kept for the client to take back with its resume token
	// (default 15s; negative disables resumption).
	ResumeGrace time.Duration
	// ResumeHoldEvents and ResumeHoldBytes bound a presence's outbox, the events not yet
	// known read (defaults 256 events, 256 KiB): connected, the oldest are dropped past
	// either; lost, the presence leaves at once.
	ResumeHoldEvents int
	ResumeHoldBytes  int
	// Resume mints and verifies resume tokens; nil means tokens signed with a random secret
	// of this process (they do not survive a restart).
	Resume *resume.Tokens
	// Node is this node's id in the tokens it mints ("" on a single node).
	Node string
	// Budget, when set, is charged for the presences' outboxes; its reclaimer may drop the
	// biggest (a lost presence then leaves as when its outbox overflows).
	Budget *membudget.Budget
	// ICEServers are handed to every peer in its welcome.
	ICEServers []protocol.ICEServer
	// ICEServersFor, when set, returns servers for one peer (with credentials minted for it)
	// that its welcome carries after ICEServers. It is called at each join.
	ICEServersFor func(peer protocol.PeerID, now time.Time) []protocol.ICEServer
	// Authorize, when set, makes every new presence present an access token (access.go);
	// nil leaves the hub open: any client joins any room, with TURN credentials.
	Authorize Authorizer
	// Clients are the per-client rate limits (clients.go).
	Clients ClientLimits
	// Bus routes events; nil means a new in-memory bus.
	Bus bus.Bus
	// Stats receives counters; nil means a private set.
	Stats *stats.Stats
	// Logger is the hub's logger; nil means slog.Default().
	Logger *slog.Logger
}

func (c *Config) setDefaults() {
	if c.MaxPeersPerRoom == 0 {
		c.MaxPeersPerRoom = 50
	}
	if c.MaxMetaBytes == 0 {
		c.MaxMetaBytes = 1024
	}
	if c.RateLimit == 0 {
		c.RateLimit = 200
	}
	if c.RateBurst == 0 {
		c.RateBurst = 2 * c.RateLimit
	}
	if c.RateStrikes == 0 {
		c.RateStrikes = 100
	}
	if c.ResumeGrace == 0 {
		c.ResumeGrace = 15 * time.Second
	}
	if c.ResumeHoldEvents == 0 {
		c.ResumeHoldEvents = 256
	}
	if c.ResumeHoldBytes == 0 {
		c.ResumeHoldBytes = 256 << 10
	}
	c.Clients.setDefaults()
	if c.Resume == nil {
		c.Resume, _ = resume.New(resume.Config{}) // a random secret: cannot fail
	}
	if c.Stats == nil {
		c.Stats = new(stats.Stats)
	}
	if c.Bus == nil {
		c.Bus = bus.NewMemory(c.Stats)
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
}

func (c *Config) validate() error {
	switch {
	case c.MaxPeersPerRoom < 0:
		return fmt.Errorf("%w: max peers per room %d", ErrBadConfig, c.MaxPeersPerRoom)
	case c.MaxMetaBytes < 0:
		return fmt.Errorf("%w: max meta bytes %d", ErrBadConfig, c.MaxMetaBytes)
	case c.ResumeHoldEvents < 0 || c.ResumeHoldBytes < 0:
		return fmt.Errorf("%w: resume hold %d events %d bytes", ErrBadConfig, c.ResumeHoldEvents, c.ResumeHoldBytes)
	case c.RateLimit < 0 || c.RateBurst < 1 || c.RateStrikes < 1:
		return fmt.Errorf("%w: rate limit %v burst %v strikes %v", ErrBadConfig, c.RateLimit, c.RateBurst, c.RateStrikes)
	}
	return c.Clients.validate()
}

// Hub is the signaling hub. It is safe for concurrent use.
type Hub struct {
	cfg        Config
	bus        bus.Bus
	stats      *stats.Stats
	log        *slog.Logger
	iceServers []byte
	stunOnly   []byte // the ICE servers of peers whose grant has no TURN
	draining   chan struct{}

	tokens *resume.Tokens

	mu      sync.Mutex
	parked  map[string]*parked     // lost presences by presenceKey
	holders map[string]*Session    // connected resumable presences by presenceKey
	owners  map[*bus.Member]*owner // who holds each presence of this node, for Kick
	bg      sync.WaitGroup         // spends of the tokens of presences that ended
	ending  map[string]struct{}    // the jtis of those spends under way
	// contested are the jtis a resume spent while their presence ended here, until they
	// expire (at most maxContested): that resume must not re-create it.
	contested map[string]time.Time

	clients   clientTables   // per-client rates (clients.go)
	slowJoins bool           // the bus's joins wait on the network (bus.SlowJoiner)
	joins     sync.WaitGroup // asynchronous joins under way
}

// New returns a Hub for cfg.
func New(cfg Config) (*Hub, error) {
	cfg.setDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	ice := cfg.ICEServers
	if ice == nil {
		ice = []protocol.ICEServer{}
	}
	iceJSON, err := json.Marshal(ice)
	if err != nil {
		return nil, fmt.Errorf("hub: encode ICE servers: %w", err)
	}
	h := &Hub{
		cfg:        cfg,
		bus:        cfg.Bus,
		tokens:     cfg.Resume,
		stats:      cfg.Stats,
		log:        cfg.Logger,
		iceServers: iceJSON,
		draining:   make(chan struct{}),
		parked:     make(map[string]*parked),
		slowJoins:  isSlowJoiner(cfg.Bus),
		holders:    make(map[string]*Session),
		ending:     make(map[string]struct{}),
		contested:  make(map[string]time.Time),
		owners:     make(map[*bus.Member]*owner),
	}
	h.initClients()
	if err := h.initSTUN(); err != nil {
		return nil, fmt.Errorf("hub: encode ICE servers: %w", err)
	}
	return h, nil
}

// iceServersFor returns the welcome's iceServers for peer: the static list, plus the
// per-peer ones when Config.ICEServersFor is set.
func (h *Hub) iceServersFor(peer protocol.PeerID) []byte {
	if h.cfg.ICEServersFor == nil {
		return h.iceServers
	}
	all := append(append([]protocol.ICEServer{}, h.cfg.ICEServers...), h.cfg.ICEServersFor(peer, time.Now())...)
	b, err := json.Marshal(all)
	if err != nil {
		h.log.Warn("encode ICE servers", "peer", peer, "err", err)
		return h.iceServers
	}
	return b
}

func isSlowJoiner(b bus.Bus) bool {
	sj, ok := b.(bus.SlowJoiner)
	return ok && sj.SlowJoins()
}

// WaitJoins waits until no asynchronous join is under way, or ctx ends.
func (h *Hub) WaitJoins(ctx context.Context) error {
	done := make(chan struct{})
	go func() {
		h.joins.Wait()
		close(done)
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("hub: joins under way: %w", ctx.Err())
	}
}

// Stats returns the hub's counters.
func (h *Hub) Stats() *stats.Stats { return h.stats }

// Bus returns the hub's bus.
func (h *Hub) Bus() bus.Bus { return h.bus }

// Ready reports whether the hub takes new joins.
func (h *Hub) Ready() error {
	select {
	case <-h.draining:
		return ErrDraining
	default:
	}
	if err := h.bus.Ready(); err != nil {
		return fmt.Errorf("hub: bus not ready: %w", err)
	}
	return nil
}

// Drain makes the hub refuse new joins. Existing sessions go on until their transports close;
// presences kept for resumption leave now (reason shutdown), and lost connections no longer
// keep theirs.
func (h *Hub) Drain() {
	h.mu.Lock()
	select {
	case <-h.draining:
	default:
		close(h.draining)
	}
	h.mu.Unlock()
	h.expireAll()
}

// Connect starts a session for one client connection whose events go to sink.
// now is the connection's start time, used by the rate limiter.
func (h *Hub) Connect(sink bus.Sink, now time.Time) *Session {
	s := &Session{hub: h, sink: sink}
	s.bucket.init(h.cfg.RateBurst, h.cfg.RateStrikes, now)
	return s
}

// Session is one connection's presence in the hub. Its methods are called by the transport
// from one goroutine at a time.
type Session struct {
	hub    *Hub
	sink   bus.Sink
	bucket bucket

	// mu guards the presence: another connection resuming it takes it over.
	mu      sync.Mutex
	member  *bus.Member
	rsink   *resumeSink // the member's sink and outbox when resumable
	key     string      // the presence's key in the hub's maps when resumable
	joining bool        // an asynchronous join is under way (until its welcome or failure)
	joinSeq uint64      // numbers asynchronous joins, so a finished one never clears a later one's flag
	ended   bool        // the transport ended the session (End)
	// fixedID, when set, is the peer id every join of this session takes (UsePeerID).
	fixedID protocol.PeerID
	// accessToken is the token the transport received with the connection (SetAccessToken).
	accessToken string
	// turn: the presence's grant includes TURN credentials.
	turn bool
	// async: joins on a bus whose joins block run on their own goroutine (AsyncJoins).
	async bool
	// client is the key of the client the connection comes from (SetClient); invalid: none.
	client netip.Prefix
}

// AsyncJoins lets the session's joins run on their own goroutine when the bus's joins wait on
// the network (a cluster bus): the transport's goroutine goes on serving other connections
// meanwhile. The outcome arrives through the sink — the welcome, or an error frame carrying
// the join's id — and Handle returns nil for a join it started. A transport that enables it
// must end the session with End. Call it before the first frame.
func (s *Session) AsyncJoins() { s.async = true }

// End ends the session for good because its connection is gone: Drop(reason) when lost is
// set (the presence may be resumed), else Leave(reason). A join still under way leaves as
// soon as it completes.
func (s *Session) End(reason string, lost bool) {
	s.mu.Lock()
	s.ended = true
	s.mu.Unlock()
	if lost {
		s.Drop(reason)
	} else {
		s.Leave(reason)
	}
}

// UsePeerID makes the session's joins take id as their peer id instead of a fresh one. A
// transport whose connections are addressable before they join (Socket.IO's socket.id) calls
// it once, before the first join. id must be as unguessable as protocol.NewPeerID's.
func (s *Session) UsePeerID(id protocol.PeerID) { s.fixedID = id }

// Allow charges one incoming message received at now to the session's rate limit. When the
// message is over the limit it sends the rate-limited error and reports false; the error is a
// *CloseError when the connection has been over the limit too often and must be closed.
func (s *Session) Allow(now time.Time) (bool, error) {
	if ok, kick := s.bucket.take(s.hub.cfg.RateLimit, s.hub.cfg.RateBurst, s.hub.cfg.RateStrikes, now); !ok {
		s.sendError(nil, protocol.Errorf(protocol.CodeRateLimited, "over %g messages/s", s.hub.cfg.RateLimit))
		if kick {
			s.hub.stats.Kicks.Add(1)
			return false, &CloseError{Code: ClosePolicyViolation, Reason: "rate limit exceeded", LeaveReason: "kicked"}
		}
		return false, nil
	}
	return true, nil
}

// cur returns the session's member, or nil when it is not in a room.
func (s *Session) cur() *bus.Member {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.member
}

// set makes m the session's presence.
func (s *Session) set(m *bus.Member, rsink *resumeSink, key string, turn bool) {
	s.mu.Lock()
	s.member, s.rsink, s.key, s.turn = m, rsink, key, turn
	// Welcomed: the client may leave and join again before the bus's Join has returned.
	s.joining = false
	s.mu.Unlock()
}

// Closer is implemented by sinks whose connection the hub may end: when a client resumes its
// presence on a new connection while the old one still looks open, the old one is closed.
type Closer interface {
	// CloseConn ends the connection without a goodbye; its session has no presence anymore.
	CloseConn(reason string)
}

// Peer returns the session's peer id, or "" before it joins.
func (s *Session) Peer() protocol.PeerID {
	m := s.cur()
	if m == nil {
		return ""
	}
	return m.Info.ID
}

// Room returns the session's room, or "" before it joins.
func (s *Session) Room() string {
	m := s.cur()
	if m == nil {
		return ""
	}
	return m.Room
}

// HandleFrame handles one native-protocol text frame received at now. Protocol errors are
// answered with error frames; a *CloseError return means the transport must close the
// connection with that code.
func (s *Session) HandleFrame(b []byte, now time.Time) error {
	if ok, err := s.Allow(now); !ok {
		return err
	}
	var f protocol.Frame
	if perr := protocol.DecodeFrame(b, &f); perr != nil {
		s.sendError(f.ID, perr)
		return nil
	}
	if perr := s.Handle(&f); perr != nil {
		s.sendError(f.ID, perr)
		if closesConnection(perr.Code) {
			return &CloseError{Code: ClosePolicyViolation, Reason: perr.Code.String(), LeaveReason: "kicked"}
		}
	}
	return nil
}

// Handle handles one decoded frame. It returns the protocol error to answer with, if any;
// successful requests that carry an id are acknowledged here.
func (s *Session) Handle(f *protocol.Frame) *protocol.Error {
	switch f.Type {
	case protocol.TypeJoin:
		return s.join(f)
	case protocol.TypeLeave:
		if s.cur() == nil {
			return protocol.Errorf(protocol.CodeNotJoined, "not in a room")
		}
		s.Leave("left")
		s.ack(f.ID)
		return nil
	case protocol.TypeOffer, protocol.TypeAnswer, protocol.TypeICECandidate, protocol.TypeMessage:
		return s.relay(f)
	case protocol.TypeRead:
		s.MarkRead(f.Seq)
		return nil
	case protocol.TypeICEServers:
		m := s.cur()
		if m == nil {
			return protocol.Errorf(protocol.CodeNotJoined, "join a room first")
		}
		s.mu.Lock()
		turn := s.turn
		s.mu.Unlock()
		s.sink.Send(&protocol.Event{Type: protocol.TypeICEServers, ID: f.ID, ICEServers: s.iceFor(m.Info.ID, turn)})
		return nil
	}
	return protocol.Errorf(protocol.CodeUnknownType, "unknown type")
}

// RejectBinary answers a binary frame.
func (s *Session) RejectBinary() {
	s.sendError(nil, protocol.Errorf(protocol.CodeBinaryUnsupported, "binary frames are not supported; send JSON text"))
}

func (s *Session) join(f *protocol.Frame) *protocol.Error {
	s.mu.Lock()
	m, joining := s.member, s.joining
	s.mu.Unlock()
	if m != nil {
		return protocol.Errorf(protocol.CodeAlreadyJoined, "already in room %q; leave first", m.Room)
	}
	if joining {
		return protocol.Errorf(protocol.CodeAlreadyJoined, "a join is under way")
	}
	if f.V != 0 && f.V != protocol.Version {
		return protocol.Errorf(protocol.CodeUnsupportedVersion, "this server speaks protocol version %d", protocol.Version)
	}
	room := string(f.Room)
	if f.Room == nil && s.hub.cfg.Authorize == nil {
		return protocol.Errorf(protocol.CodeMissingField, "join needs \"room\"")
	}
	if f.Room != nil && !protocol.ValidRoom(room) {
		return protocol.Errorf(protocol.CodeBadField, "room names are 1-%d characters of A-Z a-z 0-9 _ - .", protocol.MaxRoomLen)
	}
	if len(f.Name) > protocol.MaxNameLen || !utf8.Valid(f.Name) {
		return protocol.Errorf(protocol.CodeMetaTooLarge, "name is over %d bytes", protocol.MaxNameLen)
	}
	if len(f.Meta) > s.hub.cfg.MaxMetaBytes {
		return protocol.Errorf(protocol.CodeMetaTooLarge, "meta is %d bytes; the limit is %d", len(f.Meta), s.hub.cfg.MaxMetaBytes)
	}
	if err := s.hub.Ready(); err != nil {
		return protocol.Errorf(protocol.CodeUnavailable, "the server is not taking joins now")
	}
	if f.Resume != nil && s.resume(string(f.Resume), room, bytes.Clone(f.ID), f.Last) {
		return nil
	}
	if perr := s.admitJoin(); perr != nil {
		return perr
	}
	pid := s.fixedID
	if pid == "" {
		pid = protocol.NewPeerID()
	}
	m = &bus.Member{
		Room:   room,
		Info:   protocol.PeerInfo{ID: pid, Name: string(f.Name)},
		Sink:   s.sink,
		Joined: time.Now(),
	}
	if f.Meta != nil {
		m.Info.Meta = append([]byte(nil), f.Meta...)
	}
	turn, perr := s.authorize(f, m)
	if perr != nil {
		return perr
	}
	room = m.Room
	m.Kick = s.hub.kickFunc(m)
	var token, key string
	var rsink *resumeSink
	if s.hub.cfg.ResumeGrace > 0 {
		rsink = s.hub.newResumeSink(s.sink, 0)
		rsink.claims = claimsOf(m, turn, s.hub.cfg.Node)
		token = s.hub.mint(rsink)
		key = presenceKey(room, m.Info.ID)
		m.Sink = rsink
		m.Handover = s.hub.handoverFunc(m) // a resume on another node takes its outbox
	}
	id := bytes.Clone(f.ID)          // f aliases the transport's read buffer; the welcome may go out later
	ice := s.iceFor(m.Info.ID, turn) // minted here, not under the room's lock
	welcome := func(others []protocol.PeerInfo) {
		// The presence is the session's before the welcome goes out: the client may answer
		// it at once, while an asynchronous Join has not returned yet.
		s.hub.adopt(s, m, nil, rsink, key, turn) // a new presence: no Kick can precede it
		if rsink != nil {
			s.hub.scheduleRefresh(rsink)
		}
		s.sink.Send(&protocol.Event{
			Type: protocol.TypeWelcome,
			ID:   id,
			Welcome: &protocol.Welcome{
				Self:         m.Info.ID,
				Room:         room,
				Peers:        others,
				ICEServers:   ice,
				Resume:       token,
				ResumeMillis: s.hub.cfg.ResumeGrace.Milliseconds(),
			},
		})
	}
	if !s.async || !s.hub.slowJoins {
		return s.joined(room, m, s.hub.bus.Join(context.Background(), m, s.hub.cfg.MaxPeersPerRoom, welcome))
	}
	s.mu.Lock()
	s.joining = true
	s.joinSeq++
	seq := s.joinSeq
	s.mu.Unlock()
	s.hub.joins.Add(1)
	go func() {
		defer s.hub.joins.Done()
		perr := s.joined(room, m, s.hub.bus.Join(context.Background(), m, s.hub.cfg.MaxPeersPerRoom, welcome))
		s.mu.Lock()
		if s.joinSeq == seq {
			s.joining = false
		}
		ended := s.ended
		s.mu.Unlock()
		switch {
		case ended:
			s.Leave("closed") // the connection went while the join was under way
		case perr != nil:
			s.sendError(id, perr)
		}
	}()
	return nil
}

// joined maps a Join's outcome to the protocol error to answer with, if any.
func (s *Session) joined(room string, m *bus.Member, err error) *protocol.Error {
	switch {
	case err == nil:
		s.hub.log.Debug("peer joined", "room", room, "peer", m.Info.ID, "client", s.client)
		return nil
	case errors.Is(err, bus.ErrRoomFull):
		return protocol.Errorf(protocol.CodeRoomFull, "room %q has %d peers already", room, s.hub.cfg.MaxPeersPerRoom)
	case errors.Is(err, bus.ErrUnavailable):
		s.hub.log.Info("join refused: bus unavailable", "room", room, "err", err)
		return protocol.Errorf(protocol.CodeUnavailable, "the cluster cannot take joins now; try again shortly")
	default:
		s.hub.log.Warn("join failed", "room", room, "err", err)
		return protocol.Errorf(protocol.CodeUnavailable, "cannot join now")
	}
}

func (s *Session) relay(f *protocol.Frame) *protocol.Error {
	s.mu.Lock()
	m, rs := s.member, s.rsink
	s.mu.Unlock()
	if m == nil {
		return protocol.Errorf(protocol.CodeNotJoined, "join a room first")
	}
	if f.Retry && f.ID != nil && rs != nil && rs.ids.seen(f.ID) {
		// Accepted before the connection was lost: not relayed twice.
		s.hub.stats.RetriesDeduped.Add(1)
		s.ack(f.ID)
		return nil
	}
	e := protocol.Event{Type: f.Type, From: m.Info.ID, Data: f.Data, Broadcast: f.Broadcast}
	var err error
	if f.Broadcast {
		err = s.hub.bus.Broadcast(m, &e)
	} else {
		err = s.hub.bus.Relay(m, f.Target, &e)
	}
	switch {
	case err == nil:
		if f.ID != nil && rs != nil {
			rs.ids.add(f.ID)
		}
		s.ack(f.ID)
		return nil
	case errors.Is(err, bus.ErrUnknownTarget):
		return protocol.Errorf(protocol.CodeUnknownTarget, "target is not in your room")
	default:
		s.hub.log.Warn("relay failed", "room", m.Room, "err", err)
		return protocol.Errorf(protocol.CodeUnavailable, "cannot relay now")
	}
}

// Drop ends the session because its connection was lost without a goodbye (EOF, a read
// error, missed pings). When resumption is on, the presence stays in its room for the grace
// period, for the client to take back; otherwise, or while draining, it is Leave(reason).
func (s *Session) Drop(reason string) {
	s.mu.Lock()
	m, rs, key := s.member, s.rsink, s.key
	s.mu.Unlock()
	if m == nil {
		return
	}
	if rs == nil || !s.hub.park(s, key, m, rs, reason) {
		s.Leave(reason)
	}
}

// Leave leaves the session's room, if any, telling the others why (see docs/protocol.md for
// reasons). Transports call it when the connection ends with a goodbye (a close frame) or is
// closed by the server.
func (s *Session) Leave(reason string) {
	s.mu.Lock()
	m, rs, key := s.member, s.rsink, s.key
	s.member, s.rsink, s.key = nil, nil, ""
	s.mu.Unlock()
	if m == nil {
		return
	}
	s.hub.release(s, m, key)
	s.hub.bus.Leave(m, reason)
	if rs != nil {
		rs.forget()
		s.hub.spendAll(rs)
	}
	lvl := slog.LevelDebug
	if reason == "slow" || reason == "kicked" {
		lvl = slog.LevelInfo
	}
	s.hub.log.Log(context.Background(), lvl, "peer left", "room", m.Room, "peer", m.Info.ID, "reason", reason)
}

// MarkRead tells the hub the client has read every event of its presence up to seq (a mark
// ping's pong, or a read frame): they leave the outbox.
func (s *Session) MarkRead(seq uint64) {
	s.mu.Lock()
	rs := s.rsink
	s.mu.Unlock()
	if rs != nil {
		rs.markRead(seq)
	}
}

func (s *Session) ack(id []byte) {
	if id != nil {
		s.sink.Send(&protocol.Event{Type: protocol.TypeAck, ID: id})
	}
}

func (s *Session) sendError(id []byte, perr *protocol.Error) {
	s.hub.stats.Errors[perr.Code].Add(1)
	s.sink.Send(&protocol.Event{Type: protocol.TypeError, ID: id, Err: perr})
}
