package bus

import (
	"context"

	"github.com/switchboard-rtc/switchboard/protocol"
)

// Rooms implements Admin.
func (b *Memory) Rooms(ctx context.Context) ([]RoomSummary, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	out := make([]RoomSummary, 0, len(b.rooms))
	for name, r := range b.rooms {
		r.mu.RLock()
		out = append(out, RoomSummary{Name: name, Peers: len(r.order)})
		r.mu.RUnlock()
	}
	return out, ctx.Err()
}

// room returns the room named name, or nil.
func (b *Memory) room(name string) *memRoom {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.rooms[name]
}

// members returns a copy of room's members in join order, or nil.
func (b *Memory) members(room string) []*Member {
	r := b.room(room)
	if r == nil {
		return nil
	}
	r.mu.RLock()
	defer r.mu.RUnlock()
	return append([]*Member(nil), r.order...)
}

// details returns room's members as PeerDetails, in join order.
func (b *Memory) details(room string) []PeerDetail {
	r := b.room(room)
	if r == nil {
		return nil
	}
	r.mu.RLock()
	defer r.mu.RUnlock()
	out := make([]PeerDetail, len(r.order))
	for i, m := range r.order {
		out[i] = PeerDetail{Info: r.info(m), Joined: m.Joined}
	}
	return out
}

// member returns room's member peer, or nil.
func (b *Memory) member(room string, peer protocol.PeerID) *Member {
	r := b.room(room)
	if r == nil {
		return nil
	}
	r.mu.RLock()
	defer r.mu.RUnlock()
	return r.byID[string(peer)]
}

// Peers implements Admin.
func (b *Memory) Peers(ctx context.Context, room string) ([]PeerDetail, error) {
	out := b.details(room)
	if len(out) == 0 {
		return nil, ErrNoRoom
	}
	return out, ctx.Err()
}

// Kick implements Admin.
func (b *Memory) Kick(ctx context.Context, room string, peer protocol.PeerID, code protocol.Code, reason string) error {
	m := b.member(room, peer)
	if m == nil {
		return ErrNoPeer
	}
	b.kick(m, code, reason)
	return ctx.Err()
}

// CloseRoom implements Admin.
func (b *Memory) CloseRoom(ctx context.Context, room string, code protocol.Code, reason string) (int, error) {
	ms := b.members(room)
	if len(ms) == 0 {
		return 0, ErrNoRoom
	}
	for _, m := range ms {
		b.kick(m, code, reason)
	}
	return len(ms), ctx.Err()
}

// Notify implements Admin.
func (b *Memory) Notify(ctx context.Context, room string, peer protocol.PeerID, data []byte) error {
	e := protocol.Event{Type: protocol.TypeServerMessage, Data: data}
	if peer != "" {
		m := b.member(room, peer)
		if m == nil {
			return ErrNoPeer
		}
		m.Sink.Send(&e)
		return ctx.Err()
	}
	r := b.room(room)
	if r == nil {
		return ErrNoRoom
	}
	r.mu.RLock()
	defer r.mu.RUnlock()
	for _, m := range r.order {
		m.Sink.Send(&e)
	}
	return ctx.Err()
}

// UpdateMeta implements Admin.
func (b *Memory) UpdateMeta(ctx context.Context, room string, peer protocol.PeerID, meta []byte) error {
	r := b.room(room)
	if r == nil {
		return ErrNoPeer
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	m := r.byID[string(peer)]
	if m == nil {
		return ErrNoPeer
	}
	info := r.info(m)
	info.Meta = nil
	if meta != nil {
		info.Meta = append([]byte(nil), meta...)
	}
	if r.updated == nil {
		r.updated = make(map[*Member]protocol.PeerInfo)
	}
	r.updated[m] = info
	e := protocol.Event{Type: protocol.TypePeerUpdated, Peer: &info}
	for _, o := range r.order {
		o.Sink.Send(&e)
	}
	return ctx.Err()
}
