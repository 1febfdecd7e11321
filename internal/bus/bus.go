package bus

import (
	"context"
	"errors"
	"sync/atomic"
	"time"

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
	// ErrNoRoom is returned by the admin methods for a room that has no members.
	ErrNoRoom = errors.New("bus: no such room")
	// ErrNoPeer is returned by the admin methods for a peer that is not in the room.
	ErrNoPeer = errors.New("bus: no such peer in the room")
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
	// Joined is when the peer joined.
	Joined time.Time
	// Kick, when set, ends the presence because the server removed it: code says why
	// (replaced, removed, room-closed) and reason is the peer-left reason. Kick leaves the
	// room itself (Leave). A bus calls it without holding its own locks.
	Kick func(code protocol.Code, reason string)
	// Resumed marks a presence taken back under its earlier id (Info.ID) on a node that did
	// not hold it (its node restarted, drains or died). Join then replaces a member of the
	// room with that id in place — no peer-joined, join order kept — or, when the room has
	// none, adds it announcing a peer-joined marked Resumed. Identity takeover never kicks a
	// member with the same id.
	Resumed bool
	// Lost, with Resumed, says the node it resumes on got no handover (its former node
	// restarted without its state, died, or did not answer), or one with a gap: events
	// queued for it there may be gone. A bus that replaces the member in place then announces
	// a peer-joined marked Resumed all the same, for the others to send again what they sent
	// it lately (their relays were acked when queued, not when read).
	Lost bool
	// Handover, when set, gives the presence up to another node it resumes on: it returns
	// the events after last that the presence's holder still has, and forgets the presence
	// without announcing anything (the new node's Resumed join replaces it). A bus calls it
	// for TakeOver, without holding its own locks. It returns nil when the presence is gone.
	Handover func(last uint64) *Handover

	// room is the bus's own handle, set by Join.
	room atomic.Pointer[memRoom]
}

// ReasonRestart is the Leave reason of a presence whose node restarts or drains and whose
// client is told to come back: the bus takes it off this node without telling anyone — no
// peer-left, no observer event. The memory bus forgets it; a cluster bus keeps it in the
// room as orphaned for the others until it resumes on another node or its grace ends.
const ReasonRestart = "restart"

// Handover is what the node that held a presence hands to the node the presence resumes on.
type Handover struct {
	// Events are the events after the client's last, in sequence order, with their Seq.
	Events []*protocol.Event
	// Seq is the presence's sequence counter: the next event gets Seq+1.
	Seq uint64
	// Gap is set when events after last were dropped before the handover.
	Gap bool
	// RetryIDs are the presence's remembered relay ids (hashes of the ids' JSON text, oldest
	// first, at most 256): a relay re-sent with retry after the resume is not relayed twice.
	RetryIDs []uint64
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
	// TakeOver asks the node that holds peer's presence in room, if any is alive, to hand it
	// over (its Member.Handover) for a resume elsewhere: the events after last it still holds.
	// It returns nil, nil when no node holds it (the memory bus: never, since the hub checks
	// its own node first).
	TakeOver(ctx context.Context, room string, peer protocol.PeerID, last uint64) (*Handover, error)
	// Ready reports whether the bus can take joins now.
	Ready() error
	// Close releases the bus.
	Close() error

	Admin
}

// Admin is what the server API asks of a bus. Its answers and actions span every node that
// shares the bus, not one node's memory.
//
// A member whose Identity is set holds the only presence of that identity in its room: when
// another member with the same Identity joins the room, the bus admits it (even into a full
// room) and kicks the older one with protocol.CodeReplaced and reason "replaced".
type Admin interface {
	// Rooms lists the rooms that have members, with their member counts.
	Rooms(ctx context.Context) ([]RoomSummary, error)
	// Peers lists room's members in join order (ErrNoRoom when it has none).
	Peers(ctx context.Context, room string) ([]PeerDetail, error)
	// Kick ends peer's presence in room through its Member.Kick (ErrNoPeer when it is not
	// there). Where the peer lives on another node, Kick returns once the request is sent.
	Kick(ctx context.Context, room string, peer protocol.PeerID, code protocol.Code, reason string) error
	// CloseRoom kicks every member of room and returns how many there were.
	CloseRoom(ctx context.Context, room string, code protocol.Code, reason string) (int, error)
	// Notify sends a server-message event carrying data (raw JSON) to peer in room, or to every
	// member of room when peer is "".
	Notify(ctx context.Context, room string, peer protocol.PeerID, data []byte) error
	// UpdateMeta replaces peer's metadata (a raw JSON object, or nil) and announces it to
	// the room with a peer-updated event, the peer itself included.
	UpdateMeta(ctx context.Context, room string, peer protocol.PeerID, meta []byte) error
}

// RoomSummary is one room in Admin.Rooms.
type RoomSummary struct {
	Name  string
	Peers int
}

// PeerDetail is one member in Admin.Peers and in room events.
type PeerDetail struct {
	Info   protocol.PeerInfo
	Joined time.Time
	// Node is the id of the cluster node the peer is connected to ("" on a single node).
	Node string
}

// EventKind is the kind of a RoomEvent.
type EventKind uint8

// Room event kinds, named as the webhooks name them.
const (
	RoomStarted EventKind = iota + 1
	RoomFinished
	PeerJoined
	PeerLeft
)

var eventNames = [...]string{RoomStarted: "room-started", RoomFinished: "room-finished", PeerJoined: "peer-joined", PeerLeft: "peer-left"}

// String returns the event's name: room-started, room-finished, peer-joined, peer-left.
func (k EventKind) String() string {
	if int(k) < len(eventNames) && k > 0 {
		return eventNames[k]
	}
	return "unknown"
}

// RoomEvent is a change of a room's membership, reported to an Observer.
type RoomEvent struct {
	Kind EventKind
	Room string
	// Peer is the subject of peer-joined and peer-left.
	Peer *PeerDetail
	// Reason is peer-left's reason.
	Reason string
	At     time.Time
}

// Observer hears about every room's membership changes. In a cluster each event is reported
// by exactly one node, the room's coordinator, so that a room's events arrive in order and
// once. RoomEvent is called under the bus's locks and must not block.
type Observer interface {
	RoomEvent(e *RoomEvent)
}

// SlowJoiner is implemented by a Bus whose Join waits on the network (a round trip to another
// node): the hub then runs joins off the transport's goroutine when the transport allows it.
type SlowJoiner interface {
	SlowJoins() bool
}
