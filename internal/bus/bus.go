package bus

import (
	"context"
	"errors"

	"github.com/switchboard-rtc/switchboard/protocol"
)

// Errors returned by a Bus.
var (
	// ErrRoomFull is returned by Join when the room has its maximum number of peers.
	ErrRoomFull = errors.New("bus: room is full")
	// ErrUnknownTarget is returned by Relay when the target is not a member of the sender's
	// room, whether it never existed or is elsewhere.
	ErrUnknownTarget = errors.New("bus: unknown target")
	// ErrNotMember is returned when the sender is not in a room.
	ErrNotMember = errors.New("bus: not a member of a room")
	// ErrUnavailable is returned by Join when the bus cannot take members now.
	ErrUnavailable = errors.New("bus: unavailable")
)

// Sink receives events for one local peer. Send must not block: it queues the event or, if the
// peer cannot keep up, returns false and arranges the peer's disconnection itself.
type Sink interface {
	Send(e *protocol.Event) bool
}

// Member is one peer's membership, created by the hub and handed to the bus on Join.
// Its fields must not change after Join.
type Member struct {
	Room string
	Info protocol.PeerInfo
	Sink Sink

	// room is the bus's own handle, set by Join.
	room any
}

// Bus keeps room membership and routes events between peers.
type Bus interface {
	// Join adds m to m.Room unless the room holds maxPeers members already (ErrRoomFull).
	// welcome is called with the members already in the room, in join order, before any
	// other event can reach m; every other member is then sent a peer-joined event.
	Join(ctx context.Context, m *Member, maxPeers int, welcome func(others []protocol.PeerInfo)) error
	// Leave removes m from its room and sends peer-left with reason to the others.
	Leave(m *Member, reason string)
	// Relay delivers e to the member target of from's room. It returns ErrUnknownTarget
	// when target is not in that room.
	Relay(from *Member, target []byte, e *protocol.Event) error
	// Broadcast delivers e to every member of from's room but from.
	Broadcast(from *Member, e *protocol.Event) error
	// Ready reports whether the bus can take joins now.
	Ready() error
	// Close releases the bus.
	Close() error
}

// SlowJoiner is implemented by a Bus whose Join waits on the network (a round trip to another
// node): the hub then runs joins off the transport's goroutine when the transport allows it.
type SlowJoiner interface {
	SlowJoins() bool
}
