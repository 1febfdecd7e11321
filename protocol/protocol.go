package protocol

import (
	"crypto/rand"
	"encoding/base64"
	"fmt"
)

// Version is the protocol version this package speaks. It is sent in every welcome.
const Version = 1

// Type is a frame type. Wire names are only ever added, never changed.
type Type uint8

// Frame types. The zero value is TypeUnknown.
const (
	TypeUnknown Type = iota
	// Client to server.
	TypeJoin
	TypeLeave
	// Relayed both ways (client to server with target, server to client with from).
	TypeOffer
	TypeAnswer
	TypeICECandidate
	TypeMessage
	// Server to client.
	TypeWelcome
	TypePeerJoined
	TypePeerLeft
	TypeAck
	TypeError
	// Both ways: a client asks for fresh ICE servers (TURN credentials); the answer carries
	// them under the same id.
	TypeICEServers
	// Server to client: a message from the application's backend (the server API), and a
	// peer's changed metadata.
	TypeServerMessage
	TypePeerUpdated
	// Client to server: the client has read every event up to a seq (a read mark).
	TypeRead
	// Server to client: a fresh resume token for the connected presence (token refresh).
	TypeResumeToken

	numTypes
)

// NumTypes is the number of frame types, for arrays indexed by Type.
const NumTypes = int(numTypes)

var typeNames = [...]string{
	TypeUnknown:       "unknown",
	TypeJoin:          "join",
	TypeLeave:         "leave",
	TypeOffer:         "offer",
	TypeAnswer:        "answer",
	TypeICECandidate:  "ice-candidate",
	TypeMessage:       "message",
	TypeWelcome:       "welcome",
	TypePeerJoined:    "peer-joined",
	TypePeerLeft:      "peer-left",
	TypeAck:           "ack",
	TypeError:         "error",
	TypeICEServers:    "ice-servers",
	TypeServerMessage: "server-message",
	TypePeerUpdated:   "peer-updated",
	TypeRead:          "read",
	TypeResumeToken:   "resume-token",
}

// String returns the wire name of t.
func (t Type) String() string {
	if int(t) < len(typeNames) {
		return typeNames[t]
	}
	return fmt.Sprintf("type(%d)", uint8(t))
}

// IsRelay reports whether frames of type t are relayed from one peer to another.
func (t Type) IsRelay() bool { return t >= TypeOffer && t <= TypeMessage }

// ParseType returns the Type named by the wire name b, or TypeUnknown.
func ParseType(b []byte) Type {
	switch string(b) {
	case "join":
		return TypeJoin
	case "leave":
		return TypeLeave
	case "offer":
		return TypeOffer
	case "answer":
		return TypeAnswer
	case "ice-candidate":
		return TypeICECandidate
	case "message":
		return TypeMessage
	case "ice-servers":
		return TypeICEServers
	case "read":
		return TypeRead
	}
	return TypeUnknown
}

// PeerID identifies a peer. It is assigned by the server and opaque to clients.
type PeerID string

// peerIDBytes is the entropy in a peer id: 128 bits.
const peerIDBytes = 16

// NewPeerID returns a fresh peer id with 128 bits from crypto/rand, base64url-encoded.
func NewPeerID() PeerID {
	var b [peerIDBytes]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never returns an error (Go 1.24+).
	return PeerID(base64.RawURLEncoding.EncodeToString(b[:]))
}

// MaxRoomLen is the longest room name accepted.
const MaxRoomLen = 64

// ValidRoom reports whether name is a valid room name: 1 to MaxRoomLen bytes of
// A-Z, a-z, 0-9, '_', '-' and '.'.
func ValidRoom(name string) bool {
	if len(name) == 0 || len(name) > MaxRoomLen {
		return false
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '_', c == '-', c == '.':
		default:
			return false
		}
	}
	return true
}

// PeerInfo describes a peer in a room as other peers see it.
type PeerInfo struct {
	ID PeerID
	// Identity is the user the peer's access token names (its sub), or "" on an open server.
	Identity string
	Name     string
	// Meta is the peer's metadata as a raw JSON object, or nil.
	Meta []byte
}

// ICEServer is one entry of RTCConfiguration.iceServers.
type ICEServer struct {
	URLs       []string `json:"urls" yaml:"urls"`
	Username   string   `json:"username,omitempty" yaml:"username,omitempty"`
	Credential string   `json:"credential,omitempty" yaml:"credential,omitempty"`
}
