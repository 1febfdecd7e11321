package natsbus

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"slices"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/switchboard-rtc/switchboard/internal/bus"
	"github.com/switchboard-rtc/switchboard/protocol"
)

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

// SlowJoins implements bus.SlowJoiner: a join is a request to the room's coordinator node.
func (b *Bus) SlowJoins() bool { return true }

// Join implements bus.Bus.
func (b *Bus) Join(ctx context.Context, m *bus.Member, maxPeers int, welcome func([]protocol.PeerInfo)) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := b.Ready(); err != nil {
		return err
	}
	id := m.Info.ID
	pj := &pendingJoin{m: m, welcome: welcome}
	b.mu.Lock()
	b.pending[id] = pj
	b.mu.Unlock()
	req := joinReq{Room: m.Room, Max: maxPeers, Peer: wirePeer{
		ID: id, Identity: m.Info.Identity, Name: m.Info.Name, Meta: json.RawMessage(m.Info.Meta),
		Node: b.id, Joined: m.Joined, Resumed: m.Resumed, Lost: m.Resumed && m.Lost,
	}}
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
		case errors.Is(err, nats.ErrNoResponders), err == nil && rep.Gone:
			// The coordinator is gone (its connection closed): skip it until it is heard again.
			b.mu.Lock()
			b.suspects[c] = true
			b.mu.Unlock()
			req.Skip = append(req.Skip, c)
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
		if b.abandonJoin(pj) {
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
	defer b.unlock()
	for i := range rep.Before {
		b.applyJoinLocked(m.Room, &rep.Before[i], false)
	}
	b.applyJoinLocked(m.Room, &rep.Peer, false)
	if !pj.welcomed {
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
func (b *Bus) abandonJoin(pj *pendingJoin) bool {
	m := pj.m
	b.mu.Lock()
	defer b.mu.Unlock()
	delete(b.pending, m.Info.ID)
	if pj.welcomed {
		return true
	}
	b.tombs[m.Info.ID] = time.Now()
	b.publishLocked(&ctlMsg{Op: opLeave, Node: b.id, Room: m.Room, Peer: &wirePeer{ID: m.Info.ID, Node: b.id}, Reason: "closed"})
	return false
}

// coordinate admits or refuses a join as the room's coordinator. A member with the identity
// of the joining peer does not count against the room limit: it is about to be replaced (the
// nodes that apply the join kick it).
func (b *Bus) coordinate(req *joinReq) joinRep {
	b.mu.Lock()
	defer b.unlock()
	if b.closed {
		// Closing (a drained node once its presences are taken over, before its goodbye
		// reaches the others): the resumed joins of those presences come here, and must go
		// to the room's next coordinator instead of failing.
		return joinRep{Gone: true}
	}
	if !b.connected || !b.announced {
		return joinRep{} // refused: this node's replica may be behind
	}
	if _, gone := b.tombs[req.Peer.ID]; gone {
		if !req.Peer.Resumed {
			return joinRep{} // refused: gone
		}
		delete(b.tombs, req.Peer.ID) // a presence re-created from its token after it left
	}
	for _, n := range req.Skip {
		// The asking node found n gone: so does this one, so that it agrees it coordinates
		// the room now (and reports its events) until n is heard again.
		if _, known := b.nodes[n]; known {
			b.suspects[n] = true
		}
	}
	r := b.rooms[req.Room]
	if r != nil {
		if p := r.byID[req.Peer.ID]; p != nil {
			if req.Peer.Resumed {
				// Moved to the asking node; or there already (a second attempt of the same
				// resume, or this one asked again): the answer takes it in place all the same.
				return b.rehomeJoinLocked(r, p, &req.Peer)
			}
			return joinRep{OK: true, Peer: p.wire()}
		}
		count := len(r.peers)
		if id := req.Peer.Identity; id != "" {
			for _, p := range r.peers {
				if p.info.Identity == id {
					count--
				}
			}
		}
		if req.Max > 0 && count >= req.Max {
			return joinRep{Full: true}
		}
	}
	rep := joinRep{OK: true, Peer: req.Peer}
	if rep.Peer.Joined.IsZero() {
		rep.Peer.Joined = time.Now()
	}
	rep.Peer.Seq = 1
	if r != nil {
		rep.Peer.Seq = r.lastSeq + 1
		rep.Before = make([]wirePeer, len(r.peers))
		for i, p := range r.peers {
			rep.Before[i] = p.wire()
		}
	}
	b.applyJoinLocked(req.Room, &rep.Peer, true)
	b.publishLocked(&ctlMsg{Op: opJoin, Node: b.id, Room: req.Room, Peer: &rep.Peer})
	return rep
}

// applyJoinLocked adds a peer to the replica and tells this node's peers in the room; for a
// peer of this node it first sends the welcome. It does nothing for a peer gone, and for a
// peer already there it only takes newer metadata. Where the peer's identity had another
// member, the older of those on this node are queued for a kick (replaced). admitted is set
// where the room's coordinator admits the join (coordinate): only there is it reported to the
// observer — a replica learning a peer from another node's join event or sync, or a joining
// node applying its coordinator's answer, reports nothing (the admitting coordinator did), so
// a node that becomes coordinator of rooms it is still learning never reports them again.
func (b *Bus) applyJoinLocked(roomName string, wp *wirePeer, admitted bool) {
	if _, gone := b.tombs[wp.ID]; gone {
		if !wp.Resumed || wp.Node == b.id && b.pending[wp.ID] == nil {
			return
		}
		delete(b.tombs, wp.ID) // re-created from its token after it left
	}
	var pj *pendingJoin
	if wp.Node == b.id {
		if pj = b.pending[wp.ID]; pj == nil {
			return // not ours any more
		}
	}
	r := b.rooms[roomName]
	created := r == nil
	if created {
		r = &room{name: roomName, byID: make(map[protocol.PeerID]*peer)}
		b.rooms[roomName] = r
	}
	if q := r.byID[wp.ID]; q != nil {
		switch {
		case wp.Resumed && (wp.Node != q.node || pj != nil && q.local != pj.m):
			// Moved to wp's node — or to this one again, where the replica already had it
			// (an earlier attempt of the same resume whose connection went before it was
			// welcomed): the pending join takes its place.
			b.rehomeLocked(q, wp, pj)
			return
		case wp.Orphan != "" && wp.Node == q.node && q.local == nil:
			b.orphanLocked(q, wp.Orphan) // missed its opOrphan
		case wp.Orphan == "" && wp.Node == q.node && q.orphan && q.held == nil && wp.Node != b.id:
			b.unorphanLocked(q) // its node is heard again with it
		}
		b.applyMetaLocked(q, wp)
		return
	}
	p := &peer{room: r, info: wp.info(), node: wp.Node, seq: wp.Seq, joined: wp.Joined, metaVer: wp.MetaVer, added: time.Now()}
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
		others = make([]protocol.PeerInfo, 0, len(r.peers))
		for _, q := range r.peers {
			if !replacedBy(q, p) { // on its way out: the newcomer never sees it
				others = append(others, q.info)
			}
		}
	}
	r.peers = slices.Insert(r.peers, at, p)
	r.byID[wp.ID] = p
	r.lastSeq = max(r.lastSeq, p.seq)
	if wp.Orphan != "" && pj == nil {
		b.orphanLocked(p, wp.Orphan)
	}
	if admitted && b.reportsLocked(roomName) {
		if created {
			b.reportLocked(bus.RoomStarted, roomName, nil, "")
		}
		b.reportLocked(bus.PeerJoined, roomName, p, "")
	}
	if pj != nil {
		delete(b.pending, wp.ID)
		pj.welcomed = true
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
	ev := protocol.Event{Type: protocol.TypePeerJoined, Peer: &p.info, Resumed: wp.Resumed}
	for _, q := range r.peers {
		if q.local != nil && q != p && !replacedBy(q, p) {
			q.local.Sink.Send(&ev)
		}
	}
	b.replaceLocked(r, p.info.Identity)
}

// replacedBy reports whether q is an older presence of p's identity, which p's join replaces.
func replacedBy(q, p *peer) bool {
	return q != p && p.info.Identity != "" && q.info.Identity == p.info.Identity && q.seq < p.seq
}

// replaceLocked queues a kick (replaced) for this node's members of r with identity but the
// newest one: a room holds one presence per identity.
func (b *Bus) replaceLocked(r *room, identity string) {
	if identity == "" {
		return
	}
	var newest *peer
	for _, q := range r.peers {
		if q.info.Identity == identity && (newest == nil || q.seq > newest.seq) {
			newest = q
		}
	}
	for _, q := range r.peers {
		if q != newest && q.info.Identity == identity && q.local != nil && !q.kicked {
			q.kicked = true
			b.kicks = append(b.kicks, kickReq{m: q.local, code: protocol.CodeReplaced, reason: "replaced"})
		}
	}
}
