package bus

import (
	"context"
	"slices"
	"sync"
	"time"

	"github.com/switchboard-rtc/switchboard/internal/stats"
	"github.com/switchboard-rtc/switchboard/protocol"
)

// Memory is the single-node Bus: rooms live in this process.
type Memory struct {
	stats *stats.Stats
	obs   Observer // nil: none

	mu    sync.Mutex // guards rooms and every room's membership changes
	rooms map[string]*memRoom
}

type memRoom struct {
	name string
	mu   sync.RWMutex // held for reading by relays, for writing by membership changes
	byID map[string]*Member
	// order is the members in join order.
	order []*Member
	// updated holds the infos changed since join (UpdateMeta): a Member's own fields never
	// change after Join.
	updated map[*Member]protocol.PeerInfo
}

// info returns m's current info. Caller holds r.mu.
func (r *memRoom) info(m *Member) protocol.PeerInfo {
	if i, ok := r.updated[m]; ok {
		return i
	}
	return m.Info
}

// NewMemory returns an in-memory Bus. st may be nil.
func NewMemory(st *stats.Stats) *Memory {
	if st == nil {
		st = new(stats.Stats)
	}
	return &Memory{stats: st, rooms: make(map[string]*memRoom)}
}

var _ Bus = (*Memory)(nil)

// Observe makes o hear every room's membership changes. Call it before the first Join.
func (b *Memory) Observe(o Observer) { b.obs = o }

func (b *Memory) observe(kind EventKind, room string, m *Member, reason string) {
	if b.obs == nil {
		return
	}
	e := &RoomEvent{Kind: kind, Room: room, Reason: reason, At: time.Now()}
	if m != nil {
		e.Peer = &PeerDetail{Info: m.Info, Joined: m.Joined}
	}
	b.obs.RoomEvent(e)
}

// Join implements Bus.
func (b *Memory) Join(ctx context.Context, m *Member, maxPeers int, welcome func([]protocol.PeerInfo)) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	replaced, err := b.join(m, maxPeers, welcome)
	for _, o := range replaced {
		b.kick(o, protocol.CodeReplaced, "replaced")
	}
	return err
}

// kick ends m's presence through its Kick, or makes it leave when it has none.
func (b *Memory) kick(m *Member, code protocol.Code, reason string) {
	if m.Kick != nil {
		m.Kick(code, reason)
		return
	}
	b.Leave(m, reason)
}

// sameIdentity returns the members of ms other than m with m's identity.
func sameIdentity(ms []*Member, m *Member) []*Member {
	if m.Info.Identity == "" {
		return nil
	}
	var out []*Member
	for _, o := range ms {
		if o != m && o.Info.Identity == m.Info.Identity {
			out = append(out, o)
		}
	}
	return out
}

func (b *Memory) join(m *Member, maxPeers int, welcome func([]protocol.PeerInfo)) ([]*Member, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	r := b.rooms[m.Room]
	if r == nil {
		r = &memRoom{name: m.Room, byID: make(map[string]*Member)}
		b.rooms[m.Room] = r
		b.stats.Rooms.Add(1)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if m.Resumed {
		if old := r.byID[string(m.Info.ID)]; old != nil {
			b.replaceLocked(r, old, m, welcome)
			return nil, nil
		}
	}
	replaced := sameIdentity(r.order, m)
	if maxPeers > 0 && len(r.order)-len(replaced) >= maxPeers {
		if len(r.order) == 0 {
			delete(b.rooms, m.Room)
			b.stats.Rooms.Add(-1)
		}
		return nil, ErrRoomFull
	}
	if len(r.order) == 0 {
		b.observe(RoomStarted, m.Room, nil, "")
	}
	others := make([]protocol.PeerInfo, 0, len(r.order))
	for _, o := range r.order {
		if !slices.Contains(replaced, o) { // on its way out: the newcomer never sees it
			others = append(others, r.info(o))
		}
	}
	m.room.Store(r)
	r.byID[string(m.Info.ID)] = m
	r.order = append(r.order, m)
	b.stats.Peers.Add(1)
	welcome(others)
	b.observe(PeerJoined, m.Room, m, "")
	ev := protocol.Event{Type: protocol.TypePeerJoined, Peer: &m.Info, Resumed: m.Resumed}
	for _, o := range r.order {
		if o != m && !slices.Contains(replaced, o) {
			o.Sink.Send(&ev)
		}
	}
	return replaced, nil
}

// replaceLocked puts m, a resumed presence, in old's place: same position, no announcement.
// Caller holds b.mu and r.mu.
func (b *Memory) replaceLocked(r *memRoom, old, m *Member, welcome func([]protocol.PeerInfo)) {
	others := make([]protocol.PeerInfo, 0, len(r.order))
	for i, o := range r.order {
		if o == old {
			r.order[i] = m
			continue
		}
		others = append(others, r.info(o))
	}
	if info, ok := r.updated[old]; ok {
		r.updated[m] = info
		delete(r.updated, old)
	}
	old.room.Store(nil)
	m.room.Store(r)
	r.byID[string(m.Info.ID)] = m
	welcome(others)
	if m.Lost {
		ev := protocol.Event{Type: protocol.TypePeerJoined, Peer: &m.Info, Resumed: true}
		for _, o := range r.order {
			if o != m {
				o.Sink.Send(&ev)
			}
		}
	}
}

// Leave implements Bus.
func (b *Memory) Leave(m *Member, reason string) {
	r := m.room.Load()
	if r == nil {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.byID[string(m.Info.ID)] != m {
		return
	}
	delete(r.byID, string(m.Info.ID))
	delete(r.updated, m)
	for i, o := range r.order {
		if o == m {
			r.order = append(r.order[:i:i], r.order[i+1:]...)
			break
		}
	}
	m.room.Store(nil)
	b.stats.Peers.Add(-1)
	if reason == ReasonRestart {
		// The process restarts: nobody is told. The room's other members (if this process
		// goes on) keep whatever they knew.
		if len(r.order) == 0 {
			delete(b.rooms, r.name)
			b.stats.Rooms.Add(-1)
		}
		return
	}
	b.observe(PeerLeft, r.name, m, reason)
	if len(r.order) == 0 {
		delete(b.rooms, r.name)
		b.stats.Rooms.Add(-1)
		b.observe(RoomFinished, r.name, nil, "")
		return
	}
	ev := protocol.Event{Type: protocol.TypePeerLeft, Peer: &protocol.PeerInfo{ID: m.Info.ID}, Reason: reason}
	for _, o := range r.order {
		o.Sink.Send(&ev)
	}
}

// Relay implements Bus.
func (b *Memory) Relay(from *Member, target []byte, e *protocol.Event) error {
	r := from.room.Load()
	if r == nil {
		return ErrNotMember
	}
	r.mu.RLock()
	t := r.byID[string(target)]
	r.mu.RUnlock()
	if t == nil || t == from {
		return ErrUnknownTarget
	}
	if t.Sink.Send(e) {
		b.stats.Relayed[e.Type].Add(1)
	}
	return nil
}

// Broadcast implements Bus.
func (b *Memory) Broadcast(from *Member, e *protocol.Event) error {
	r := from.room.Load()
	if r == nil {
		return ErrNotMember
	}
	r.mu.RLock()
	defer r.mu.RUnlock()
	for _, o := range r.order {
		if o != from && o.Sink.Send(e) {
			b.stats.Relayed[e.Type].Add(1)
		}
	}
	return nil
}

// TakeOver implements Bus: on one node no other node holds a presence.
func (b *Memory) TakeOver(ctx context.Context, room string, peer protocol.PeerID, last uint64) (*Handover, error) {
	return nil, ctx.Err()
}

// Ready implements Bus: memory is always ready.
func (b *Memory) Ready() error { return nil }

// Close implements Bus.
func (b *Memory) Close() error { return nil }
