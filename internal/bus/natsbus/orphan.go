package natsbus

import (
	"context"
	"time"

	"github.com/switchboard-rtc/switchboard/internal/bus"
)

// Orphans. A member whose node drains for restart (Leave with bus.ReasonRestart), whose node
// misses its heartbeats, or which its node handed over to another (TakeOver), is not removed:
// every replica keeps it, marked orphaned, for Config.Grace, with no peer-left and no room
// event. Relays to it are held meanwhile (hold.go). A Resumed join on another node re-homes
// it in place (join.go); otherwise, once the grace is over, the room's coordinator removes it
// and announces the leave (peer-left "shutdown" for a drained node's members, "timeout"
// otherwise), which it alone reports to the observer. A node that does not hear that leave
// (the coordinator died too) removes the member itself a node timeout later.
//
// The draining node keeps its muted members (peer.held) to serve TakeOver with their
// Handover until they are taken or the grace ends; WaitHandovers waits for that.

// orphanLocked marks p orphaned, to leave with reason why when the grace ends unless it is
// re-homed first. An orphan keeps its first deadline.
func (b *Bus) orphanLocked(p *peer, why string) {
	if p.orphan {
		return
	}
	p.orphan = true
	p.until = time.Now().Add(b.cfg.Grace)
	p.why = why
	b.orphans[p] = struct{}{}
}

// unorphanLocked takes p back from the orphans: re-homed, or its node is heard again. What
// was held for it goes to its node.
func (b *Bus) unorphanLocked(p *peer) {
	if !p.orphan {
		return
	}
	p.orphan = false
	p.until = time.Time{}
	p.why = ""
	delete(b.orphans, p)
	b.flushHoldLocked(p)
}

// dropLocalLocked makes p, a peer of this node, no longer one of its connected members.
func (b *Bus) dropLocalLocked(p *peer) {
	if p.local == nil {
		return
	}
	delete(b.locals, p.local)
	p.local = nil
	b.stats.Peers.Add(-1)
	if p.room.locals--; p.room.locals == 0 {
		b.stats.Rooms.Add(-1)
	}
}

// muteLocked takes p, this node's member m, off the node for a restart without telling
// anyone but the other nodes, which keep it orphaned; m stays held for TakeOver.
func (b *Bus) muteLocked(p *peer, m *bus.Member) {
	b.dropLocalLocked(p)
	b.holdMemberLocked(p, m)
	b.orphanLocked(p, "shutdown")
	b.expectOrphanSeenLocked(p)
	b.publishLocked(&ctlMsg{Op: opOrphan, Node: b.id, Room: p.room.name, Peer: &wirePeer{ID: p.info.ID, Node: b.id}, Reason: p.why})
}

// holdMemberLocked keeps m, p's member on this node, for a handover.
func (b *Bus) holdMemberLocked(p *peer, m *bus.Member) {
	if p.held == nil {
		b.heldN++
	}
	p.held = m
}

// releaseMemberLocked forgets p's held member: taken over, or its grace ended.
func (b *Bus) releaseMemberLocked(p *peer) {
	if p.held == nil {
		return
	}
	p.held = nil
	if b.heldN--; b.heldN == 0 {
		close(b.heldIdle)
		b.heldIdle = make(chan struct{})
	}
}

// WaitHandovers waits until every member this node muted for a restart (Leave with
// bus.ReasonRestart) has been taken over by another node or has seen its grace end, or until
// ctx ends. A draining server calls it before Close so that its presences can resume
// elsewhere with the events they had not read.
func (b *Bus) WaitHandovers(ctx context.Context) error {
	b.mu.RLock()
	n, idle := b.heldN, b.heldIdle
	b.mu.RUnlock()
	if n == 0 {
		return nil
	}
	select {
	case <-idle:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// orphanNodeLocked orphans the peers of a node that missed its heartbeats, or removes them
// at once (reason) when orphans are disabled or the node said goodbye: its members muted
// for a restart were orphaned already and stay so.
func (b *Bus) orphanNodeLocked(node, reason string) int {
	var gone []*peer
	n := 0
	for _, r := range b.rooms {
		for _, p := range r.peers {
			switch {
			case p.node != node || p.orphan:
			case reason == "timeout" && b.cfg.Grace > 0:
				b.orphanLocked(p, reason)
				n++
			default:
				gone = append(gone, p)
			}
		}
	}
	for _, p := range gone {
		b.leaveLocked(p, reason, false)
	}
	return n + len(gone)
}

// expireOrphansLocked ends the grace of the orphans whose time is up: the room's coordinator
// removes them and announces it; the others wait a node timeout more for that announcement.
// A held member of this node is released at its deadline either way.
func (b *Bus) expireOrphansLocked(now time.Time) {
	var gone []*peer
	var announce []bool
	for p := range b.orphans {
		if now.Before(p.until) {
			continue
		}
		b.releaseMemberLocked(p)
		if !b.connected || b.closed {
			continue // cut off: the others decide; this node learns it when back
		}
		coord := b.coordinatorLocked(p.room.name) == b.id
		if coord || now.Sub(p.until) > b.cfg.NodeTimeout {
			gone = append(gone, p)
			announce = append(announce, coord)
		}
	}
	for i, p := range gone {
		b.leaveLocked(p, p.why, announce[i])
	}
}

// handleOrphan applies another node's opOrphan: its peer stays, orphaned.
func (b *Bus) handleOrphanLocked(m *ctlMsg) {
	if m.Peer == nil {
		return
	}
	b.ackOrphanLocked(m.Node, m.Room, m.Peer.ID) // after every relay this node sent it for the peer
	if p := b.peerLocked(m.Room, m.Peer.ID); p != nil && p.node == m.Node && p.local == nil {
		b.orphanLocked(p, m.Reason)
	}
}
