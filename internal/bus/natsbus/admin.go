package natsbus

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/nats-io/nats.go"

	"github.com/switchboard-rtc/switchboard/internal/bus"
	"github.com/switchboard-rtc/switchboard/protocol"
)

// The server API (bus.Admin) across nodes: what it reads comes from this node's replica, which
// every node keeps; what it does to a peer is done by the peer's own node, asked over its
// inbox when that is another node. Metadata changes are made by the peer's own node only,
// which numbers them (wirePeer.MetaVer), so every replica ends up with the latest one whatever
// order the updates and syncs arrive in.

// kickReq is a Member.Kick decided under b.mu, made after it is released: Kick leaves the
// room, which takes b.mu.
type kickReq struct {
	m      *bus.Member
	code   protocol.Code
	reason string
}

// unlock releases b.mu, then makes the kicks queued meanwhile.
func (b *Bus) unlock() {
	ks := b.kicks
	b.kicks = nil
	b.mu.Unlock()
	for _, k := range ks {
		b.kickMember(k.m, k.code, k.reason)
	}
}

// kickMember ends m's presence through its Kick, or makes it leave when it has none. The
// caller holds no lock of the bus.
func (b *Bus) kickMember(m *bus.Member, code protocol.Code, reason string) {
	if m.Kick != nil {
		m.Kick(code, reason)
		return
	}
	b.Leave(m, reason)
}

// peerLocked returns peer of room in the replica, or nil.
func (b *Bus) peerLocked(room string, peer protocol.PeerID) *peer {
	if r := b.rooms[room]; r != nil {
		return r.byID[peer]
	}
	return nil
}

// Rooms implements bus.Admin: the rooms with members, by name, as this node's replica has them.
func (b *Bus) Rooms(ctx context.Context) ([]bus.RoomSummary, error) {
	b.mu.RLock()
	out := make([]bus.RoomSummary, 0, len(b.rooms))
	for name, r := range b.rooms {
		if len(r.peers) > 0 {
			out = append(out, bus.RoomSummary{Name: name, Peers: len(r.peers)})
		}
	}
	b.mu.RUnlock()
	slices.SortFunc(out, func(x, y bus.RoomSummary) int { return strings.Compare(x.Name, y.Name) })
	return out, ctx.Err()
}

// Peers implements bus.Admin.
func (b *Bus) Peers(ctx context.Context, room string) ([]bus.PeerDetail, error) {
	b.mu.RLock()
	var out []bus.PeerDetail
	if r := b.rooms[room]; r != nil {
		out = make([]bus.PeerDetail, len(r.peers))
		for i, p := range r.peers {
			out[i] = bus.PeerDetail{Info: p.info, Joined: p.joined, Node: p.node}
		}
	}
	b.mu.RUnlock()
	if len(out) == 0 {
		return nil, bus.ErrNoRoom
	}
	return out, ctx.Err()
}

// Kick implements bus.Admin. A peer of this node is kicked before Kick returns; a peer of
// another node is kicked by its node when the request gets there.
func (b *Bus) Kick(ctx context.Context, room string, peer protocol.PeerID, code protocol.Code, reason string) error {
	b.mu.RLock()
	p := b.peerLocked(room, peer)
	if p == nil {
		b.mu.RUnlock()
		return bus.ErrNoPeer
	}
	m, node := p.local, p.node
	b.mu.RUnlock()
	if m != nil {
		b.kickMember(m, code, reason)
		return ctx.Err()
	}
	return b.sendAdmin(node, &adminMsg{Op: adminKick, Room: room, Peer: peer, Code: code, Reason: reason})
}

// CloseRoom implements bus.Admin.
func (b *Bus) CloseRoom(ctx context.Context, room string, code protocol.Code, reason string) (int, error) {
	b.mu.RLock()
	var locals []*bus.Member
	var remote []*adminMsg
	var nodes []string
	n := 0
	if r := b.rooms[room]; r != nil {
		n = len(r.peers)
		for _, p := range r.peers {
			if p.local != nil {
				locals = append(locals, p.local)
				continue
			}
			remote = append(remote, &adminMsg{Op: adminKick, Room: room, Peer: p.info.ID, Code: code, Reason: reason})
			nodes = append(nodes, p.node)
		}
	}
	b.mu.RUnlock()
	if n == 0 {
		return 0, bus.ErrNoRoom
	}
	for _, m := range locals {
		b.kickMember(m, code, reason)
	}
	var errs []error
	for i, am := range remote {
		if err := b.sendAdmin(nodes[i], am); err != nil {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return n, err
	}
	return n, ctx.Err()
}

// Notify implements bus.Admin.
func (b *Bus) Notify(ctx context.Context, room string, peer protocol.PeerID, data []byte) error {
	e := protocol.Event{Type: protocol.TypeServerMessage, Data: data}
	b.mu.RLock()
	r := b.rooms[room]
	if peer != "" {
		p := b.peerLocked(room, peer)
		if p == nil {
			b.mu.RUnlock()
			return bus.ErrNoPeer
		}
		if p.local != nil {
			p.local.Sink.Send(&e)
			b.mu.RUnlock()
			return ctx.Err()
		}
		node := p.node
		b.mu.RUnlock()
		return b.sendAdmin(node, &adminMsg{Op: adminNotify, Room: room, Peer: peer, Data: data})
	}
	if r == nil || len(r.peers) == 0 {
		b.mu.RUnlock()
		return bus.ErrNoRoom
	}
	var nodes []string
	for _, p := range r.peers {
		switch {
		case p.local != nil:
			p.local.Sink.Send(&e)
		case !slices.Contains(nodes, p.node):
			nodes = append(nodes, p.node)
		}
	}
	b.mu.RUnlock()
	var errs []error
	for _, n := range nodes {
		if err := b.sendAdmin(n, &adminMsg{Op: adminNotify, Room: room, Data: data}); err != nil {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}
	return ctx.Err()
}

// UpdateMeta implements bus.Admin. The peer's own node makes the change and announces it;
// when that is another node, UpdateMeta waits for its answer and applies the change here too,
// so that this node's Peers shows it at once.
func (b *Bus) UpdateMeta(ctx context.Context, room string, peer protocol.PeerID, meta []byte) error {
	b.mu.Lock()
	p := b.peerLocked(room, peer)
	if p == nil {
		b.mu.Unlock()
		return bus.ErrNoPeer
	}
	if p.local != nil {
		b.setMetaLocked(p, meta)
		b.mu.Unlock()
		return ctx.Err()
	}
	node := p.node
	b.mu.Unlock()
	rep, err := b.requestAdmin(ctx, node, &adminMsg{Op: adminMeta, Room: room, Peer: peer, Data: meta})
	if err != nil {
		return err
	}
	if !rep.OK || rep.Peer == nil {
		return bus.ErrNoPeer
	}
	b.mu.Lock()
	if p := b.peerLocked(room, peer); p != nil {
		b.applyMetaLocked(p, rep.Peer)
	}
	b.mu.Unlock()
	return nil
}

// setMetaLocked changes the metadata of p, a peer of this node, and announces it to this
// node's peers in the room and to the other nodes.
func (b *Bus) setMetaLocked(p *peer, meta []byte) {
	p.info.Meta = nil
	if meta != nil {
		p.info.Meta = append([]byte(nil), meta...)
	}
	p.metaVer++
	b.announceMetaLocked(p)
	wp := p.wire()
	b.publishLocked(&ctlMsg{Op: opMeta, Node: b.id, Room: p.room.name, Peer: &wp})
}

// applyMetaLocked takes the metadata of wp for p, another node's peer, if it is newer than
// the replica's, and announces it to this node's peers in the room.
func (b *Bus) applyMetaLocked(p *peer, wp *wirePeer) {
	if p.local != nil || wp.MetaVer <= p.metaVer {
		return
	}
	p.info.Meta = nil
	if wp.Meta != nil {
		p.info.Meta = append([]byte(nil), wp.Meta...)
	}
	p.metaVer = wp.MetaVer
	b.announceMetaLocked(p)
}

// announceMetaLocked sends peer-updated for p to this node's peers in its room, p included.
func (b *Bus) announceMetaLocked(p *peer) {
	if p.room.locals == 0 {
		return
	}
	info := p.info
	ev := protocol.Event{Type: protocol.TypePeerUpdated, Peer: &info}
	for _, q := range p.room.peers {
		if q.local != nil {
			q.local.Sink.Send(&ev)
		}
	}
}

// sendAdmin sends a request to node's inbox without waiting for it.
func (b *Bus) sendAdmin(node string, am *adminMsg) error {
	data, err := json.Marshal(am)
	if err != nil {
		return fmt.Errorf("natsbus: %s: encode: %w", am.Op, err)
	}
	if err := b.nc.Publish(b.cfg.Prefix+".node."+node, append([]byte{kindAdmin}, data...)); err != nil {
		return fmt.Errorf("natsbus: %s: %w: %w", am.Op, bus.ErrUnavailable, err)
	}
	return nil
}

// requestAdmin sends a request to node's inbox and waits for the answer.
func (b *Bus) requestAdmin(ctx context.Context, node string, am *adminMsg) (adminRep, error) {
	var rep adminRep
	data, err := json.Marshal(am)
	if err != nil {
		return rep, fmt.Errorf("natsbus: %s: encode: %w", am.Op, err)
	}
	rctx, cancel := context.WithTimeout(ctx, b.cfg.RequestTimeout)
	defer cancel()
	msg, err := b.nc.RequestWithContext(rctx, b.cfg.Prefix+".node."+node, append([]byte{kindAdmin}, data...))
	if err != nil {
		return rep, fmt.Errorf("natsbus: %s: ask node %s: %w: %w", am.Op, node, bus.ErrUnavailable, err)
	}
	if err := json.Unmarshal(msg.Data, &rep); err != nil {
		return rep, fmt.Errorf("natsbus: %s: node %s answered %q: %w", am.Op, node, msg.Data, err)
	}
	return rep, nil
}

// handleAdmin carries out a request of another node's server API on this node's peers.
func (b *Bus) handleAdmin(msg *nats.Msg) {
	var am adminMsg
	if err := json.Unmarshal(msg.Data[1:], &am); err != nil {
		b.log.Warn("bad admin request", "err", err)
		return
	}
	switch am.Op {
	case adminKick:
		b.mu.RLock()
		var m *bus.Member
		if p := b.peerLocked(am.Room, am.Peer); p != nil {
			m = p.local
		}
		b.mu.RUnlock()
		if m != nil {
			b.kickMember(m, am.Code, am.Reason)
		}
	case adminNotify:
		e := protocol.Event{Type: protocol.TypeServerMessage, Data: am.Data}
		b.mu.RLock()
		if r := b.rooms[am.Room]; r != nil {
			for _, p := range r.peers {
				if p.local != nil && (am.Peer == "" || p.info.ID == am.Peer) {
					p.local.Sink.Send(&e)
				}
			}
		}
		b.mu.RUnlock()
	case adminMeta:
		var rep adminRep
		b.mu.Lock()
		if p := b.peerLocked(am.Room, am.Peer); p != nil && p.local != nil {
			b.setMetaLocked(p, am.Data)
			wp := p.wire()
			rep = adminRep{OK: true, Peer: &wp}
		}
		b.mu.Unlock()
		data, _ := json.Marshal(rep)
		if err := msg.Respond(data); err != nil {
			b.log.Warn("admin answer failed", "op", am.Op, "err", err)
		}
	}
}
