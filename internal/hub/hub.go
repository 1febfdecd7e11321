package hub

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/switchboard-rtc/switchboard/internal/bus"
	"github.com/switchboard-rtc/switchboard/internal/resume"
	"github.com/switchboard-rtc/switchboard/internal/stats"
	"github.com/switchboard-rtc/switchboard/protocol"
)

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
	muted     map[string]mutedPresence // presences muted by Shutdown(restart), for a handover
	// restarting: Shutdown(restart) ran; a presence made a session's after it (a join or
	// resume that passed Ready before the drain) is muted when its connection ends (muteLate).
	restarting bool
	spent      chan struct{} // closed (and replaced) when a spend of ending ends

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
		muted:      make(map[string]mutedPresence),
		spent:      make(chan struct{}),
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
