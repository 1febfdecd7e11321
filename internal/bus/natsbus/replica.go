package natsbus

import (
	"encoding/json"
	"slices"
	"time"

	"github.com/switchboard-rtc/switchboard/internal/bus"
	"github.com/switchboard-rtc/switchboard/protocol"
)

// Leave implements bus.Bus. With bus.ReasonRestart the member is muted: it stays in every
// replica as orphaned for the grace (orphan.go), held here for a TakeOver.
func (b *Bus) Leave(m *bus.Member, reason string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	p := b.locals[m]
	switch {
	case p == nil:
	case reason == bus.ReasonRestart && b.cfg.Grace > 0:
		b.muteLocked(p, m)
	case reason == bus.ReasonRestart:
		b.leaveLocked(p, "shutdown", true)
	default:
		b.leaveLocked(p, reason, true)
	}
}

// leaveLocked removes p from the replica, tells this node's peers in the room and, if
// announce, the other nodes. The room's coordinator reports the leave to the observer.
func (b *Bus) leaveLocked(p *peer, reason string, announce bool) {
	r := p.room
	if r.byID[p.info.ID] != p {
		return
	}
	delete(r.byID, p.info.ID)
	if i := slices.Index(r.peers, p); i >= 0 {
		r.peers = slices.Delete(r.peers, i, i+1)
	}
	b.tombs[p.info.ID] = time.Now()
	b.dropLocalLocked(p)
	b.releaseMemberLocked(p)
	delete(b.orphans, p)
	b.stopAwaitLocked(p)
	b.dropAcksLocked(p)
	b.dropHoldLocked(p.info.ID)
	if len(r.peers) == 0 {
		delete(b.rooms, r.name)
	}
	if b.reportsLocked(r.name) {
		b.reportLocked(bus.PeerLeft, r.name, p, reason)
		if len(r.peers) == 0 {
			b.reportLocked(bus.RoomFinished, r.name, nil, "")
		}
	}
	if announce {
		b.publishLocked(&ctlMsg{Op: opLeave, Node: b.id, Room: r.name, Peer: &wirePeer{ID: p.info.ID, Node: p.node}, Reason: reason})
	}
	if r.locals == 0 {
		return
	}
	ev := protocol.Event{Type: protocol.TypePeerLeft, Peer: &protocol.PeerInfo{ID: p.info.ID}, Reason: reason}
	for _, q := range r.peers {
		if q.local != nil {
			q.local.Sink.Send(&ev)
		}
	}
}

// removeNodeLocked forgets a node and its lobby; its peers are orphaned (timeout) or
// removed (goodbye), see orphanNodeLocked.
func (b *Bus) removeNodeLocked(node, reason string) {
	delete(b.nodes, node)
	delete(b.suspects, node)
	b.dropLobbyNodeLocked(node)
	b.endAwaitsLocked(node, time.Time{})
	b.endAcksLocked(node, time.Time{}, false)
	if n := b.orphanNodeLocked(node, reason); n > 0 {
		b.log.Info("cluster node gone", "gone", node, "peers", n, "reason", reason)
	}
}

func (b *Bus) handleCtl(data []byte) {
	var m ctlMsg
	if err := json.Unmarshal(data, &m); err != nil {
		b.log.Warn("bad control message", "err", err)
		return
	}
	if m.Node == b.id {
		return
	}
	b.mu.Lock()
	defer b.unlock()
	if b.closed {
		return
	}
	if m.Op == opBye {
		b.removeNodeLocked(m.Node, "shutdown")
		return
	}
	st := b.nodes[m.Node]
	if st == nil {
		// A node we did not know (new, or back after being dropped): it learns our peers.
		// Ask for everyone's peers too, in case this node missed the newcomer's own sync.
		b.log.Info("cluster node seen", "peer-node", m.Node)
		if m.Op != opSyncReq {
			b.publishLocked(b.syncLocked())
			b.publishLocked(&ctlMsg{Op: opSyncReq, Node: b.id})
		}
		st = &nodeState{}
		b.nodes[m.Node] = st
	}
	st.seen = time.Now()
	if m.Op == opHB {
		st.ready = m.Ready
	}
	delete(b.suspects, m.Node)
	switch m.Op {
	case opJoin:
		if m.Peer != nil {
			b.applyJoinLocked(m.Room, m.Peer, false)
		}
	case opLeave:
		if m.Peer == nil {
			return
		}
		if r := b.rooms[m.Room]; r != nil {
			if p := r.byID[m.Peer.ID]; p != nil && p.node != m.Peer.Node {
				return // an earlier home's late leave: the member was re-homed since
			} else if p != nil && p.local == nil {
				b.leaveLocked(p, m.Reason, false)
				return
			}
		}
		b.tombs[m.Peer.ID] = time.Now() // its join may still be on its way
	case opOrphan:
		b.handleOrphanLocked(&m)
	case opLobby:
		b.applyLobbyLocked(&m)
	case opMeta:
		if r := b.rooms[m.Room]; r != nil && m.Peer != nil {
			if p := r.byID[m.Peer.ID]; p != nil {
				b.applyMetaLocked(p, m.Peer)
			}
		}
	case opSync:
		st.synced = true
		b.applySyncLocked(&m)
		b.syncLobbyLocked(&m)
	case opSyncReq:
		b.publishLocked(b.syncLocked())
	}
}

// applySyncLocked makes the replica agree with a node's list of its own peers: it adds the
// missing ones, and removes the ones the node no longer has (their leave was lost) unless they
// are too recent to be in the list yet (the coordinator's join can reach this node before the
// peer's own node has applied it).
func (b *Bus) applySyncLocked(m *ctlMsg) {
	has := make(map[protocol.PeerID]bool)
	for roomName, ps := range m.Rooms {
		for i := range ps {
			if ps[i].Node == m.Node {
				has[ps[i].ID] = true
				b.applyJoinLocked(roomName, &ps[i], false)
			}
		}
	}
	grace := 2*b.cfg.RequestTimeout + b.cfg.Heartbeat
	now := time.Now()
	var stale []*peer
	for _, r := range b.rooms {
		for _, p := range r.peers {
			if p.node == m.Node && !has[p.info.ID] && now.Sub(p.added) > grace {
				stale = append(stale, p)
			}
		}
	}
	for _, p := range stale {
		b.leaveLocked(p, "timeout", false)
	}
	if len(stale) > 0 {
		b.log.Warn("cluster sync removed peers whose leave was lost", "peer-node", m.Node, "peers", len(stale))
	}
}

// syncedLocked reports whether every node this one knows has sent its peers since this one
// (re)connected.
func (b *Bus) syncedLocked() bool {
	for _, st := range b.nodes {
		if !st.synced {
			return false
		}
	}
	return true
}

// syncEvery is how many heartbeats pass between two syncs of a node's peers to the others,
// which repair presence after a lost leave.
const syncEvery = 10

// heartbeats announces this node and drops the nodes that went silent.
func (b *Bus) heartbeats() {
	defer b.wg.Done()
	t := time.NewTicker(b.cfg.Heartbeat)
	defer t.Stop()
	for beat := 1; ; beat++ {
		select {
		case <-b.stop:
			return
		case now := <-t.C:
			b.mu.Lock()
			if b.connected && !b.closed {
				if !b.announced && !now.Before(b.settleUntil) && (b.syncedLocked() || now.Sub(b.settleUntil) > b.cfg.NodeTimeout) {
					// Settled, with the peers of every node it knows (unless a sync was
					// lost): from now on the others may route joins here, and so do we.
					b.announced = true
				}
				b.publishLocked(&ctlMsg{Op: opHB, Node: b.id, Ready: b.announced})
				if beat%syncEvery == 0 {
					b.publishLocked(b.syncLocked())
				}
				for n, st := range b.nodes {
					if now.Sub(st.seen) > b.cfg.NodeTimeout {
						b.removeNodeLocked(n, "timeout")
					}
				}
			}
			b.expireOrphansLocked(now)
			b.endAwaitsLocked("", now)
			b.endAcksLocked("", now, false)
			for id, at := range b.tombs {
				if now.Sub(at) > 2*b.cfg.NodeTimeout+time.Minute {
					delete(b.tombs, id)
				}
			}
			b.mu.Unlock()
		}
	}
}

// syncLocked returns this node's peers as a sync message.
func (b *Bus) syncLocked() *ctlMsg {
	m := &ctlMsg{Op: opSync, Node: b.id, Rooms: map[string][]wirePeer{}}
	for _, p := range b.locals {
		m.Rooms[p.room.name] = append(m.Rooms[p.room.name], p.wire())
	}
	for p := range b.orphans {
		if p.node == b.id {
			m.Rooms[p.room.name] = append(m.Rooms[p.room.name], p.wire())
		}
	}
	m.Lobby = b.localLobbyLocked()
	return m
}

func (p *peer) wire() wirePeer {
	return wirePeer{
		ID: p.info.ID, Identity: p.info.Identity, Name: p.info.Name, Meta: json.RawMessage(p.info.Meta),
		Node: p.node, Seq: p.seq, Joined: p.joined, MetaVer: p.metaVer, Orphan: p.why,
	}
}
