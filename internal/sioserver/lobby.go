package sioserver

import (
	"sync"

	"github.com/switchboard-rtc/switchboard/internal/bus"
	"github.com/switchboard-rtc/switchboard/internal/stats"
	"github.com/switchboard-rtc/switchboard/protocol"
)

// Lobby is where the sockets in no room reach each other by socket id, as on the seed's
// server: on one node an in-process map (the default), in a cluster the bus's lobby
// (*natsbus.Bus implements it), so that sockets on different nodes reach each other too.
type Lobby interface {
	// LobbyJoin registers id, a socket of this node in no room, as a relay target; sink
	// receives the relays to it. Registering an id again replaces its sink. It returns an
	// error when the lobby cannot take it (full).
	LobbyJoin(id protocol.PeerID, sink bus.Sink) error
	// LobbyLeave takes id out of the lobby.
	LobbyLeave(id protocol.PeerID)
	// LobbyRelay delivers e (Type, From, Data) from the lobby socket from to the lobby socket
	// target, on this node or another, and counts it relayed. It returns bus.ErrUnknownTarget
	// when target is not in the lobby, or is from. nil means queued, not delivered.
	LobbyRelay(from, target protocol.PeerID, e *protocol.Event) error
}

// memLobby is the lobby of a single node: a map of its lobby sockets.
type memLobby struct {
	stats *stats.Stats
	mu    sync.RWMutex
	sinks map[protocol.PeerID]bus.Sink
}

func newMemLobby(st *stats.Stats) *memLobby {
	return &memLobby{stats: st, sinks: make(map[protocol.PeerID]bus.Sink)}
}

func (l *memLobby) LobbyJoin(id protocol.PeerID, sink bus.Sink) error {
	l.mu.Lock()
	l.sinks[id] = sink
	l.mu.Unlock()
	return nil
}

func (l *memLobby) LobbyLeave(id protocol.PeerID) {
	l.mu.Lock()
	delete(l.sinks, id)
	l.mu.Unlock()
}

func (l *memLobby) LobbyRelay(from, target protocol.PeerID, e *protocol.Event) error {
	l.mu.RLock()
	to := l.sinks[target]
	l.mu.RUnlock()
	if to == nil || target == from {
		return bus.ErrUnknownTarget
	}
	if to.Send(e) {
		l.stats.Relayed[e.Type].Add(1)
	}
	return nil
}
