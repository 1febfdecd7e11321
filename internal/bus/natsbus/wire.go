package natsbus

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"time"

	"github.com/switchboard-rtc/switchboard/protocol"
)

// Control messages travel on the cluster subject as JSON; all of one node's control messages
// come from its one connection, so every other node receives them in the order they were sent.
const (
	opJoin    = "join"    // a coordinator admitted a peer
	opLeave   = "leave"   // a peer left (published by its own node)
	opHB      = "hb"      // a node is alive
	opBye     = "bye"     // a node is going away: forget it and its peers now
	opSync    = "sync"    // a node's local peers, sent on request or when it meets a node
	opSyncReq = "syncreq" // every node: send your sync
	opMeta    = "meta"    // a peer's metadata changed (published by its own node)
	opOrphan  = "orphan"  // a peer's node drains for restart or handed it over: keep it orphaned
	opLobby   = "lobby"   // a node's lobby sockets came (Add) or went
)

// wirePeer is one room member on the wire.
type wirePeer struct {
	ID       protocol.PeerID `json:"id"`
	Identity string          `json:"identity,omitempty"`
	Name     string          `json:"name,omitempty"`
	Meta     json.RawMessage `json:"meta,omitempty"`
	Node     string          `json:"node"`
	Seq      uint64          `json:"seq,omitempty"`
	Joined   time.Time       `json:"joined,omitzero"`
	// MetaVer counts the changes of Meta since the join; only the peer's own node makes them,
	// so a replica takes a Meta whose MetaVer is higher than the one it has.
	MetaVer uint64 `json:"mv,omitempty"`
	// Orphan is the reason an orphaned peer will leave with when its grace ends (syncs).
	Orphan string `json:"orphan,omitempty"`
	// Resumed marks a join that takes the peer back under its id on another node
	// (bus.Member.Resumed): it replaces the member with that id in place.
	Resumed bool `json:"resumed,omitempty"`
	// Lost marks a Resumed join without a handover (bus.Member.Lost): the nodes that replace
	// it in place announce a peer-joined marked resumed to their peers in the room.
	Lost bool `json:"lost,omitempty"`
}

func (w *wirePeer) info() protocol.PeerInfo {
	return protocol.PeerInfo{ID: w.ID, Identity: w.Identity, Name: w.Name, Meta: []byte(w.Meta)}
}

// ctlMsg is a control message on the cluster subject.
type ctlMsg struct {
	Op     string                `json:"op"`
	Node   string                `json:"node"`
	Room   string                `json:"room,omitempty"`
	Peer   *wirePeer             `json:"peer,omitempty"`
	Reason string                `json:"reason,omitempty"`
	Ready  bool                  `json:"ready,omitempty"` // hb: the node takes joins
	Rooms  map[string][]wirePeer `json:"rooms,omitempty"` // sync: room → this node's peers
	// Lobby lists lobby socket ids: added or removed (lobby), or all of the node's (sync).
	Lobby []protocol.PeerID `json:"lobby,omitempty"`
	Add   bool              `json:"add,omitempty"` // lobby: the ids came
}

// joinReq asks a room's coordinator to admit a peer; joinRep is the answer.
type joinReq struct {
	Room string   `json:"room"`
	Peer wirePeer `json:"peer"`
	Max  int      `json:"max"`
	// Skip lists the nodes the asking node found gone (their inbox had no responders): the
	// coordinator skips them too, so that it knows it is the room's coordinator now.
	Skip []string `json:"skip,omitempty"`
}

type joinRep struct {
	OK   bool `json:"ok,omitempty"`
	Full bool `json:"full,omitempty"`
	// Gone: the coordinator is closing (a drained node saying goodbye): ask the next one.
	Gone bool     `json:"gone,omitempty"`
	Peer wirePeer `json:"peer"`
	// Before is the room as the coordinator saw it at admission: the joining node applies
	// these first, as their join events may still be on their way.
	Before []wirePeer `json:"before,omitempty"`
}

// Messages to one node's inbox start with a kind byte. Relays and broadcasts are binary:
//
//	kind, event type, flags (relayID, relayRetry, relayFormer), u16 len + room, u16 len +
//	target (empty for a broadcast), u16 len + sender, u16 len + the relay's id when relayID
//	is set, then the raw data to the end.
const (
	kindRelay     byte = 'r'
	kindBroadcast byte = 'b'
	kindJoin      byte = 'j' // followed by a JSON joinReq
	kindAdmin     byte = 'a' // followed by a JSON adminMsg
	// kindBroadcastTo is a broadcast held for one orphaned target: the relay encoding with
	// the target set, delivered to it alone, marked broadcast.
	kindBroadcastTo byte = 'B'
	kindLobby       byte = 'l' // a lobby relay: the relay encoding, room empty
	kindTakeOver    byte = 't' // followed by a JSON takeOverReq; answered (handover.go)
	// kindFlushed tells a re-homed member's new node that its former node has sent what it
	// held for it (hold.go): the relay encoding with the target, the sender the former node's
	// id, no data.
	kindFlushed byte = 'f'
	// kindOrphanSeen acknowledges an opOrphan to the node that published it (handon.go): the
	// relay encoding with the orphan as target, the sender the acknowledging node's id, no data.
	kindOrphanSeen byte = 'o'
)

// Flags of a relay message.
const (
	relayID    byte = 1 << iota // the sender's id of the relay follows the sender
	relayRetry                  // protocol.Event.Retry
	// relayFormer: sent to a re-homed member's new node by its former node, from what that
	// node held for it (hold.go).
	relayFormer
)

// Server API requests to the node of the peers they concern.
const (
	adminKick   = "kick"   // end the peer's presence through its Member.Kick
	adminNotify = "notify" // send a server-message to the peer, or to the node's peers in the room
	adminMeta   = "meta"   // replace the peer's metadata (a request: answered with an adminRep)
)

// adminMsg is a server API request to one node.
type adminMsg struct {
	Op     string          `json:"op"`
	Room   string          `json:"room"`
	Peer   protocol.PeerID `json:"peer,omitempty"` // "" with notify: every peer of the node in the room
	Code   protocol.Code   `json:"code,omitempty"`
	Reason string          `json:"reason,omitempty"`
	// Data is notify's message, or meta's new metadata (absent: none).
	Data json.RawMessage `json:"data,omitempty"`
}

// adminRep answers a meta request: OK with the peer as updated, or not OK when the node has
// no such peer.
type adminRep struct {
	OK   bool      `json:"ok,omitempty"`
	Peer *wirePeer `json:"peer,omitempty"`
}

var errBadMessage = errors.New("natsbus: malformed message")

func appendStr(b []byte, s string) []byte {
	b = binary.BigEndian.AppendUint16(b, uint16(len(s)))
	return append(b, s...)
}

// encodeRelay encodes a relay (or, with an empty target, a broadcast) of e.
func encodeRelay(room, target string, e *protocol.Event) []byte {
	kind := kindRelay
	if target == "" {
		kind = kindBroadcast
	}
	return encodeKind(kind, room, target, e)
}

// encodeKind encodes e as a relay message of kind (relay, broadcast, broadcast-to, lobby,
// flushed).
func encodeKind(kind byte, room, target string, e *protocol.Event) []byte {
	b := make([]byte, 0, 11+len(room)+len(target)+len(e.From)+len(e.ID)+len(e.Data))
	flags := byte(0)
	if e.ID != nil {
		flags |= relayID
	}
	if e.Retry {
		flags |= relayRetry
	}
	b = append(b, kind, byte(e.Type), flags)
	b = appendStr(b, room)
	b = appendStr(b, target)
	b = appendStr(b, string(e.From))
	if e.ID != nil {
		b = appendStr(b, string(e.ID))
	}
	return append(b, e.Data...)
}

type relayMsg struct {
	kind      byte
	broadcast bool
	former    bool // relayFormer
	room      string
	target    string
	ev        protocol.Event
}

func readStr(b []byte) (string, []byte, error) {
	if len(b) < 2 {
		return "", nil, errBadMessage
	}
	n := int(binary.BigEndian.Uint16(b))
	if len(b) < 2+n {
		return "", nil, errBadMessage
	}
	return string(b[2 : 2+n]), b[2+n:], nil
}

// decodeRelay decodes what encodeRelay made. The event's data aliases b.
func decodeRelay(b []byte) (relayMsg, error) {
	var m relayMsg
	if len(b) < 3 {
		return m, errBadMessage
	}
	m.kind = b[0]
	switch b[0] {
	case kindRelay, kindLobby, kindFlushed, kindOrphanSeen:
	case kindBroadcast, kindBroadcastTo:
		m.broadcast = true
	default:
		return m, errBadMessage
	}
	m.ev.Type = protocol.Type(b[1])
	m.ev.Broadcast = m.broadcast
	flags := b[2]
	if flags&^(relayID|relayRetry|relayFormer) != 0 || (flags&relayRetry != 0 && flags&relayID == 0) {
		return m, errBadMessage
	}
	m.ev.Retry = flags&relayRetry != 0
	m.former = flags&relayFormer != 0
	var from string
	var err error
	rest := b[3:]
	if m.room, rest, err = readStr(rest); err != nil {
		return m, err
	}
	if m.target, rest, err = readStr(rest); err != nil {
		return m, err
	}
	if (b[0] == kindBroadcast) != (m.target == "") {
		return m, errBadMessage // a broadcast has no target, anything else one
	}
	if from, rest, err = readStr(rest); err != nil {
		return m, err
	}
	m.ev.From = protocol.PeerID(from)
	if flags&relayID != 0 {
		var id string
		if id, rest, err = readStr(rest); err != nil {
			return m, err
		}
		if id == "" || len(id) > protocol.MaxIDLen {
			return m, errBadMessage
		}
		m.ev.ID = []byte(id)
	}
	m.ev.Data = rest
	return m, nil
}
