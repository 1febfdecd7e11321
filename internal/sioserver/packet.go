package sioserver

import (
	"bytes"
	"encoding/base64"
	"errors"
	"strconv"
)

// Engine.IO v4 packet types (the first character of a packet).
const (
	eioOpen    = '0'
	eioClose   = '1'
	eioPing    = '2'
	eioPong    = '3'
	eioMessage = '4'
	eioUpgrade = '5'
	eioNoop    = '6'
)

// recordSeparator joins packets in a long-polling payload.
const recordSeparator = 0x1e

// Socket.IO v5 packet types (the first character of an Engine.IO message's data).
const (
	sioConnect      = '0'
	sioDisconnect   = '1'
	sioEvent        = '2'
	sioAck          = '3'
	sioConnectError = '4'
	sioBinaryEvent  = '5'
	sioBinaryAck    = '6'
)

// Errors of the packet decoders.
var (
	ErrBadPacket  = errors.New("sioserver: malformed packet")
	ErrBadPayload = errors.New("sioserver: malformed polling payload")
)

// eioPacket is one decoded Engine.IO packet. data aliases the decoder's input unless binary.
type eioPacket struct {
	typ    byte
	data   []byte
	binary bool // a binary message (a WebSocket binary frame, or "b"+base64 in a payload)
}

// decodePayload splits a long-polling request body into packets and calls fn for each, in
// order; it stops at fn's first error. Binary packets ("b" + base64) are decoded into new
// memory. Every packet must be non-empty; an empty body is malformed.
func decodePayload(body []byte, fn func(p eioPacket) error) error {
	if len(body) == 0 {
		return ErrBadPayload
	}
	for len(body) > 0 {
		var pkt []byte
		if i := bytes.IndexByte(body, recordSeparator); i >= 0 {
			pkt, body = body[:i], body[i+1:]
			if len(body) == 0 {
				return ErrBadPayload // trailing separator
			}
		} else {
			pkt, body = body, nil
		}
		p, err := decodePacket(pkt)
		if err != nil {
			return err
		}
		if err := fn(p); err != nil {
			return err
		}
	}
	return nil
}

// decodePacket decodes one text Engine.IO packet, as carried by a WebSocket text message or a
// polling payload ("b" + base64 is a binary message).
func decodePacket(b []byte) (eioPacket, error) {
	if len(b) == 0 {
		return eioPacket{}, ErrBadPacket
	}
	if b[0] == 'b' {
		data, err := base64.StdEncoding.AppendDecode(nil, b[1:])
		if err != nil {
			return eioPacket{}, ErrBadPacket
		}
		return eioPacket{typ: eioMessage, data: data, binary: true}, nil
	}
	if b[0] < eioOpen || b[0] > eioNoop {
		return eioPacket{}, ErrBadPacket
	}
	return eioPacket{typ: b[0], data: b[1:]}, nil
}

// sioPacket is one decoded Socket.IO packet. data aliases the decoder's input.
type sioPacket struct {
	typ         byte
	attachments int    // binary events and acks only
	nsp         []byte // "/" when absent
	ack         int64  // -1 when absent
	data        []byte // raw JSON, nil when absent
}

// maxAttachments caps the binary attachments a packet may announce.
const maxAttachments = 16

var mainNamespace = []byte("/")

// decodeSIO decodes a Socket.IO packet: type, [attachments "-"], [namespace ","], [ack id],
// [JSON]. It checks the JSON shape each type allows (CONNECT: an object or nothing; EVENT: an
// array with a string first; ACK: an array; CONNECT_ERROR: an object) and validates it, except
// an EVENT's, which splitArgs validates as it splits it.
func decodeSIO(b []byte) (sioPacket, error) {
	p := sioPacket{nsp: mainNamespace, ack: -1}
	if len(b) == 0 || b[0] < sioConnect || b[0] > sioBinaryAck {
		return p, ErrBadPacket
	}
	p.typ, b = b[0], b[1:]
	if p.typ == sioBinaryEvent || p.typ == sioBinaryAck {
		i := digits(b, 0)
		if i == 0 || i > 3 || i >= len(b) || b[i] != '-' {
			return p, ErrBadPacket
		}
		p.attachments, _ = strconv.Atoi(string(b[:i]))
		if p.attachments > maxAttachments {
			return p, ErrBadPacket
		}
		b = b[i+1:]
	}
	if len(b) > 0 && b[0] == '/' {
		i := bytes.IndexByte(b, ',')
		if i < 0 {
			p.nsp, b = b, nil
		} else {
			p.nsp, b = b[:i], b[i+1:]
		}
		if len(p.nsp) > 128 {
			return p, ErrBadPacket
		}
	}
	if i := digits(b, 0); i > 0 {
		if p.typ != sioEvent && p.typ != sioAck && p.typ != sioBinaryEvent && p.typ != sioBinaryAck || i > 15 {
			return p, ErrBadPacket
		}
		p.ack, _ = strconv.ParseInt(string(b[:i]), 10, 64)
		b = b[i:]
	}
	if len(b) > 0 {
		// An event's arguments are validated once, as they are split (splitArgs); everything
		// else here.
		if p.typ != sioEvent {
			end, ok := skipValue(b, 0, 0)
			if !ok || end != len(b) {
				return p, ErrBadPacket
			}
		}
		p.data = b
	}
	switch p.typ {
	case sioConnect:
		if p.data != nil && p.data[0] != '{' {
			return p, ErrBadPacket
		}
	case sioDisconnect:
		if p.data != nil {
			return p, ErrBadPacket
		}
	case sioEvent, sioBinaryEvent:
		if p.data == nil || p.data[0] != '[' {
			return p, ErrBadPacket
		}
		i := skipSpace(p.data, 1)
		if i >= len(p.data) || p.data[i] != '"' {
			return p, ErrBadPacket
		}
	case sioAck, sioBinaryAck:
		if p.data == nil || p.data[0] != '[' || p.ack < 0 {
			return p, ErrBadPacket
		}
	case sioConnectError:
		if p.data == nil || p.data[0] != '{' {
			return p, ErrBadPacket
		}
	}
	return p, nil
}

// appendEventHeader appends a Socket.IO EVENT (ack < 0) or ACK header in an Engine.IO message
// for the main namespace: "42[" or "43<ack>[".
func appendEventHeader(dst []byte, ack int64) []byte {
	if ack < 0 {
		return append(dst, "42["...)
	}
	dst = append(dst, "43"...)
	dst = strconv.AppendInt(dst, ack, 10)
	return append(dst, '[')
}
