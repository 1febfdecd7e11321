package natsbus

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"

	"github.com/nats-io/nats.go"

	"github.com/switchboard-rtc/switchboard/internal/bus"
	"github.com/switchboard-rtc/switchboard/protocol"
)

func (b *Bus) deliver(m *bus.Member, e *protocol.Event) {
	if m.Sink.Send(e) {
		b.stats.Relayed[e.Type].Add(1)
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
	if t.local != nil && t.await == "" {
		b.deliver(t.local, e)
		b.mu.RUnlock()
		return nil
	}
	node, roomName, held := t.node, p.room.name, t.relaysHeld()
	b.mu.RUnlock()
	if held {
		b.mu.Lock()
		if t.relaysHeld() && p.room.byID[t.info.ID] == t {
			b.holdEventLocked(t, roomName, e, false, false)
			b.mu.Unlock()
			return nil
		}
		node = t.node // re-homed meanwhile, or left: its node drops the relay
		if t.local != nil {
			b.deliver(t.local, e)
			node = ""
		}
		b.mu.Unlock()
		if node == "" {
			return nil
		}
	}
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
	var orphans []*peer
	for _, q := range p.room.peers {
		switch {
		case q == p:
		case q.local != nil && q.await == "":
			b.deliver(q.local, e)
		case q.relaysHeld():
			orphans = append(orphans, q)
		case !slices.Contains(nodes, q.node):
			nodes = append(nodes, q.node)
		}
	}
	roomName := p.room.name
	b.mu.RUnlock()
	if len(orphans) > 0 {
		b.holdBroadcast(roomName, orphans, e)
	}
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

// holdBroadcast holds a broadcast for the orphans (and awaited peers) of a room. One re-homed
// meanwhile gets it
// from here directly (its new node is not among those the broadcast went to: it was orphaned
// when the broadcast was sent).
func (b *Bus) holdBroadcast(room string, orphans []*peer, e *protocol.Event) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, q := range orphans {
		switch {
		case q.room.byID[q.info.ID] != q:
		case q.relaysHeld():
			b.holdEventLocked(q, room, e, true, false)
		case q.local != nil:
			b.deliver(q.local, e)
		default:
			msg := encodeKind(kindBroadcastTo, room, string(q.info.ID), e)
			if err := b.nc.Publish(b.cfg.Prefix+".node."+q.node, msg); err != nil && !b.closed {
				b.log.Warn("cluster broadcast failed", "peer-node", q.node, "err", err)
			}
		}
	}
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
	case kindAdmin:
		b.handleAdmin(msg)
	case kindRelay, kindBroadcast, kindBroadcastTo, kindLobby:
		rm, err := decodeRelay(msg.Data)
		if err != nil {
			b.log.Warn("bad relay", "err", err)
			return
		}
		if rm.kind == kindLobby {
			b.handleLobbyRelay(&rm)
			return
		}
		b.handleRelay(&rm)
	case kindTakeOver:
		b.serveTakeOver(msg)
	case kindFlushed:
		rm, err := decodeRelay(msg.Data)
		if err != nil {
			b.log.Warn("bad flushed message", "err", err)
			return
		}
		b.handleFlushed(&rm)
	case kindOrphanSeen:
		rm, err := decodeRelay(msg.Data)
		if err != nil {
			b.log.Warn("bad orphan acknowledgement", "err", err)
			return
		}
		b.handleOrphanSeen(&rm)
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
	if rm.kind == kindBroadcast {
		var held []protocol.PeerID
		for _, q := range r.peers {
			switch {
			case q.info.ID == rm.ev.From:
			case q.await != "" || q.handOn:
				held = append(held, q.info.ID)
			case q.local != nil:
				b.deliver(q.local, &rm.ev)
			case q.orphan && q.node == b.id:
				held = append(held, q.info.ID)
			}
		}
		b.mu.RUnlock()
		if len(held) > 0 {
			b.holdArrived(rm, held)
		}
		return
	}
	t := r.byID[protocol.PeerID(rm.target)]
	if t != nil && t.local != nil && t.await == "" {
		b.deliver(t.local, &rm.ev)
		b.mu.RUnlock()
		return
	}
	// Read under the lock: a re-homing join clears orphan, the former node's flush await.
	held := t != nil && t.relaysHeld()
	b.mu.RUnlock()
	if held {
		b.holdArrived(rm, []protocol.PeerID{t.info.ID})
		return
	}
	b.bufferPending(rm)
}

// holdArrived holds a relay that reached this node for the peers ids of its room (the
// target, or a broadcast's): each orphaned one (it was sent before the sender's node learnt
// of the orphan, and goes with the peer's handover or, after it, to its new node), or
// awaited (see peer.await; a relay its former node sent goes ahead of the others). One
// re-homed here meanwhile gets it.
func (b *Bus) holdArrived(rm *relayMsg, ids []protocol.PeerID) {
	b.mu.Lock()
	defer b.mu.Unlock()
	r := b.rooms[rm.room]
	if r == nil {
		return
	}
	for _, id := range ids {
		q := r.byID[id]
		switch {
		case q == nil:
		case q.await != "" || q.handOn || q.orphan && (q.node == b.id || rm.kind != kindBroadcast):
			b.holdEventLocked(q, rm.room, &rm.ev, rm.broadcast, rm.former && q.await != "")
		case q.local != nil: // re-homed here meanwhile
			b.deliver(q.local, &rm.ev)
		}
	}
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
		if t := r.byID[protocol.PeerID(rm.target)]; t != nil && t.await != "" {
			b.holdEventLocked(t, rm.room, &rm.ev, false, rm.former) // re-homed here meanwhile
			return
		} else if t != nil && t.local != nil {
			b.deliver(t.local, &rm.ev) // welcomed meanwhile
			return
		}
	}
	if pj := b.pending[protocol.PeerID(rm.target)]; pj != nil && pj.m.Room == rm.room {
		pj.buf = append(pj.buf, rm.ev)
		return
	}
	b.relayDroppedLocked(rm)
}

// relayDroppedLocked counts and logs (at debug level) a relay that reached this node for a
// peer it neither has nor expects. Caller holds b.mu.
func (b *Bus) relayDroppedLocked(rm *relayMsg) {
	state := "unknown"
	if r := b.rooms[rm.room]; r != nil {
		if t := r.byID[protocol.PeerID(rm.target)]; t != nil {
			state = "on node " + t.node
		}
	}
	b.log.Debug("cluster relay dropped: target not here", "room", rm.room, "target", rm.target, "from", rm.ev.From, "type", rm.ev.Type, "former", rm.former, "target-state", state)
}
