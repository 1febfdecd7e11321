package natsbus

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"slices"
	"sync"
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
	// first heartbeat after it, the node announces it is ready: it takes joins from then on,
	// and the others start routing to it the joins of the rooms it coordinates (default
	// Heartbeat).
	Settle time.Duration
	// RequestTimeout bounds a join's round trip to the room's coordinator (default 1s). A join
	// blocks the connection's event loop for that round trip, so keep it short.
	RequestTimeout time.Duration
	// ReconnectWait is the pause between reconnection attempts to NATS (default 250ms).
	ReconnectWait time.Duration
	// Observer, when set, hears the membership changes of the rooms this node coordinates
	// (each event is reported by exactly one node of the cluster).
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

	msgs chan *nats.Msg
	stop chan struct{}
	wg   sync.WaitGroup

	closeOnce sync.Once
	closeErr  error

	mu          sync.RWMutex
	rooms       map[string]*room
	locals      map[*bus.Member]*peer            // this node's joined peers
	pending     map[protocol.PeerID]*pendingJoin // joins waiting for their welcome
	nodes       map[string]*nodeState            // other live nodes
	suspects    map[string]bool                  // nodes whose inbox had no responders
	tombs       map[protocol.PeerID]time.Time    // peers that left: late joins are ignored
	subscribed  bool                             // the subscriptions exist: connecting may announce the node
	connected   bool
	settleUntil time.Time
	announced   bool // told the others it takes joins, after settling: Ready
	closed      bool
}

type nodeState struct {
	seen  time.Time // last heard
	ready bool      // its last heartbeat said it takes joins: it may coordinate rooms
}

type peer struct {
	room  *room
	info  protocol.PeerInfo
	node  string
	seq   uint64
	local *bus.Member // non-nil for this node's peers
	added time.Time   // when this node learnt of the peer
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
		cfg:      cfg,
		log:      cfg.Logger,
		stats:    cfg.Stats,
		id:       hex.EncodeToString(idb[:]),
		ctl:      cfg.Prefix + ".ctl",
		msgs:     make(chan *nats.Msg, 1<<16),
		stop:     make(chan struct{}),
		rooms:    make(map[string]*room),
		locals:   make(map[*bus.Member]*peer),
		pending:  make(map[protocol.PeerID]*pendingJoin),
		nodes:    make(map[string]*nodeState),
		suspects: make(map[string]bool),
		tombs:    make(map[protocol.PeerID]time.Time),
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
		if _, err := nc.ChanSubscribe(subj, b.msgs); err != nil {
			nc.Close()
			return nil, fmt.Errorf("natsbus: subscribe %s: %w", subj, err)
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

// syncLocked returns this node's peers as a sync message.
func (b *Bus) syncLocked() *ctlMsg {
	m := &ctlMsg{Op: opSync, Node: b.id, Rooms: map[string][]wirePeer{}}
	for _, p := range b.locals {
		m.Rooms[p.room.name] = append(m.Rooms[p.room.name], p.wire())
	}
	return m
}

func (p *peer) wire() wirePeer {
	return wirePeer{ID: p.info.ID, Name: p.info.Name, Meta: json.RawMessage(p.info.Meta), Node: p.node, Seq: p.seq}
}

// coordinatorLocked returns the node that orders room's joins: the live node with the highest
// rendezvous score, so every node with the same view of the cluster picks the same one and
// only the rooms of a node that comes or goes move.
func (b *Bus) coordinatorLocked(room string) string {
	best, bestScore := b.id, score(room, b.id)
	for n, st := range b.nodes {
		if b.suspects[n] || !st.ready {
			continue // gone, or still learning the rooms
		}
		if s := score(room, n); s > bestScore || (s == bestScore && n > best) {
			best, bestScore = n, s
		}
	}
	return best
}

func score(room, node string) uint64 {
	h := fnv.New64a()
	_, _ = h.Write([]byte(room))
	_, _ = h.Write([]byte{0})
	_, _ = h.Write([]byte(node))
	// fnv's low bits mix poorly for near-identical inputs: finish with a 64-bit mixer.
	x := h.Sum64()
	x ^= x >> 33
	x *= 0xff51afd7ed558ccd
	x ^= x >> 33
	x *= 0xc4ceb9fe1a85ec53
	x ^= x >> 33
	return x
}

// Join implements bus.Bus.
// SlowJoins implements bus.SlowJoiner: a join is a request to the room's coordinator node.
func (b *Bus) SlowJoins() bool { return true }

func (b *Bus) Join(ctx context.Context, m *bus.Member, maxPeers int, welcome func([]protocol.PeerInfo)) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := b.Ready(); err != nil {
		return err
	}
	id := m.Info.ID
	b.mu.Lock()
	b.pending[id] = &pendingJoin{m: m, welcome: welcome}
	b.mu.Unlock()
	req := joinReq{Room: m.Room, Max: maxPeers, Peer: wirePeer{ID: id, Name: m.Info.Name, Meta: json.RawMessage(m.Info.Meta), Node: b.id}}
	var rep joinRep
	var err error
	timeouts := 0
	for range 4 {
		b.mu.RLock()
		c := b.coordinatorLocked(m.Room)
		b.mu.RUnlock()
		if c == b.id {
			rep = b.coordinate(&req)
			err = nil
			break
		}
		rep, err = b.requestJoin(ctx, c, &req)
		switch {
		case errors.Is(err, nats.ErrNoResponders):
			// The coordinator is gone (its connection closed): skip it until it is heard again.
			b.mu.Lock()
			b.suspects[c] = true
			b.mu.Unlock()
			continue
		case errors.Is(err, context.DeadlineExceeded) && ctx.Err() == nil && timeouts == 0:
			// Lost on the way, or sent to a node as it died: ask once more, which is harmless
			// (a coordinator answers a peer it has admitted with the same admission) and
			// finds out which.
			timeouts++
			continue
		}
		break
	}
	if err == nil && !rep.OK && !rep.Full {
		err = errors.New("coordinator refused the join")
	}
	if err != nil {
		if b.abandonJoin(m) {
			return nil // admitted after all: its join event arrived and it was welcomed
		}
		return fmt.Errorf("natsbus: join %q: %w: %w", m.Room, bus.ErrUnavailable, err)
	}
	if rep.Full {
		b.mu.Lock()
		delete(b.pending, id)
		b.mu.Unlock()
		return bus.ErrRoomFull
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	for i := range rep.Before {
		b.applyJoinLocked(m.Room, &rep.Before[i])
	}
	b.applyJoinLocked(m.Room, &rep.Peer)
	if b.locals[m] == nil {
		// Admitted, but not applicable here (never expected): take it back everywhere.
		delete(b.pending, id)
		b.tombs[id] = time.Now()
		b.publishLocked(&ctlMsg{Op: opLeave, Node: b.id, Room: m.Room, Peer: &wirePeer{ID: id, Node: b.id}, Reason: "closed"})
		return fmt.Errorf("natsbus: join %q: %w: admitted but not applied", m.Room, bus.ErrUnavailable)
	}
	return nil
}

func (b *Bus) requestJoin(ctx context.Context, node string, req *joinReq) (joinRep, error) {
	var rep joinRep
	data, err := json.Marshal(req)
	if err != nil {
		return rep, fmt.Errorf("encode join: %w", err)
	}
	rctx, cancel := context.WithTimeout(ctx, b.cfg.RequestTimeout)
	defer cancel()
	msg, err := b.nc.RequestWithContext(rctx, b.cfg.Prefix+".node."+node, append([]byte{kindJoin}, data...))
	if err != nil {
		return rep, fmt.Errorf("ask coordinator %s: %w", node, err)
	}
	if err := json.Unmarshal(msg.Data, &rep); err != nil {
		return rep, fmt.Errorf("coordinator %s answered %q: %w", node, msg.Data, err)
	}
	return rep, nil
}

// abandonJoin forgets a join whose outcome is unknown, unless its admission reached this
// node meanwhile (then the peer was welcomed and abandonJoin reports true). If the coordinator
// admitted it after all, the leave published here takes it back everywhere.
func (b *Bus) abandonJoin(m *bus.Member) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	delete(b.pending, m.Info.ID)
	if b.locals[m] != nil {
		return true
	}
	b.tombs[m.Info.ID] = time.Now()
	b.publishLocked(&ctlMsg{Op: opLeave, Node: b.id, Room: m.Room, Peer: &wirePeer{ID: m.Info.ID, Node: b.id}, Reason: "closed"})
	return false
}

// coordinate admits or refuses a join as the room's coordinator.
func (b *Bus) coordinate(req *joinReq) joinRep {
	b.mu.Lock()
	defer b.mu.Unlock()
	if _, gone := b.tombs[req.Peer.ID]; gone || b.closed || !b.connected || !b.announced {
		return joinRep{} // refused: gone, or this node's replica may be behind
	}
	r := b.rooms[req.Room]
	if r != nil {
		if p := r.byID[req.Peer.ID]; p != nil {
			return joinRep{OK: true, Peer: p.wire()}
		}
		if req.Max > 0 && len(r.peers) >= req.Max {
			return joinRep{Full: true}
		}
	}
	rep := joinRep{OK: true, Peer: req.Peer}
	rep.Peer.Seq = 1
	if r != nil {
		rep.Peer.Seq = r.lastSeq + 1
		rep.Before = make([]wirePeer, len(r.peers))
		for i, p := range r.peers {
			rep.Before[i] = p.wire()
		}
	}
	b.applyJoinLocked(req.Room, &rep.Peer)
	b.publishLocked(&ctlMsg{Op: opJoin, Node: b.id, Room: req.Room, Peer: &rep.Peer})
	return rep
}

// applyJoinLocked adds a peer to the replica and tells this node's peers in the room; for a
// peer of this node it first sends the welcome. It does nothing for a peer already there or
// gone.
func (b *Bus) applyJoinLocked(roomName string, wp *wirePeer) {
	if _, gone := b.tombs[wp.ID]; gone {
		return
	}
	var pj *pendingJoin
	if wp.Node == b.id {
		if pj = b.pending[wp.ID]; pj == nil {
			return // not ours any more
		}
	}
	r := b.rooms[roomName]
	if r == nil {
		r = &room{name: roomName, byID: make(map[protocol.PeerID]*peer)}
		b.rooms[roomName] = r
	}
	if r.byID[wp.ID] != nil {
		return
	}
	p := &peer{room: r, info: wp.info(), node: wp.Node, seq: wp.Seq, added: time.Now()}
	at, _ := slices.BinarySearchFunc(r.peers, p.seq, func(q *peer, seq uint64) int {
		switch {
		case q.seq < seq:
			return -1
		case q.seq > seq:
			return 1
		}
		return 0
	})
	var others []protocol.PeerInfo
	if pj != nil {
		others = make([]protocol.PeerInfo, len(r.peers))
		for i, q := range r.peers {
			others[i] = q.info
		}
	}
	r.peers = slices.Insert(r.peers, at, p)
	r.byID[wp.ID] = p
	r.lastSeq = max(r.lastSeq, p.seq)
	if pj != nil {
		delete(b.pending, wp.ID)
		p.local = pj.m
		b.locals[pj.m] = p
		if r.locals++; r.locals == 1 {
			b.stats.Rooms.Add(1)
		}
		b.stats.Peers.Add(1)
		pj.welcome(others)
		for i := range pj.buf {
			b.deliver(p.local, &pj.buf[i])
		}
	}
	if r.locals == 0 {
		return
	}
	ev := protocol.Event{Type: protocol.TypePeerJoined, Peer: &p.info}
	for _, q := range r.peers {
		if q.local != nil && q != p {
			q.local.Sink.Send(&ev)
		}
	}
}

func (b *Bus) deliver(m *bus.Member, e *protocol.Event) {
	if m.Sink.Send(e) {
		b.stats.Relayed[e.Type].Add(1)
	}
}

// Leave implements bus.Bus.
func (b *Bus) Leave(m *bus.Member, reason string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if p := b.locals[m]; p != nil {
		b.leaveLocked(p, reason, true)
	}
}

// leaveLocked removes p from the replica, tells this node's peers in the room and, if
// announce, the other nodes.
func (b *Bus) leaveLocked(p *peer, reason string, announce bool) {
	r := p.room
	if r.byID[p.info.ID] != p {
		return
	}
	delete(r.byID, p.info.ID)
	if i := slices.Index(r.peers, p); i >= 0 {
		r.peers = slices.Delete(r.peers, i, i+1)
	}
	b.tombs[p.info.ID] = time.Now()
	if p.local != nil {
		delete(b.locals, p.local)
		b.stats.Peers.Add(-1)
		if r.locals--; r.locals == 0 {
			b.stats.Rooms.Add(-1)
		}
	}
	if len(r.peers) == 0 {
		delete(b.rooms, r.name)
	}
	if announce {
		b.publishLocked(&ctlMsg{Op: opLeave, Node: b.id, Room: r.name, Peer: &wirePeer{ID: p.info.ID, Node: p.node}, Reason: reason})
	}
	if r.locals == 0 {
		return
	}
	ev := protocol.Event{Type: protocol.TypePeerLeft, Peer: &protocol.PeerInfo{ID: p.info.ID}, Reason: reason}
	for _, q := range r.peers {
		if q.local != nil {
			q.local.Sink.Send(&ev)
		}
	}
}

// removeNodeLocked forgets a node and every peer it had.
func (b *Bus) removeNodeLocked(node, reason string) {
	delete(b.nodes, node)
	delete(b.suspects, node)
	var gone []*peer
	for _, r := range b.rooms {
		for _, p := range r.peers {
			if p.node == node {
				gone = append(gone, p)
			}
		}
	}
	for _, p := range gone {
		b.leaveLocked(p, reason, false)
	}
	if len(gone) > 0 {
		b.log.Info("cluster node gone", "gone", node, "peers", len(gone), "reason", reason)
	}
}

// Relay implements bus.Bus.
func (b *Bus) Relay(from *bus.Member, target []byte, e *protocol.Event) error {
	b.mu.RLock()
	p := b.locals[from]
	if p == nil {
		b.mu.RUnlock()
		return bus.ErrNotMember
	}
	t := p.room.byID[protocol.PeerID(target)]
	if t == nil || t == p {
		b.mu.RUnlock()
		return bus.ErrUnknownTarget
	}
	if t.local != nil {
		b.deliver(t.local, e)
		b.mu.RUnlock()
		return nil
	}
	node, roomName := t.node, p.room.name
	b.mu.RUnlock()
	if err := b.nc.Publish(b.cfg.Prefix+".node."+node, encodeRelay(roomName, string(target), e)); err != nil {
		return fmt.Errorf("natsbus: relay: %w: %w", bus.ErrUnavailable, err)
	}
	return nil
}

// Broadcast implements bus.Bus.
func (b *Bus) Broadcast(from *bus.Member, e *protocol.Event) error {
	b.mu.RLock()
	p := b.locals[from]
	if p == nil {
		b.mu.RUnlock()
		return bus.ErrNotMember
	}
	var nodes []string
	for _, q := range p.room.peers {
		switch {
		case q == p:
		case q.local != nil:
			b.deliver(q.local, e)
		case !slices.Contains(nodes, q.node):
			nodes = append(nodes, q.node)
		}
	}
	roomName := p.room.name
	b.mu.RUnlock()
	if len(nodes) == 0 {
		return nil
	}
	data := encodeRelay(roomName, "", e)
	var errs []error
	for _, n := range nodes {
		if err := b.nc.Publish(b.cfg.Prefix+".node."+n, data); err != nil {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("natsbus: broadcast: %w: %w", bus.ErrUnavailable, err)
	}
	return nil
}

// dispatch handles every message for this node, one at a time in arrival order.
func (b *Bus) dispatch() {
	defer b.wg.Done()
	for {
		select {
		case <-b.stop:
			return
		case msg := <-b.msgs:
			if msg.Subject == b.ctl {
				b.handleCtl(msg.Data)
			} else {
				b.handleInbox(msg)
			}
		}
	}
}

func (b *Bus) handleInbox(msg *nats.Msg) {
	if len(msg.Data) == 0 {
		return
	}
	switch msg.Data[0] {
	case kindJoin:
		var req joinReq
		if err := json.Unmarshal(msg.Data[1:], &req); err != nil {
			b.log.Warn("bad join request", "err", err)
			return
		}
		rep := b.coordinate(&req)
		data, _ := json.Marshal(rep)
		if err := msg.Respond(data); err != nil {
			b.log.Warn("join answer failed", "err", err)
		}
	case kindRelay, kindBroadcast:
		rm, err := decodeRelay(msg.Data)
		if err != nil {
			b.log.Warn("bad relay", "err", err)
			return
		}
		b.handleRelay(&rm)
	}
}

func (b *Bus) handleRelay(rm *relayMsg) {
	b.mu.RLock()
	r := b.rooms[rm.room]
	if r == nil {
		b.mu.RUnlock()
		b.bufferPending(rm)
		return
	}
	if rm.broadcast {
		for _, q := range r.peers {
			if q.local != nil && q.info.ID != rm.ev.From {
				b.deliver(q.local, &rm.ev)
			}
		}
		b.mu.RUnlock()
		return
	}
	if t := r.byID[protocol.PeerID(rm.target)]; t != nil && t.local != nil {
		b.deliver(t.local, &rm.ev)
		b.mu.RUnlock()
		return
	}
	b.mu.RUnlock()
	b.bufferPending(rm)
}

// bufferPending keeps a relay for a peer of this node whose welcome has not been sent yet
// (the sender's node learnt of the join first); anything else is dropped.
func (b *Bus) bufferPending(rm *relayMsg) {
	if rm.broadcast {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if r := b.rooms[rm.room]; r != nil {
		if t := r.byID[protocol.PeerID(rm.target)]; t != nil && t.local != nil {
			b.deliver(t.local, &rm.ev) // welcomed meanwhile
			return
		}
	}
	if pj := b.pending[protocol.PeerID(rm.target)]; pj != nil && pj.m.Room == rm.room {
		pj.buf = append(pj.buf, rm.ev)
	}
}

func (b *Bus) handleCtl(data []byte) {
	var m ctlMsg
	if err := json.Unmarshal(data, &m); err != nil {
		b.log.Warn("bad control message", "err", err)
		return
	}
	if m.Node == b.id {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return
	}
	if m.Op == opBye {
		b.removeNodeLocked(m.Node, "shutdown")
		return
	}
	st := b.nodes[m.Node]
	if st == nil {
		// A node we did not know (new, or back after being dropped): it learns our peers.
		// Ask for everyone's peers too, in case this node missed the newcomer's own sync.
		b.log.Info("cluster node seen", "peer-node", m.Node)
		if m.Op != opSyncReq {
			b.publishLocked(b.syncLocked())
			b.publishLocked(&ctlMsg{Op: opSyncReq, Node: b.id})
		}
		st = &nodeState{}
		b.nodes[m.Node] = st
	}
	st.seen = time.Now()
	if m.Op == opHB {
		st.ready = m.Ready
	}
	delete(b.suspects, m.Node)
	switch m.Op {
	case opJoin:
		if m.Peer != nil {
			b.applyJoinLocked(m.Room, m.Peer)
		}
	case opLeave:
		if m.Peer == nil {
			return
		}
		if r := b.rooms[m.Room]; r != nil {
			if p := r.byID[m.Peer.ID]; p != nil && p.local == nil {
				b.leaveLocked(p, m.Reason, false)
				return
			}
		}
		b.tombs[m.Peer.ID] = time.Now() // its join may still be on its way
	case opSync:
		b.applySyncLocked(&m)
	case opSyncReq:
		b.publishLocked(b.syncLocked())
	}
}

// applySyncLocked makes the replica agree with a node's list of its own peers: it adds the
// missing ones, and removes the ones the node no longer has (their leave was lost) unless they
// are too recent to be in the list yet (the coordinator's join can reach this node before the
// peer's own node has applied it).
func (b *Bus) applySyncLocked(m *ctlMsg) {
	has := make(map[protocol.PeerID]bool)
	for roomName, ps := range m.Rooms {
		for i := range ps {
			if ps[i].Node == m.Node {
				has[ps[i].ID] = true
				b.applyJoinLocked(roomName, &ps[i])
			}
		}
	}
	grace := 2*b.cfg.RequestTimeout + b.cfg.Heartbeat
	now := time.Now()
	var stale []*peer
	for _, r := range b.rooms {
		for _, p := range r.peers {
			if p.node == m.Node && !has[p.info.ID] && now.Sub(p.added) > grace {
				stale = append(stale, p)
			}
		}
	}
	for _, p := range stale {
		b.leaveLocked(p, "timeout", false)
	}
	if len(stale) > 0 {
		b.log.Warn("cluster sync removed peers whose leave was lost", "peer-node", m.Node, "peers", len(stale))
	}
}

// syncEvery is how many heartbeats pass between two syncs of a node's peers to the others,
// which repair presence after a lost leave.
const syncEvery = 10

// heartbeats announces this node and drops the nodes that went silent.
func (b *Bus) heartbeats() {
	defer b.wg.Done()
	t := time.NewTicker(b.cfg.Heartbeat)
	defer t.Stop()
	for beat := 1; ; beat++ {
		select {
		case <-b.stop:
			return
		case now := <-t.C:
			b.mu.Lock()
			if b.connected && !b.closed {
				if !b.announced && !now.Before(b.settleUntil) {
					// Settled: from now on the others may route joins here, and so do we.
					b.announced = true
				}
				b.publishLocked(&ctlMsg{Op: opHB, Node: b.id, Ready: b.announced})
				if beat%syncEvery == 0 {
					b.publishLocked(b.syncLocked())
				}
				for n, st := range b.nodes {
					if now.Sub(st.seen) > b.cfg.NodeTimeout {
						b.removeNodeLocked(n, "timeout")
					}
				}
			}
			for id, at := range b.tombs {
				if now.Sub(at) > 2*b.cfg.NodeTimeout+time.Minute {
					delete(b.tombs, id)
				}
			}
			b.mu.Unlock()
		}
	}
}

// Close implements bus.Bus: it tells the other nodes this one is gone, so they report its
// remaining peers peer-left ("shutdown") at once, and disconnects.
func (b *Bus) Close() error {
	b.closeOnce.Do(func() {
		b.mu.Lock()
		if b.connected {
			b.publishLocked(&ctlMsg{Op: opBye, Node: b.id})
		}
		b.closed = true
		b.mu.Unlock()
		if b.nc.IsConnected() {
			if err := b.nc.FlushTimeout(b.cfg.RequestTimeout); err != nil {
				b.closeErr = fmt.Errorf("natsbus: flush goodbye: %w", err)
			}
		}
		b.shutdown()
	})
	return b.closeErr
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
