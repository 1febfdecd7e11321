package natsbus

import (
	"slices"
	"time"

	"github.com/switchboard-rtc/switchboard/protocol"
)

// Holds: relays for a member orphaned by its node (a restart drain, a dead node, a handover in
// progress) are not sent to that node, which is gone or about to be. The node of the sender
// keeps them, per target and in order, and sends them to the member's new node once a
// Resumed join re-homes it (or delivers them itself when that is this node); they are dropped
// when the member finally leaves. The node that held the member keeps what still reaches it
// for the member the same way, and hands it over with the member's events (handover.go).
//
// What reaches that former node after the handover (relays its senders' nodes sent before
// they heard of the orphan) it holds too, and sends to the new node when it applies the
// re-homing, marked relayFormer, followed by a kindFlushed message. The new node, which took
// the member over from a live node (TakeOver), awaits that: from the TakeOver on it holds
// every relay to the member, its own senders' too, putting the former node's ahead of the
// rest, and delivers them all, in that order, once the former node says it has flushed, says
// goodbye or is gone, or Config.RequestTimeout after the re-homing (or the TakeOver, if the
// re-homing did not follow). A sender's relays that went to the former node are thus
// delivered before those its node sent straight to the new one.
//
// Each hold is bounded (Config.HoldEvents, HoldBytes) and so are all of a node's holds
// (HoldTotalBytes); what does not fit is dropped and counted (stats ClusterHeldDropped).

// hold is the relays held for one orphaned (or awaited, see peer.await) peer, each as encoded
// for its node's inbox.
type hold struct {
	msgs  [][]byte
	bytes int
	// former is how many msgs, at the front, came from the peer's former node (relayFormer)
	// while it was awaited.
	former int
}

// relaysHeld reports whether relays to p are held (by whichever node has them): p is orphaned,
// awaited from its former node, or handed on from here once the other nodes acknowledged
// its orphaning (handon.go).
func (p *peer) relaysHeld() bool { return p.orphan || p.await != "" || p.handOn }

// holdLocked keeps msg (a relay message) for the orphaned or awaited peer p, after what is
// held for it, or, when former, after what its former node sent already. Caller holds b.mu.
func (b *Bus) holdLocked(p *peer, msg []byte, former bool) {
	h := b.holds[p.info.ID]
	if h == nil {
		h = &hold{}
	}
	if len(h.msgs) >= b.cfg.HoldEvents || h.bytes+len(msg) > b.cfg.HoldBytes || b.holdBytes+len(msg) > b.cfg.HoldTotalBytes {
		b.stats.ClusterHeldDropped.Add(1)
		b.log.Debug("cluster hold full: relay dropped", "target", p.info.ID, "held", len(h.msgs), "bytes", h.bytes)
		return
	}
	b.holds[p.info.ID] = h
	if former {
		h.msgs = slices.Insert(h.msgs, h.former, msg)
		h.former++
	} else {
		h.msgs = append(h.msgs, msg)
	}
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
		b.log.Debug("cluster hold dropped: the peer left", "target", id, "relays", len(msgs))
	}
}

// flushHoldLocked sends what is held for p, re-homed, to its node in order, or delivers it
// when p is this node's (after its welcome). While p is awaited it keeps them.
func (b *Bus) flushHoldLocked(p *peer) {
	if p.await != "" || p.handOn {
		return
	}
	msgs := b.takeHoldLocked(p.info.ID)
	for _, msg := range msgs {
		if p.local == nil {
			if p.node == b.id {
				b.stats.ClusterHeldDropped.Add(1) // ours, but not connected: never expected
				b.log.Debug("cluster hold dropped: the peer is this node's but not connected", "target", p.info.ID)
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

// holdEventLocked keeps e, a relay (or a broadcast) from this node's member or one that
// arrived (former: from t's former node), for the orphaned or awaited target t of room.
// Caller holds b.mu.
func (b *Bus) holdEventLocked(t *peer, room string, e *protocol.Event, broadcast, former bool) {
	kind := kindRelay
	if broadcast {
		kind = kindBroadcastTo
	}
	b.holdLocked(t, encodeKind(kind, room, string(t.info.ID), e), former)
}

// handOnLocked is the former node's part of q's re-homing to another node: what it held for
// q goes there marked relayFormer, then a kindFlushed message; q is no longer orphaned. If
// this node was awaiting q's own former node still, what it kept goes too: the relays that
// node sends later arrive here with q gone, and are dropped.
func (b *Bus) handOnLocked(q *peer) {
	b.stopAwaitLocked(q)
	if h := b.holds[q.info.ID]; h != nil {
		for _, msg := range h.msgs {
			msg[2] |= relayFormer
		}
	}
	if q.orphan {
		b.unorphanLocked(q)
	} else {
		b.flushHoldLocked(q)
	}
	msg := encodeKind(kindFlushed, q.room.name, string(q.info.ID), &protocol.Event{From: protocol.PeerID(b.id)})
	if err := b.nc.Publish(b.cfg.Prefix+".node."+q.node, msg); err != nil && !b.closed {
		b.log.Warn("cluster flush of held relays failed", "peer-node", q.node, "err", err)
	}
}

// awaitLocked makes this node await p's former node, which has just handed p over to it.
func (b *Bus) awaitLocked(p *peer, node string) {
	p.await = node
	p.awaitUntil = time.Now().Add(b.cfg.RequestTimeout)
	b.awaits[p] = struct{}{}
}

// endAwaitLocked stops awaiting p's former node and delivers (or, if p is elsewhere, sends
// on) what was held for p meanwhile, unless p is still orphaned: it is held until its
// re-homing then.
func (b *Bus) endAwaitLocked(p *peer) {
	if p.await == "" {
		return
	}
	b.stopAwaitLocked(p)
	if !p.orphan {
		b.flushHoldLocked(p)
	}
}

// stopAwaitLocked stops awaiting p's former node, keeping what was held for p.
func (b *Bus) stopAwaitLocked(p *peer) {
	p.await = ""
	p.awaitUntil = time.Time{}
	delete(b.awaits, p)
	if h := b.holds[p.info.ID]; h != nil {
		h.former = 0
	}
}

// handleFlushed applies a former node's kindFlushed.
func (b *Bus) handleFlushed(rm *relayMsg) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if p := b.peerLocked(rm.room, protocol.PeerID(rm.target)); p != nil && p.await != "" && p.await == string(rm.ev.From) {
		b.endAwaitLocked(p)
	}
}

// endAwaitsLocked stops awaiting node (gone), or, with node empty, the awaits whose time is
// up at now.
func (b *Bus) endAwaitsLocked(node string, now time.Time) {
	for p := range b.awaits {
		if node != "" && p.await == node || node == "" && now.After(p.awaitUntil) {
			b.endAwaitLocked(p)
		}
	}
}
