package natsbus

import (
	"time"

	"github.com/switchboard-rtc/switchboard/protocol"
)

// Re-homing: a Resumed join (bus.Member.Resumed) of a peer the room already has, orphaned or
// still on another node, moves it to the joining node in place: same join sequence, same
// info (its latest metadata), no peer-joined anywhere (unless the join is Lost: then each node
// tells its peers in the room with a peer-joined marked resumed) and no room event. Its former node, if
// it still had it connected, forgets it without a leave (and ends that connection: replaced).
// What the nodes held for it while it was orphaned goes to its new node (hold.go); the new
// node delivers what its former node held first (peer.await).

// rehomeJoinLocked admits, as the room's coordinator, the Resumed join of p's id from another
// node: the answer is p moved to that node.
func (b *Bus) rehomeJoinLocked(r *room, p *peer, req *wirePeer) joinRep {
	rep := joinRep{OK: true, Peer: p.wire()}
	rep.Peer.Node = req.Node
	rep.Peer.Orphan = ""
	rep.Peer.Resumed = true
	rep.Peer.Lost = req.Lost
	rep.Before = make([]wirePeer, 0, len(r.peers))
	for _, q := range r.peers {
		if q != p {
			rep.Before = append(rep.Before, q.wire())
		}
	}
	b.applyJoinLocked(r.name, &rep.Peer, true)
	b.publishLocked(&ctlMsg{Op: opJoin, Node: b.id, Room: r.name, Peer: &rep.Peer})
	return rep
}

// rehomeLocked moves q to the node of wp, a Resumed join of its id; pj is the join when that
// is this node.
func (b *Bus) rehomeLocked(q *peer, wp *wirePeer, pj *pendingJoin) {
	r := q.room
	if m := q.local; m != nil && !q.kicked {
		// Still connected here (the takeover did not reach this node): end that connection,
		// silently for the room.
		q.kicked = true
		b.kicks = append(b.kicks, kickReq{m: m, code: protocol.CodeReplaced, reason: "replaced"})
	}
	b.dropLocalLocked(q)
	b.releaseMemberLocked(q)
	former := q.node == b.id && wp.Node != b.id
	q.node = wp.Node
	q.added = time.Now()
	q.kicked = false
	if pj != nil {
		delete(b.pending, wp.ID)
		pj.welcomed = true
		q.local = pj.m
		b.locals[pj.m] = q
		if r.locals++; r.locals == 1 {
			b.stats.Rooms.Add(1)
		}
		b.stats.Peers.Add(1)
		others := make([]protocol.PeerInfo, 0, len(r.peers))
		for _, o := range r.peers {
			if o != q {
				others = append(others, o.info)
			}
		}
		pj.welcome(others)
		for i := range pj.buf {
			b.deliver(q.local, &pj.buf[i])
		}
		pj.buf = nil
	}
	if q.await != "" {
		q.awaitUntil = time.Now().Add(b.cfg.RequestTimeout) // from the re-homing on
	}
	if q.handOn {
		// Re-homed again before the acknowledgements came: what was held here goes with this
		// re-homing (below), like any node's hold.
		b.dropAcksLocked(q)
	}
	switch {
	case former:
		b.rehomeAwayLocked(q) // what was held for it, then kindFlushed, to its new node
	case q.orphan:
		b.unorphanLocked(q) // sends what was held for it to its new node
	default:
		b.flushHoldLocked(q)
	}
	if wp.Lost && r.locals > 0 {
		ev := protocol.Event{Type: protocol.TypePeerJoined, Peer: &q.info, Resumed: true}
		for _, o := range r.peers {
			if o.local != nil && o != q {
				o.local.Sink.Send(&ev)
			}
		}
	}
}
