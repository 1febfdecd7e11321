package natsbus

import (
	"time"

	"github.com/switchboard-rtc/switchboard/internal/bus"
)

// Room events (Config.Observer). Every node applies every membership change to its replica,
// but only the room's coordinator reports it: the node that also orders the room's joins, so
// that one node sees a room's changes in one order and reports each once. Joins are applied
// there first (coordinate), and the leaves of peers on other nodes reach it on the cluster
// subject, in the order each node sent them. A node reports only while it takes part in the
// cluster (connected, announced and not closed): a node still learning the rooms from the
// others' syncs would report changes that already happened. When a node is dropped, its
// peers' leaves are decided with the view that no longer has it, so the new coordinator of its
// rooms reports them. docs/cluster.md lists the moments when the nodes disagree on who
// coordinates a room and an event can be missed or reported twice.

// reportsLocked reports whether this node reports room's events now.
func (b *Bus) reportsLocked(room string) bool {
	return b.obs != nil && b.connected && b.announced && !b.closed && b.coordinatorLocked(room) == b.id
}

// reportLocked hands one event to the observer; p is the subject of peer-joined and
// peer-left.
func (b *Bus) reportLocked(kind bus.EventKind, room string, p *peer, reason string) {
	e := &bus.RoomEvent{Kind: kind, Room: room, Reason: reason, At: time.Now()}
	if p != nil {
		e.Peer = &bus.PeerDetail{Info: p.info, Joined: p.joined, Node: p.node}
	}
	b.obs.RoomEvent(e)
}
