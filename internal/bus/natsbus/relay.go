package natsbus

import (
	"context"
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
	case kindAdmin:
		b.handleAdmin(msg)
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

// TakeOver implements bus.Bus. Not yet across nodes: no other node hands a presence over.
func (b *Bus) TakeOver(ctx context.Context, room string, peer protocol.PeerID, last uint64) (*bus.Handover, error) {
	return nil, ctx.Err()
}
