package natsbus

import (
	"errors"
	"fmt"

	"github.com/switchboard-rtc/switchboard/internal/bus"
	"github.com/switchboard-rtc/switchboard/protocol"
)

// The Socket.IO lobby across nodes: sockets in no room reach each other by socket id. A node
// registers its lobby sockets (LobbyJoin) and every node learns them, like room presence: one
// lobby message per change on the cluster subject, and each node's full list in its periodic
// sync, which repairs a lost message. A lobby relay to a socket of another node goes to that
// node's inbox, like a room relay; the other node delivers it if the socket is still there.
// Lobby entries are bounded per node (Config.LobbyMax), here and in every replica.

// ErrLobbyFull is returned by LobbyJoin when this node has Config.LobbyMax lobby sockets.
var ErrLobbyFull = errors.New("natsbus: lobby is full")

type lobbyEntry struct {
	node string
	sink bus.Sink // this node's sockets only
}

// LobbyJoin registers id, a socket of this node in no room, as a lobby relay target for
// every node; sink receives the relays to it. It returns ErrLobbyFull when the node has
// Config.LobbyMax lobby sockets already.
func (b *Bus) LobbyJoin(id protocol.PeerID, sink bus.Sink) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if e := b.lobby[id]; e != nil && e.node == b.id {
		e.sink = sink
		return nil
	}
	if b.lobbyLocal >= b.cfg.LobbyMax {
		return ErrLobbyFull
	}
	if e := b.lobby[id]; e != nil {
		b.forgetLobbyLocked(id, e) // an id taken from another node: the newest registration wins
	}
	b.lobby[id] = &lobbyEntry{node: b.id, sink: sink}
	b.lobbyLocal++
	b.publishLocked(&ctlMsg{Op: opLobby, Node: b.id, Lobby: []protocol.PeerID{id}, Add: true})
	return nil
}

// LobbyLeave takes id, a lobby socket of this node, out of the lobby everywhere.
func (b *Bus) LobbyLeave(id protocol.PeerID) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if e := b.lobby[id]; e == nil || e.node != b.id {
		return
	}
	delete(b.lobby, id)
	b.lobbyLocal--
	b.publishLocked(&ctlMsg{Op: opLobby, Node: b.id, Lobby: []protocol.PeerID{id}})
}

// LobbyRelay delivers e (a relay event: Type, From, Data) from the lobby socket from to the
// lobby socket target, on this node or another. It returns bus.ErrUnknownTarget when target is
// not a lobby socket of any node as far as this node knows, or is from itself. An answer of
// nil means the relay was queued (to the socket, or to its node), not delivered.
func (b *Bus) LobbyRelay(from, target protocol.PeerID, e *protocol.Event) error {
	b.mu.RLock()
	t := b.lobby[target]
	if t == nil || target == from {
		b.mu.RUnlock()
		return bus.ErrUnknownTarget
	}
	if t.node == b.id {
		if t.sink.Send(e) {
			b.stats.Relayed[e.Type].Add(1)
		}
		b.mu.RUnlock()
		return nil
	}
	node := t.node
	b.mu.RUnlock()
	if err := b.nc.Publish(b.cfg.Prefix+".node."+node, encodeKind(kindLobby, "", string(target), e)); err != nil {
		return fmt.Errorf("natsbus: lobby relay: %w: %w", bus.ErrUnavailable, err)
	}
	return nil
}

// handleLobbyRelay delivers a lobby relay from another node to this node's socket, if it is
// still in the lobby.
func (b *Bus) handleLobbyRelay(rm *relayMsg) {
	b.mu.RLock()
	defer b.mu.RUnlock()
	if t := b.lobby[protocol.PeerID(rm.target)]; t != nil && t.node == b.id {
		if t.sink.Send(&rm.ev) {
			b.stats.Relayed[rm.ev.Type].Add(1)
		}
	}
}

// applyLobbyLocked applies another node's lobby change.
func (b *Bus) applyLobbyLocked(m *ctlMsg) {
	for _, id := range m.Lobby {
		e := b.lobby[id]
		switch {
		case !m.Add:
			if e != nil && e.node == m.Node {
				delete(b.lobby, id)
				b.lobbyByNode[m.Node]--
			}
		case e != nil && e.node == m.Node:
		case b.lobbyByNode[m.Node] >= b.cfg.LobbyMax:
			// More than a node may register: ignore the rest.
		default:
			if e != nil {
				b.forgetLobbyLocked(id, e)
			}
			b.lobby[id] = &lobbyEntry{node: m.Node}
			b.lobbyByNode[m.Node]++
		}
	}
}

func (b *Bus) forgetLobbyLocked(id protocol.PeerID, e *lobbyEntry) {
	delete(b.lobby, id)
	if e.node == b.id {
		b.lobbyLocal--
	} else {
		b.lobbyByNode[e.node]--
	}
}

// syncLobbyLocked makes the lobby agree with a node's full list (its sync).
func (b *Bus) syncLobbyLocked(m *ctlMsg) {
	has := make(map[protocol.PeerID]bool, len(m.Lobby))
	for _, id := range m.Lobby {
		has[id] = true
	}
	for id, e := range b.lobby {
		if e.node == m.Node && !has[id] {
			b.forgetLobbyLocked(id, e)
		}
	}
	b.applyLobbyLocked(&ctlMsg{Node: m.Node, Lobby: m.Lobby, Add: true})
}

// dropLobbyNodeLocked forgets the lobby sockets of a node that is gone.
func (b *Bus) dropLobbyNodeLocked(node string) {
	for id, e := range b.lobby {
		if e.node == node {
			delete(b.lobby, id)
		}
	}
	delete(b.lobbyByNode, node)
}

// localLobbyLocked lists this node's lobby sockets, for its sync.
func (b *Bus) localLobbyLocked() []protocol.PeerID {
	var ids []protocol.PeerID
	for id, e := range b.lobby {
		if e.node == b.id {
			ids = append(ids, id)
		}
	}
	return ids
}
