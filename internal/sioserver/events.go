package sioserver

import (
	"strconv"

	"github.com/switchboard-rtc/switchboard/protocol"
)

// reply answers a request: with an ACK when the client asked for one (perr nil: {"type":"ack"};
// else the error object), otherwise with an "error" event when perr is set.
func (ss *session) reply(ack int64, perr *protocol.Error) {
	var id []byte
	if ack >= 0 {
		id = appendAckID(ack)
	}
	if perr == nil {
		if id != nil {
			ss.Send(&protocol.Event{Type: protocol.TypeAck, ID: id})
		}
		return
	}
	ss.srv.stats.Errors[perr.Code].Add(1)
	ss.Send(&protocol.Event{Type: protocol.TypeError, ID: id, Err: perr})
}

// Send implements bus.Sink for the hub: the events of the socket's room presence (numbered:
// their seq gives their offset, recovery.go) and the answers to its requests. The presence's
// resume tokens are kept for a recovery, not sent: in the welcome of a recovery (which the
// client does not expect) and in resume-token events.
func (ss *session) Send(e *protocol.Event) bool {
	ss.mu.Lock()
	k := ss.sock
	ss.mu.Unlock()
	var off uint64
	if k != nil && k.on {
		switch {
		case e.Seq != 0:
			off = k.roomOffset(e.Seq)
		case e.Type == protocol.TypeWelcome && e.Welcome != nil:
			if e.Welcome.Resume != "" {
				k.setToken(e.Welcome.Resume)
			}
			if e.Welcome.Resumed && e.ID == nil { // Session.Recover's
				ss.mu.Lock()
				ss.recGap = e.Welcome.Gap
				ss.mu.Unlock()
				return true
			}
		case e.Type == protocol.TypeResumeToken:
			k.setToken(e.Resume)
			return true
		}
	}
	return ss.send(e, off)
}

// send encodes e as a Socket.IO packet, with off (when not 0) as the event's last argument.
// Relays are the event named after their type with the sender's data, the sender's socket id
// added as "from" (see appendRelayData); acks, welcomes and errors answering a request with
// an ack id are its ACK; the rest are events named after their type whose argument is the
// native event object.
func (ss *session) send(e *protocol.Event, off uint64) bool {
	return ss.sendPacketOff(func(dst []byte) []byte {
		switch {
		case e.Type.IsRelay():
			dst = appendEventHeader(dst, -1)
			dst = protocol.AppendString(dst, e.Type.String())
			dst = append(dst, ',')
			dst = appendRelayData(dst, e.Data, e.From)
		case e.ID != nil && (e.Type == protocol.TypeAck || e.Type == protocol.TypeWelcome || e.Type == protocol.TypeError):
			dst = append(dst, "43"...)
			dst = append(dst, e.ID...)
			dst = append(dst, '[')
			dst = protocol.AppendEvent(dst, e)
			return append(dst, ']')
		default:
			dst = appendEventHeader(dst, -1)
			dst = protocol.AppendString(dst, e.Type.String())
			dst = append(dst, ',')
			dst = protocol.AppendEvent(dst, e)
		}
		if off != 0 {
			dst = append(dst, `,"`...)
			dst = strconv.AppendUint(dst, off, 10)
			dst = append(dst, '"')
		}
		return append(dst, ']')
	}, off)
}

// appendRelayData appends a relayed value with its sender: an object gets a "from" member
// last (so it wins over one the sender put there, as JSON.parse keeps the last); any other
// value is followed by a second argument {"from":id}.
func appendRelayData(dst, data []byte, from protocol.PeerID) []byte {
	if obj, empty := isObject(data); obj {
		dst = append(dst, data[:len(data)-1]...)
		if !empty {
			dst = append(dst, ',')
		}
		dst = append(dst, `"from":`...)
		dst = protocol.AppendString(dst, string(from))
		return append(dst, '}')
	}
	dst = append(dst, data...)
	dst = append(dst, `,{"from":`...)
	dst = protocol.AppendString(dst, string(from))
	return append(dst, '}')
}

// appendConnected returns the builder of the CONNECT answer for socket id: {"sid"}, and
// {"sid","pid"} when the socket can be recovered.
func appendConnected(id protocol.PeerID, pid string) func(dst []byte) []byte {
	return func(dst []byte) []byte {
		dst = append(dst, `40{"sid":"`...)
		dst = append(dst, id...)
		if pid != "" {
			dst = append(dst, `","pid":"`...)
			dst = append(dst, pid...)
		}
		return append(dst, `"}`...)
	}
}

// markRead tells the socket's outboxes that the client has read its events up to offset off.
func (ss *session) markRead(off uint64) {
	if off == 0 {
		return
	}
	ss.mu.Lock()
	k, hs := ss.sock, ss.hsRead
	ss.mu.Unlock()
	if k == nil {
		return
	}
	if seq := k.markRead(off); seq > 0 && hs != nil {
		hs.MarkRead(seq)
	}
}

// notePing takes note of a ping about to be sent: once it is answered, what was written
// before it was read.
func (ss *session) notePing() {
	ss.mu.Lock()
	if !ss.pingOut {
		ss.pingOff, ss.pingOut = ss.sent, true
	}
	ss.mu.Unlock()
}

// notePong marks read what was written before the ping a pong answers.
func (ss *session) notePong() {
	ss.mu.Lock()
	off := ss.pingOff
	if !ss.pingOut {
		off = 0
	}
	ss.pingOut = false
	ss.mu.Unlock()
	ss.markRead(off)
}
