package natsbus

import (
	"github.com/switchboard-rtc/switchboard/protocol"
)

// Holds: relays for a member orphaned by its node (a restart drain, a dead node, a handover in
// progress) are not sent to that node, which is gone or about to be. The node of the sender
// keeps them, per target and in order, and sends them to the member's new node once a
// Resumed join re-homes it (or delivers them itself when that is this node); they are dropped
// when the member finally leaves. The node that held the member keeps what still reaches it
// for the member the same way, and hands it over with the member's events (handover.go).
// Each hold is bounded (Config.HoldEvents, HoldBytes) and so are all of a node's holds
// (HoldTotalBytes); what does not fit is dropped and counted (stats ClusterHeldDropped).

// hold is the relays held for one orphaned peer, each as encoded for its node's inbox.
type hold struct {
	msgs  [][]byte
	bytes int
}

// holdLocked keeps msg (a relay message) for the orphaned peer p. Caller holds b.mu.
func (b *Bus) holdLocked(p *peer, msg []byte) {
	h := b.holds[p.info.ID]
	if h == nil {
		h = &hold{}
	}
	if len(h.msgs) >= b.cfg.HoldEvents || h.bytes+len(msg) > b.cfg.HoldBytes || b.holdBytes+len(msg) > b.cfg.HoldTotalBytes {
		b.stats.ClusterHeldDropped.Add(1)
		return
	}
	b.holds[p.info.ID] = h
	h.msgs = append(h.msgs, msg)
	h.bytes += len(msg)
	b.holdBytes += len(msg)
	b.stats.ClusterHeld.Add(1)
}

// takeHoldLocked removes and returns the relays held for id.
func (b *Bus) takeHoldLocked(id protocol.PeerID) [][]byte {
	h := b.holds[id]
	if h == nil {
		return nil
	}
	delete(b.holds, id)
	b.holdBytes -= h.bytes
	b.stats.ClusterHeld.Add(-int64(len(h.msgs)))
	return h.msgs
}

// dropHoldLocked forgets the relays held for id (the peer left), counting them dropped.
func (b *Bus) dropHoldLocked(id protocol.PeerID) {
	if msgs := b.takeHoldLocked(id); len(msgs) > 0 {
		b.stats.ClusterHeldDropped.Add(uint64(len(msgs)))
	}
}

// flushHoldLocked sends what is held for p, re-homed, to its node in order, or delivers it
// when p is this node's (after its welcome).
func (b *Bus) flushHoldLocked(p *peer) {
	msgs := b.takeHoldLocked(p.info.ID)
	for _, msg := range msgs {
		if p.local == nil {
			if p.node == b.id {
				b.stats.ClusterHeldDropped.Add(1) // ours, but not connected: never expected
				continue
			}
			if err := b.nc.Publish(b.cfg.Prefix+".node."+p.node, msg); err != nil && !b.closed {
				b.log.Warn("cluster flush of held relays failed", "peer-node", p.node, "err", err)
			}
			continue
		}
		rm, err := decodeRelay(msg)
		if err != nil {
			continue // encoded here: never happens
		}
		b.deliver(p.local, &rm.ev)
	}
}

// holdEventLocked keeps e, a relay (or a broadcast) from this node's member, for the
// orphaned target t of room. Caller holds b.mu.
func (b *Bus) holdEventLocked(t *peer, room string, e *protocol.Event, broadcast bool) {
	kind := kindRelay
	if broadcast {
		kind = kindBroadcastTo
	}
	b.holdLocked(t, encodeKind(kind, room, string(t.info.ID), e))
}
