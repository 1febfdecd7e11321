package natsbus

import (
	"time"

	"github.com/switchboard-rtc/switchboard/protocol"
)

// Hand-on barrier. A relay another node sent to this node for one of its members before that
// node heard the member was orphaned (drained, or handed over by TakeOver) may reach this node
// after the member has been re-homed elsewhere: NATS orders messages per sending connection
// only, and the re-homing comes from the room's coordinator. So when this node publishes an
// opOrphan it expects an acknowledgement (kindOrphanSeen) from every other live node, sent
// when that node applies it: it follows, on the same connection, every relay that node sent
// here for the member before. Until they are all in (or the node is gone, or
// Config.RequestTimeout after the orphaning), a re-homing of the member away from this node
// holds what still reaches it for the member (peer.handOn) instead of dropping it, and hands
// it all on (handOnLocked: marked relayFormer, then kindFlushed) only then. The new node
// awaits that kindFlushed (hold.go), so the relays arrive there in their senders' order.

// expectOrphanSeenLocked records the nodes whose acknowledgement of p's orphaning this node
// awaits: every other live node now. Caller holds b.mu and publishes the opOrphan.
func (b *Bus) expectOrphanSeenLocked(p *peer) {
	p.acks = make(map[string]struct{}, len(b.nodes))
	for n := range b.nodes {
		if n != b.id && !b.suspects[n] {
			p.acks[n] = struct{}{}
		}
	}
	if len(p.acks) == 0 {
		p.acks = nil
		return
	}
	p.acksUntil = time.Now().Add(b.cfg.RequestTimeout)
	b.acking[p] = struct{}{}
}

// ackOrphanLocked tells node, which published the opOrphan of peer in room, that this node
// applied it (and has sent it every relay for peer it sent before).
func (b *Bus) ackOrphanLocked(node, room string, peer protocol.PeerID) {
	msg := encodeKind(kindOrphanSeen, room, string(peer), &protocol.Event{From: protocol.PeerID(b.id)})
	if err := b.nc.Publish(b.cfg.Prefix+".node."+node, msg); err != nil && !b.closed {
		b.log.Warn("cluster orphan acknowledgement failed", "peer-node", node, "err", err)
	}
}

// handleOrphanSeen applies another node's acknowledgement of an orphaning of ours.
func (b *Bus) handleOrphanSeen(rm *relayMsg) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if p := b.peerLocked(rm.room, protocol.PeerID(rm.target)); p != nil && p.acks != nil {
		delete(p.acks, string(rm.ev.From))
		if len(p.acks) == 0 {
			b.acksDoneLocked(p)
		}
	}
}

// acksDoneLocked stops awaiting acknowledgements for p and hands on what was held for it if
// it was re-homed away meanwhile.
func (b *Bus) acksDoneLocked(p *peer) {
	p.acks = nil
	p.acksUntil = time.Time{}
	delete(b.acking, p)
	if p.handOn {
		p.handOn = false
		b.handOnLocked(p)
	}
}

// endAcksLocked stops awaiting node's acknowledgements (gone), or, with node empty, those
// whose time is up at now; with all set (closing), every one.
func (b *Bus) endAcksLocked(node string, now time.Time, all bool) {
	for p := range b.acking {
		if node != "" {
			delete(p.acks, node)
		}
		if all || len(p.acks) == 0 || node == "" && now.After(p.acksUntil) {
			b.acksDoneLocked(p)
		}
	}
}

// rehomeAwayLocked is the former node's part of q's re-homing to another node: at once, or
// once the other nodes have acknowledged its orphaning (until then relays to q are held).
func (b *Bus) rehomeAwayLocked(q *peer) {
	if q.acks == nil {
		b.handOnLocked(q)
		return
	}
	if q.orphan {
		q.orphan = false
		q.until = time.Time{}
		q.why = ""
		delete(b.orphans, q)
	}
	b.stopAwaitLocked(q) // what it kept goes on with the rest (handOnLocked)
	q.handOn = true
}

// dropAcksLocked forgets what p awaited (it left).
func (b *Bus) dropAcksLocked(p *peer) {
	p.acks = nil
	p.handOn = false
	delete(b.acking, p)
}

// awaitAcks waits, bounded by Config.RequestTimeout, for the acknowledgements of this node's
// orphanings still awaited (a draining node's last relays come with them).
func (b *Bus) awaitAcks() {
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for deadline := time.Now().Add(b.cfg.RequestTimeout); time.Now().Before(deadline); <-tick.C {
		b.mu.RLock()
		n := len(b.acking)
		b.mu.RUnlock()
		if n == 0 {
			return
		}
	}
}
