package natsbus

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/switchboard-rtc/switchboard/internal/bus"
	"github.com/switchboard-rtc/switchboard/internal/stats"
	"github.com/switchboard-rtc/switchboard/protocol"
)

// Config configures a Bus. The zero value means defaults, except URL which is required.
type Config struct {
	// URL is the NATS server URL (a comma list for several), e.g. nats://127.0.0.1:4222.
	URL string
	// Prefix starts every subject the cluster uses (default "switchboard"). Nodes share rooms
	// only with nodes that use the same prefix on the same NATS.
	Prefix string
	// Heartbeat is how often a node tells the others it is alive (default 1s).
	Heartbeat time.Duration
	// NodeTimeout is how long a node may stay silent before the others drop it and report
	// its peers peer-left with reason "timeout" (default 10s; more than twice Heartbeat).
	NodeTimeout time.Duration
	// Settle is how long after (re)connecting the node waits for the others' state. At the
	// first heartbeat after it by which every node it has heard from has sent its peers (or
	// NodeTimeout later, should a list be lost), the node announces it is ready: it takes
	// joins from then on, and the others start routing to it the joins of the rooms it
	// coordinates (default Heartbeat).
	Settle time.Duration
	// RequestTimeout bounds a join's round trip to the room's coordinator (default 1s). A join
	// blocks the connection's event loop for that round trip, so keep it short.
	RequestTimeout time.Duration
	// Grace is how long the members of a node that drains for restart (Leave with
	// bus.ReasonRestart) or misses its heartbeats stay in every replica as orphaned, waiting
	// to resume on another node, before the room's coordinator reports them peer-left
	// ("shutdown" or "timeout"). Default 15s, the hub's resume grace; negative: no orphans
	// (such members leave at once).
	Grace time.Duration
	// HoldEvents and HoldBytes bound the relays a node holds for one orphaned member
	// (defaults 256 and 256 KiB); HoldTotalBytes bounds all it holds (default 64 MiB).
	// Relays beyond are dropped and counted (stats ClusterHeldDropped).
	HoldEvents     int
	HoldBytes      int
	HoldTotalBytes int
	// LobbyMax bounds the lobby entries (Socket.IO sockets in no room) this node registers,
	// and those it accepts from each other node (default 10000).
	LobbyMax int
	// ReconnectWait is the pause between reconnection attempts to NATS (default 250ms).
	ReconnectWait time.Duration
	// Observer, when set, hears the membership changes of the rooms this node coordinates
	// (each event is reported by exactly one node of the cluster, the room's coordinator;
	// docs/cluster.md says when that can fail).
	Observer bus.Observer
	// Stats receives the gauges of this node's own peers and rooms; nil means a private set.
	Stats *stats.Stats
	// Logger is the bus's logger; nil means slog.Default().
	Logger *slog.Logger
}

func (c *Config) setDefaults() {
	if c.Prefix == "" {
		c.Prefix = "switchboard"
	}
	if c.Heartbeat == 0 {
		c.Heartbeat = time.Second
	}
	if c.NodeTimeout == 0 {
		c.NodeTimeout = 10 * time.Second
	}
	if c.Settle == 0 {
		c.Settle = c.Heartbeat
	}
	if c.RequestTimeout == 0 {
		c.RequestTimeout = time.Second
	}
	if c.Grace == 0 {
		c.Grace = 15 * time.Second
	}
	if c.HoldEvents <= 0 {
		c.HoldEvents = 256
	}
	if c.HoldBytes <= 0 {
		c.HoldBytes = 256 << 10
	}
	if c.HoldTotalBytes <= 0 {
		c.HoldTotalBytes = 64 << 20
	}
	if c.LobbyMax <= 0 {
		c.LobbyMax = 10000
	}
	if c.ReconnectWait == 0 {
		c.ReconnectWait = 250 * time.Millisecond
	}
	if c.Stats == nil {
		c.Stats = new(stats.Stats)
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
}

func (c *Config) validate() error {
	switch {
	case c.URL == "":
		return fmt.Errorf("%w: no NATS URL", ErrBadConfig)
	case c.Heartbeat < 0 || c.Settle < 0 || c.RequestTimeout < 0 || c.ReconnectWait < 0:
		return fmt.Errorf("%w: negative duration", ErrBadConfig)
	case c.NodeTimeout <= 2*c.Heartbeat:
		return fmt.Errorf("%w: node timeout %v must exceed twice the heartbeat %v", ErrBadConfig, c.NodeTimeout, c.Heartbeat)
	}
	return nil
}

// ErrBadConfig is returned (wrapped) by New for an invalid Config.
var ErrBadConfig = errors.New("natsbus: bad config")

// Bus is a bus.Bus shared by every node connected to the same NATS with the same prefix.
type Bus struct {
	cfg   Config
	log   *slog.Logger
	stats *stats.Stats
	id    string // this node's id, random per process
	nc    *nats.Conn
	ctl   string // the cluster subject
	inbox string // this node's inbox subject
	obs   bus.Observer

	msgs chan *nats.Msg
	// takeovers bounds the TakeOver requests served at once, each on its own goroutine;
	// takeoverQ those served or waiting.
	takeovers chan struct{}
	takeoverQ chan struct{}
	serving   atomic.Int64       // TakeOver requests taken and not answered yet
	inboxSub  *nats.Subscription // this node's inbox: unsubscribed first by Close
	stop      chan struct{}
	wg        sync.WaitGroup

	closeOnce sync.Once

	mu          sync.RWMutex
	rooms       map[string]*room
	locals      map[*bus.Member]*peer            // this node's joined peers
	pending     map[protocol.PeerID]*pendingJoin // joins waiting for their welcome
	nodes       map[string]*nodeState            // other live nodes
	suspects    map[string]bool                  // nodes whose inbox had no responders
	tombs       map[protocol.PeerID]time.Time    // peers that left: late joins are ignored
	orphans     map[*peer]struct{}               // peers kept for the grace (orphan.go)
	holds       map[protocol.PeerID]*hold        // relays held for orphaned peers (hold.go)
	holdBytes   int                              // the bytes in holds
	awaits      map[*peer]struct{}               // re-homed peers awaiting their former node (hold.go)
	acking      map[*peer]struct{}               // peers whose orphaning awaits acknowledgements (handon.go)
	heldN       int                              // this node's muted members not yet handed over
	heldIdle    chan struct{}                    // closed when heldN drops to 0 (WaitHandovers)
	lobby       map[protocol.PeerID]*lobbyEntry  // Socket.IO lobby sockets of every node (lobby.go)
	lobbyLocal  int                              // this node's entries in lobby
	lobbyByNode map[string]int                   // the other nodes' entries in lobby
	subscribed  bool                             // the subscriptions exist: connecting may announce the node
	connected   bool
	settleUntil time.Time
	announced   bool // told the others it takes joins, after settling: Ready
	closed      bool
	// kicks are the Member.Kick calls decided under mu, made once it is released (unlock).
	kicks []kickReq
}

type nodeState struct {
	seen  time.Time // last heard
	ready bool      // its last heartbeat said it takes joins: it may coordinate rooms
	// synced: its list of peers arrived since this node (re)connected; this node announces
	// itself ready only once every node it knows has synced (or after a node timeout).
	synced bool
}

type peer struct {
	room    *room
	info    protocol.PeerInfo // its Meta is replaced (never changed in place) by UpdateMeta
	node    string
	seq     uint64
	joined  time.Time   // when the peer joined (bus.Member.Joined)
	metaVer uint64      // see wirePeer.MetaVer
	local   *bus.Member // non-nil for this node's peers
	added   time.Time   // when this node learnt of the peer
	kicked  bool        // a kick is queued for this local peer
	// orphan: its node drains for restart or died; kept until until (this node's clock),
	// then it leaves with reason why. Relays to it are held (hold.go).
	orphan bool
	until  time.Time
	why    string
	// held is this node's member muted for restart (or being handed over): its Handover
	// serves TakeOver until it is taken or the grace ends. local is nil meanwhile.
	held *bus.Member
	// await is the node this node took p over from (TakeOver): until that node has sent what
	// it held for p, or is gone, or awaitUntil passes, relays to p are held here (hold.go).
	await      string
	awaitUntil time.Time
	// acks are the nodes whose acknowledgement of this node's orphaning of p is awaited,
	// until acksUntil; handOn: p was re-homed away meanwhile and what reaches this node for it
	// is held until then (handon.go).
	acks      map[string]struct{}
	acksUntil time.Time
	handOn    bool
}

type room struct {
	name    string
	peers   []*peer // by join sequence
	byID    map[protocol.PeerID]*peer
	lastSeq uint64
	locals  int
}

type pendingJoin struct {
	m       *bus.Member
	welcome func([]protocol.PeerInfo)
	buf     []protocol.Event // relays that arrived before the welcome
	// welcomed: the join was applied and the welcome sent. The peer may have left since,
	// before Join got back the coordinator's answer: the join succeeded all the same.
	welcomed bool
}

var _ bus.Bus = (*Bus)(nil)

// New connects to NATS and joins the cluster. It does not wait for NATS: while NATS cannot be
// reached the bus keeps trying and Ready reports bus.ErrUnavailable.
func New(cfg Config) (*Bus, error) {
	cfg.setDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	var idb [8]byte
	_, _ = rand.Read(idb[:])
	b := &Bus{
		cfg:   cfg,
		log:   cfg.Logger,
		stats: cfg.Stats,
		id:    hex.EncodeToString(idb[:]),
		ctl:   cfg.Prefix + ".ctl",
		obs:   cfg.Observer,
		msgs:  make(chan *nats.Msg, 1<<16),

		takeovers: make(chan struct{}, maxTakeovers),
		takeoverQ: make(chan struct{}, maxTakeovers+maxTakeoverQueue),
		stop:      make(chan struct{}),
		rooms:     make(map[string]*room),
		locals:    make(map[*bus.Member]*peer),
		pending:   make(map[protocol.PeerID]*pendingJoin),
		nodes:     make(map[string]*nodeState),
		suspects:  make(map[string]bool),
		tombs:     make(map[protocol.PeerID]time.Time),
		orphans:   make(map[*peer]struct{}),
		holds:     make(map[protocol.PeerID]*hold),
		awaits:    make(map[*peer]struct{}),
		acking:    make(map[*peer]struct{}),
		heldIdle:  make(chan struct{}),
		lobby:     make(map[protocol.PeerID]*lobbyEntry),

		lobbyByNode: make(map[string]int),
	}
	b.inbox = cfg.Prefix + ".node." + b.id
	b.log = b.log.With("node", b.id)
	nc, err := nats.Connect(cfg.URL,
		nats.Name("switchboard "+b.id),
		nats.NoEcho(), // a node applies its own messages itself
		nats.RetryOnFailedConnect(true),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(cfg.ReconnectWait),
		// Notice a NATS server that vanished without closing the connection (host down)
		// within about the node timeout, not nats.go's default of minutes.
		nats.PingInterval(cfg.NodeTimeout/2),
		nats.MaxPingsOutstanding(2),
		nats.ConnectHandler(func(*nats.Conn) { b.onConnect("connected") }),
		nats.ReconnectHandler(func(*nats.Conn) { b.onConnect("reconnected") }),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) { b.onDisconnect(err) }),
		nats.ErrorHandler(func(_ *nats.Conn, sub *nats.Subscription, err error) {
			// Typically a slow consumer: this node could not keep up and NATS dropped messages.
			subj := ""
			if sub != nil {
				subj = sub.Subject
			}
			b.log.Warn("cluster bus error", "subject", subj, "err", err)
		}),
	)
	if err != nil {
		return nil, fmt.Errorf("natsbus: connect %s: %w", cfg.URL, err)
	}
	b.nc = nc
	for _, subj := range []string{b.ctl, b.inbox} {
		sub, err := nc.ChanSubscribe(subj, b.msgs)
		if err != nil {
			nc.Close()
			return nil, fmt.Errorf("natsbus: subscribe %s: %w", subj, err)
		}
		if subj == b.inbox {
			b.inboxSub = sub
		}
	}
	b.mu.Lock()
	b.subscribed = true
	b.mu.Unlock()
	if nc.IsConnected() {
		b.onConnect("connected")
	}
	b.wg.Add(2)
	go b.dispatch()
	go b.heartbeats()
	return b, nil
}

// ID returns this node's id.
func (b *Bus) ID() string { return b.id }

// Nodes returns the number of nodes that take joins as far as this node knows: the live
// nodes that announced it, and itself once it has.
func (b *Bus) Nodes() int {
	b.mu.RLock()
	defer b.mu.RUnlock()
	n := 0
	if b.announced {
		n++
	}
	for _, st := range b.nodes {
		if st.ready {
			n++
		}
	}
	return n
}

func (b *Bus) onConnect(what string) {
	b.mu.Lock()
	if b.closed || b.connected || !b.subscribed {
		b.mu.Unlock()
		return
	}
	b.connected = true
	b.announced = false
	now := time.Now()
	b.settleUntil = now.Add(b.cfg.Settle)
	// We could not hear anyone while away: give every node a fresh timeout.
	for _, n := range b.nodes {
		n.seen = now
		n.synced = false
	}
	clear(b.suspects)
	b.publishLocked(&ctlMsg{Op: opHB, Node: b.id})
	b.publishLocked(b.syncLocked())
	b.publishLocked(&ctlMsg{Op: opSyncReq, Node: b.id})
	b.mu.Unlock()
	b.log.Info("cluster bus "+what, "nats", b.nc.ConnectedUrlRedacted())
}

func (b *Bus) onDisconnect(err error) {
	b.mu.Lock()
	was := b.connected
	b.connected = false
	closed := b.closed
	b.mu.Unlock()
	if was && !closed {
		b.log.Warn("cluster bus disconnected from NATS; refusing joins until it is back", "err", err)
	}
}

// Connected reports whether the bus is connected to NATS now (it may still be learning the
// cluster's state: see Ready).
func (b *Bus) Connected() bool {
	b.mu.RLock()
	defer b.mu.RUnlock()
	return b.connected && !b.closed
}

// Ready implements bus.Bus: the bus takes joins when it is connected to NATS and has had
// time to learn the cluster's state.
func (b *Bus) Ready() error {
	b.mu.RLock()
	defer b.mu.RUnlock()
	switch {
	case b.closed:
		return fmt.Errorf("natsbus: closed: %w", bus.ErrUnavailable)
	case !b.connected:
		return fmt.Errorf("natsbus: not connected to NATS: %w", bus.ErrUnavailable)
	case !b.announced:
		return fmt.Errorf("natsbus: learning the cluster state: %w", bus.ErrUnavailable)
	}
	return nil
}

// publishLocked sends a control message; errors are logged (at-most-once).
func (b *Bus) publishLocked(m *ctlMsg) {
	data, err := json.Marshal(m)
	if err == nil {
		err = b.nc.Publish(b.ctl, data)
	}
	if err != nil && !b.closed {
		b.log.Warn("cluster publish failed", "op", m.Op, "err", err)
	}
}

// Close implements bus.Bus: it tells the other nodes this one is gone, so they report its
// remaining peers peer-left ("shutdown") at once, and disconnects.
func (b *Bus) Close() error {
	b.closeOnce.Do(func() {
		b.awaitAcks()
		b.mu.Lock()
		b.endAcksLocked("", time.Time{}, true) // what is held for re-homed peers goes on
		if b.connected {
			b.publishLocked(&ctlMsg{Op: opBye, Node: b.id})
		}
		b.closed = true
		b.mu.Unlock()
		// Take no more requests — a node asking this one from now on hears "no responders" at
		// once instead of waiting out its timeout — and answer the take-overs already taken
		// (bounded) before the connection goes.
		if b.inboxSub != nil {
			_ = b.inboxSub.Unsubscribe()
		}
		tick := time.NewTicker(5 * time.Millisecond)
		for deadline := time.Now().Add(b.cfg.RequestTimeout); b.serving.Load() > 0 && time.Now().Before(deadline); {
			<-tick.C
		}
		tick.Stop()
		if b.nc.IsConnected() {
			if err := b.nc.FlushTimeout(b.cfg.RequestTimeout); err != nil {
				// Not an error of the shutdown: the others notice the silence instead.
				b.log.Warn("cluster goodbye not flushed; the other nodes will notice the silence", "err", err)
			}
		}
		b.shutdown()
	})
	return nil
}

// Crash drops the NATS connection without a goodbye, as if the process had been killed: the
// other nodes notice only when its heartbeats stop. For fault drills and tests.
func (b *Bus) Crash() {
	b.closeOnce.Do(func() {
		b.mu.Lock()
		b.closed = true
		b.mu.Unlock()
		b.shutdown()
	})
}

func (b *Bus) shutdown() {
	b.nc.Close()
	close(b.stop)
	b.wg.Wait()
}
