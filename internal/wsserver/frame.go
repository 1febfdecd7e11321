package wsserver

import (
	"encoding/binary"
	"errors"
	"unicode/utf8"
)

// WebSocket opcodes (RFC 6455 §5.2).
const (
	opContinuation = 0x0
	opText         = 0x1
	opBinary       = 0x2
	opClose        = 0x8
	opPing         = 0x9
	opPong         = 0xA
)

// maxHeaderLen is the longest frame header: 2 + 8 (length) + 4 (mask).
const maxHeaderLen = 14

// errIncomplete means more bytes are needed to parse a frame.
var errIncomplete = errors.New("wsserver: incomplete frame")

// header is a parsed client frame header.
type header struct {
	fin    bool
	rsv    byte
	opcode byte
	masked bool
	mask   [4]byte
	length uint64
	// size is the header's own length in bytes.
	size int
}

// parseHeader parses a frame header at the start of b. It returns errIncomplete when b holds
// only part of the header.
func parseHeader(b []byte) (header, error) {
	var h header
	if len(b) < 2 {
		return h, errIncomplete
	}
	h.fin = b[0]&0x80 != 0
	h.rsv = b[0] & 0x70
	h.opcode = b[0] & 0x0F
	h.masked = b[1]&0x80 != 0
	n := 2
	switch l := b[1] & 0x7F; l {
	case 126:
		if len(b) < 4 {
			return h, errIncomplete
		}
		h.length = uint64(binary.BigEndian.Uint16(b[2:4]))
		n = 4
	case 127:
		if len(b) < 10 {
			return h, errIncomplete
		}
		h.length = binary.BigEndian.Uint64(b[2:10])
		n = 10
	default:
		h.length = uint64(l)
	}
	if h.masked {
		if len(b) < n+4 {
			return h, errIncomplete
		}
		copy(h.mask[:], b[n:n+4])
		n += 4
	}
	h.size = n
	return h, nil
}

// unmask XORs b with the mask, in place.
func unmask(b []byte, mask [4]byte) {
	key := binary.LittleEndian.Uint32(mask[:])
	key64 := uint64(key)<<32 | uint64(key)
	for len(b) >= 8 {
		v := binary.LittleEndian.Uint64(b)
		binary.LittleEndian.PutUint64(b, v^key64)
		b = b[8:]
	}
	for i := range b {
		b[i] ^= mask[i&3]
	}
}

// appendFrameHeader appends an unmasked, final server frame header for a payload of n bytes.
func appendFrameHeader(dst []byte, opcode byte, n int) []byte {
	dst = append(dst, 0x80|opcode)
	switch {
	case n < 126:
		return append(dst, byte(n))
	case n <= 0xFFFF:
		return append(dst, 126, byte(n>>8), byte(n))
	default:
		dst = append(dst, 127)
		return binary.BigEndian.AppendUint64(dst, uint64(n))
	}
}

// headerLen returns the length of the server frame header for a payload of n bytes.
func headerLen(n int) int {
	switch {
	case n < 126:
		return 2
	case n <= 0xFFFF:
		return 4
	default:
		return 10
	}
}

// putFrameHeader writes the header for a payload of n bytes so that it ends exactly at
// dst[end] and returns where it starts. dst[:end] must have room for it.
func putFrameHeader(dst []byte, end int, opcode byte, n int) int {
	start := end - headerLen(n)
	appendFrameHeader(dst[start:start], opcode, n)
	return start
}

// validCloseCode reports whether a client may send code in a close frame (RFC 6455 §7.4).
func validCloseCode(code uint16) bool {
	switch {
	case code >= 1000 && code <= 1003, code >= 1007 && code <= 1011, code >= 3000 && code <= 4999:
		return true
	}
	return false
}

// parseClose validates a close frame payload. ok is false when the payload is malformed.
func parseClose(p []byte) (code uint16, ok bool) {
	switch {
	case len(p) == 0:
		return 1005, true
	case len(p) == 1:
		return 0, false
	}
	code = binary.BigEndian.Uint16(p)
	return code, validCloseCode(code) && utf8.Valid(p[2:])
}

// closePayload builds a close frame payload; the reason is cut to fit a control frame.
func closePayload(code int, reason string) []byte {
	if len(reason) > 123 {
		reason = reason[:123]
		for len(reason) > 0 && !utf8.ValidString(reason) {
			reason = reason[:len(reason)-1]
		}
	}
	p := make([]byte, 2, 2+len(reason))
	binary.BigEndian.PutUint16(p, uint16(code))
	return append(p, reason...)
}
