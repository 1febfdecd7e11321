package protocol

import (
	"strconv"
	"unicode/utf8"
)

// Event is a server-to-client message in transport-neutral form. The hub produces Events;
// each transport encodes them its own way (AppendEvent for the native protocol).
type Event struct {
	Type Type
	// ID echoes a request id (raw JSON) in welcome, ack and error frames; in a relay it is the
	// sender's id of that relay (when it gave one), so that the receiver can drop a retry it
	// already has (see Retry).
	ID []byte
	// From is the sender of a relay.
	From PeerID
	// Data is the relayed raw JSON value.
	Data []byte
	// Broadcast marks a relayed message sent to the whole room.
	Broadcast bool
	// Peer is the subject of peer-joined and peer-left.
	Peer *PeerInfo
	// Reason says why a peer left.
	Reason string
	// Err is the error of an error frame.
	Err *Error
	// Welcome is the body of a welcome frame.
	Welcome *Welcome
	// ICEServers is the raw JSON array of RTCIceServer objects of an ice-servers answer.
	ICEServers []byte
	// Seq is the event's sequence number in its presence's stream (1, 2, 3 …, continuing
	// across resumes), or 0 for frames that carry none (welcome, ack, error, ice-servers,
	// resume-token). Encoded as "seq" when not 0.
	Seq uint64
	// Resumed marks a peer-joined for a presence that came back under its earlier id (its
	// node restarted or died): clients that know the id treat it as an update.
	Resumed bool
	// Resume is the fresh token of a resume-token frame.
	Resume string
	// Retry marks a relay the sender re-sent after a resume that the server could not tell
	// apart from one it had already relayed (the node that accepted the first attempt
	// restarted or died): a receiver that already has the sender's relay with this ID drops it.
	Retry bool
}

// Welcome is the body of a welcome frame.
type Welcome struct {
	Self  PeerID
	Room  string
	Peers []PeerInfo
	// ICEServers is the raw JSON array of RTCIceServer objects.
	ICEServers []byte
	// Resume is the token a client sends in a later join to take this presence back after
	// losing its connection; empty when the server does not offer resumption.
	Resume string
	// ResumeMillis is how long the server keeps a lost presence for resumption.
	ResumeMillis int64
	// Resumed is set when this welcome answers a join that took a lost presence back: Self
	// is the earlier id, Peers the room's members now, and the events after the join's last
	// follow.
	Resumed bool
	// Seq is the presence's counter before the replay (resumed welcomes only; 0 omits it).
	Seq uint64
	// Gap is set when events after the join's last are no longer available.
	Gap bool
	// Restored is set when the presence was re-created from its token alone (the node that
	// held it restarted or died).
	Restored bool
}

// AppendEvent appends the native JSON encoding of e to dst.
func AppendEvent(dst []byte, e *Event) []byte {
	dst = append(dst, `{"type":"`...)
	dst = append(dst, e.Type.String()...)
	dst = append(dst, '"')
	if e.ID != nil {
		dst = append(dst, `,"id":`...)
		dst = append(dst, e.ID...)
	}
	switch e.Type {
	case TypeOffer, TypeAnswer, TypeICECandidate, TypeMessage:
		dst = append(dst, `,"from":`...)
		dst = AppendString(dst, string(e.From))
		dst = append(dst, `,"data":`...)
		dst = append(dst, e.Data...)
		if e.Broadcast {
			dst = append(dst, `,"broadcast":true`...)
		}
		if e.Retry {
			dst = append(dst, `,"retry":true`...)
		}
	case TypeWelcome:
		w := e.Welcome
		dst = append(dst, `,"v":`...)
		dst = strconv.AppendInt(dst, Version, 10)
		dst = append(dst, `,"peer":`...)
		dst = AppendString(dst, string(w.Self))
		dst = append(dst, `,"room":`...)
		dst = AppendString(dst, w.Room)
		dst = append(dst, `,"peers":[`...)
		for i := range w.Peers {
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = appendPeer(dst, &w.Peers[i])
		}
		dst = append(dst, `],"iceServers":`...)
		if w.ICEServers != nil {
			dst = append(dst, w.ICEServers...)
		} else {
			dst = append(dst, `[]`...)
		}
		if w.Resume != "" {
			dst = append(dst, `,"resume":`...)
			dst = AppendString(dst, w.Resume)
			dst = append(dst, `,"resumeMs":`...)
			dst = strconv.AppendInt(dst, w.ResumeMillis, 10)
		}
		if w.Resumed {
			dst = append(dst, `,"resumed":true`...)
			dst = append(dst, `,"seq":`...)
			dst = strconv.AppendUint(dst, w.Seq, 10)
		}
		if w.Gap {
			dst = append(dst, `,"gap":true`...)
		}
		if w.Restored {
			dst = append(dst, `,"restored":true`...)
		}
	case TypeICEServers:
		dst = append(dst, `,"iceServers":`...)
		if e.ICEServers != nil {
			dst = append(dst, e.ICEServers...)
		} else {
			dst = append(dst, `[]`...)
		}
	case TypeServerMessage:
		dst = append(dst, `,"data":`...)
		dst = append(dst, e.Data...)
	case TypePeerJoined, TypePeerUpdated:
		dst = append(dst, `,"peer":`...)
		dst = appendPeer(dst, e.Peer)
		if e.Resumed && e.Type == TypePeerJoined {
			dst = append(dst, `,"resumed":true`...)
		}
	case TypeResumeToken:
		dst = append(dst, `,"resume":`...)
		dst = AppendString(dst, e.Resume)
	case TypePeerLeft:
		dst = append(dst, `,"peer":{"id":`...)
		dst = AppendString(dst, string(e.Peer.ID))
		dst = append(dst, `},"reason":`...)
		dst = AppendString(dst, e.Reason)
	case TypeError:
		dst = append(dst, `,"code":`...)
		dst = AppendString(dst, e.Err.Code.String())
		dst = append(dst, `,"message":`...)
		dst = AppendString(dst, e.Err.Message)
	}
	if e.Seq != 0 {
		dst = append(dst, `,"seq":`...)
		dst = strconv.AppendUint(dst, e.Seq, 10)
	}
	return append(dst, '}')
}

func appendPeer(dst []byte, p *PeerInfo) []byte {
	dst = append(dst, `{"id":`...)
	dst = AppendString(dst, string(p.ID))
	if p.Identity != "" {
		dst = append(dst, `,"identity":`...)
		dst = AppendString(dst, p.Identity)
	}
	if p.Name != "" {
		dst = append(dst, `,"name":`...)
		dst = AppendString(dst, p.Name)
	}
	if p.Meta != nil {
		dst = append(dst, `,"meta":`...)
		dst = append(dst, p.Meta...)
	}
	return append(dst, '}')
}

const hexDigits = "0123456789abcdef"

// AppendString appends s as a JSON string. Invalid UTF-8 becomes U+FFFD.
func AppendString(dst []byte, s string) []byte {
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' {
				i++
				continue
			}
			dst = append(dst, s[start:i]...)
			switch c {
			case '"', '\\':
				dst = append(dst, '\\', c)
			case '\n':
				dst = append(dst, '\\', 'n')
			case '\r':
				dst = append(dst, '\\', 'r')
			case '\t':
				dst = append(dst, '\\', 't')
			default:
				dst = append(dst, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			dst = append(dst, s[start:i]...)
			dst = append(dst, `\ufffd`...)
			i += size
			start = i
			continue
		}
		i += size
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}
