package protocol

import (
	"bytes"
	"encoding/json"
	"unicode/utf8"
)

// Limits on decoded fields that do not depend on server configuration.
const (
	// MaxIDLen is the longest request id accepted, in bytes of its JSON text.
	MaxIDLen = 64
	// MaxNameLen is the longest display name accepted, in bytes.
	MaxNameLen = 64
	// MaxTokenLen is the longest access token accepted, in bytes.
	MaxTokenLen = 4096
)

// Frame is a decoded client frame. Its byte slices alias the buffer passed to DecodeFrame and
// are valid only as long as that buffer is.
type Frame struct {
	Type Type
	// ID is the raw JSON of the request id (a string or a number), or nil.
	ID []byte
	// Target is the relay target's peer id (unescaped), or nil.
	Target []byte
	// Data is the raw JSON of the relayed value, or nil.
	Data []byte
	// Broadcast is set by a message meant for the whole room.
	Broadcast bool
	// Room, Name and Meta are join fields. Meta is a raw JSON object or nil.
	Room []byte
	Name []byte
	Meta []byte
	// Resume is a join's resume token (unescaped), or nil: the token of an earlier welcome
	// whose connection was lost, to take that presence back.
	Resume []byte
	// Token is a join's access token (unescaped), or nil (docs/auth.md).
	Token []byte
	// V is the protocol version asked for in a join, 0 if absent, or -1 if given as 0.
	V int
	// Last is a resume join's highest seq received (0 if none or absent).
	Last uint64
	// Seq is a read frame's mark: every event up to it was read. HaveSeq says it was given.
	Seq     uint64
	HaveSeq bool
	// Retry marks a relay re-sent after a resume with the id of the first attempt: the server
	// acks it without relaying it again if it accepted that id already.
	Retry bool
}

// DecodeFrame decodes one client frame from b into f, validating the whole of b as JSON and
// the fields each type requires. On failure it returns an *Error with the code to send back;
// f.ID is set whenever the frame got far enough to carry one, so the error can echo it.
//
// b must hold valid UTF-8 (the WebSocket layer checks text frames). Strings with escapes are
// unescaped into new memory; everything else aliases b.
func DecodeFrame(b []byte, f *Frame) *Error {
	*f = Frame{}
	s := scanner{b: b}
	s.skipSpace()
	if !s.consume('{') {
		return Errorf(CodeBadJSON, "frame is not a JSON object")
	}
	var typeRaw []byte
	var haveType bool
	var badField string
	s.skipSpace()
	if !s.consume('}') {
		for {
			s.skipSpace()
			key, ok := s.str()
			if !ok {
				return s.syntaxError()
			}
			if bytes.IndexByte(key, '\\') >= 0 {
				// An escaped key names the same field as its unescaped form.
				key, _ = stringValue(s.b[s.i-len(key)-2 : s.i])
			}
			s.skipSpace()
			if !s.consume(':') {
				return s.syntaxError()
			}
			s.skipSpace()
			start := s.i
			kind := s.peek()
			if !s.skipValue(0) {
				return s.syntaxError()
			}
			val := b[start:s.i]
			switch string(key) {
			case "type":
				haveType = true
				if typeRaw, ok = stringValue(val); !ok {
					badField = "type"
				}
			case "id":
				if (kind != '"' && kind != '-' && (kind < '0' || kind > '9')) || len(val) > MaxIDLen {
					badField = "id"
				} else {
					f.ID = val
				}
			case "target":
				if f.Target, ok = stringValue(val); !ok {
					badField = "target"
				}
			case "data":
				f.Data = val
			case "broadcast":
				switch string(val) {
				case "true":
					f.Broadcast = true
				case "false":
					f.Broadcast = false
				default:
					badField = "broadcast"
				}
			case "room":
				if f.Room, ok = stringValue(val); !ok {
					badField = "room"
				}
			case "name":
				if f.Name, ok = stringValue(val); !ok {
					badField = "name"
				}
			case "resume":
				if f.Resume, ok = stringValue(val); !ok {
					badField = "resume"
				}
			case "token":
				if f.Token, ok = stringValue(val); !ok || len(f.Token) > MaxTokenLen {
					badField = "token"
				}
			case "meta":
				if kind != '{' {
					badField = "meta"
				}
				f.Meta = val
			case "last":
				if f.Last, ok = uint64Value(val); !ok {
					badField = "last"
				}
			case "seq":
				if f.Seq, f.HaveSeq = uint64Value(val); !f.HaveSeq {
					badField = "seq"
				}
			case "retry":
				switch string(val) {
				case "true":
					f.Retry = true
				case "false":
					f.Retry = false
				default:
					badField = "retry"
				}
			case "v":
				if !smallInt(val, &f.V) {
					badField = "v"
				} else if f.V == 0 {
					f.V = -1 // present but 0: not a version this server speaks
				}
			}
			s.skipSpace()
			if s.consume(',') {
				continue
			}
			if s.consume('}') {
				break
			}
			return s.syntaxError()
		}
	}
	s.skipSpace()
	if s.i != len(b) {
		return Errorf(CodeBadJSON, "data after the JSON object at offset %d", s.i)
	}
	if badField != "" {
		return Errorf(CodeBadField, "field %q has the wrong type or value", badField)
	}
	if !haveType {
		return Errorf(CodeMissingField, "missing field \"type\"")
	}
	f.Type = ParseType(typeRaw)
	switch f.Type {
	case TypeUnknown:
		return Errorf(CodeUnknownType, "unknown type %q", clip(typeRaw))
	case TypeOffer, TypeAnswer, TypeICECandidate, TypeMessage:
		if f.Data == nil {
			return Errorf(CodeMissingField, "%s needs \"data\"", f.Type)
		}
		if f.Broadcast && f.Type != TypeMessage {
			return Errorf(CodeBadField, "only message can be broadcast")
		}
		if f.Broadcast && f.Target != nil {
			return Errorf(CodeBadField, "a broadcast has no target")
		}
		if !f.Broadcast && f.Target == nil {
			return Errorf(CodeMissingField, "%s needs \"target\"", f.Type)
		}
	case TypeRead:
		if !f.HaveSeq {
			return Errorf(CodeMissingField, "read needs \"seq\"")
		}
	}
	return nil
}

func clip(b []byte) string {
	const max = 32
	if len(b) > max {
		b = b[:max]
		for len(b) > 0 && !utf8.Valid(b) {
			b = b[:len(b)-1]
		}
	}
	return string(b)
}

// stringValue returns the unescaped contents of the JSON string val, or false if val is not a
// string.
func stringValue(val []byte) ([]byte, bool) {
	if len(val) < 2 || val[0] != '"' {
		return nil, false
	}
	inner := val[1 : len(val)-1]
	for _, c := range inner {
		if c == '\\' {
			var s string
			if err := json.Unmarshal(val, &s); err != nil {
				return nil, false
			}
			return []byte(s), true
		}
	}
	return inner, true
}

// uint64Value parses a non-negative JSON integer that fits in a uint64 (no fraction, no
// exponent, no sign).
func uint64Value(val []byte) (uint64, bool) {
	if len(val) == 0 || len(val) > 20 || (val[0] == '0' && len(val) > 1) {
		return 0, false
	}
	var n uint64
	for _, c := range val {
		if c < '0' || c > '9' {
			return 0, false
		}
		d := uint64(c - '0')
		if n > (^uint64(0)-d)/10 {
			return 0, false
		}
		n = n*10 + d
	}
	return n, true
}

// smallInt parses a non-negative JSON integer below 1e6.
func smallInt(val []byte, out *int) bool {
	if len(val) == 0 || len(val) > 6 {
		return false
	}
	n := 0
	for _, c := range val {
		if c < '0' || c > '9' {
			return false
		}
		n = n*10 + int(c-'0')
	}
	*out = n
	return true
}

// maxDepth bounds nesting so a hostile frame cannot exhaust the stack.
const maxDepth = 64

// scanner is a validating single-pass JSON walker over one frame.
type scanner struct {
	b []byte
	i int
}

func (s *scanner) syntaxError() *Error {
	if s.i >= len(s.b) {
		return Errorf(CodeBadJSON, "unexpected end of JSON")
	}
	return Errorf(CodeBadJSON, "invalid JSON at offset %d", s.i)
}

func (s *scanner) peek() byte {
	if s.i < len(s.b) {
		return s.b[s.i]
	}
	return 0
}

func (s *scanner) consume(c byte) bool {
	if s.i < len(s.b) && s.b[s.i] == c {
		s.i++
		return true
	}
	return false
}

func (s *scanner) skipSpace() {
	for s.i < len(s.b) {
		switch s.b[s.i] {
		case ' ', '\t', '\n', '\r':
			s.i++
		default:
			return
		}
	}
}

// str scans a string and returns its raw (still escaped) contents.
func (s *scanner) str() ([]byte, bool) {
	start := s.i
	if !s.skipString() {
		return nil, false
	}
	return s.b[start+1 : s.i-1], true
}

// strClass marks bytes that end the fast path inside a string: control characters, '"' and '\\'.
var strClass = func() (t [256]bool) {
	for c := 0; c < 0x20; c++ {
		t[c] = true
	}
	t['"'] = true
	t['\\'] = true
	return t
}()

func (s *scanner) skipString() bool {
	if !s.consume('"') {
		return false
	}
	b := s.b
	i := s.i
	for {
		for i < len(b) && !strClass[b[i]] {
			i++
		}
		if i >= len(b) {
			s.i = i
			return false
		}
		switch c := b[i]; {
		case c == '"':
			s.i = i + 1
			return true
		case c == '\\':
			if i+1 >= len(b) {
				s.i = i
				return false
			}
			switch b[i+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				i += 2
			case 'u':
				if i+6 > len(b) || !isHex(b[i+2]) || !isHex(b[i+3]) || !isHex(b[i+4]) || !isHex(b[i+5]) {
					s.i = i
					return false
				}
				i += 6
			default:
				s.i = i
				return false
			}
		default: // control character
			s.i = i
			return false
		}
	}
}

func isHex(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F'
}

// skipValue validates and skips one JSON value.
func (s *scanner) skipValue(depth int) bool {
	if depth > maxDepth {
		return false
	}
	switch s.peek() {
	case '"':
		return s.skipString()
	case '{':
		s.i++
		s.skipSpace()
		if s.consume('}') {
			return true
		}
		for {
			s.skipSpace()
			if !s.skipString() {
				return false
			}
			s.skipSpace()
			if !s.consume(':') {
				return false
			}
			s.skipSpace()
			if !s.skipValue(depth + 1) {
				return false
			}
			s.skipSpace()
			if s.consume(',') {
				continue
			}
			return s.consume('}')
		}
	case '[':
		s.i++
		s.skipSpace()
		if s.consume(']') {
			return true
		}
		for {
			s.skipSpace()
			if !s.skipValue(depth + 1) {
				return false
			}
			s.skipSpace()
			if s.consume(',') {
				continue
			}
			return s.consume(']')
		}
	case 't':
		return s.literal("true")
	case 'f':
		return s.literal("false")
	case 'n':
		return s.literal("null")
	default:
		return s.skipNumber()
	}
}

func (s *scanner) literal(lit string) bool {
	if len(s.b)-s.i >= len(lit) && string(s.b[s.i:s.i+len(lit)]) == lit {
		s.i += len(lit)
		return true
	}
	return false
}

func (s *scanner) digits() int {
	n := 0
	for s.i < len(s.b) && s.b[s.i] >= '0' && s.b[s.i] <= '9' {
		s.i++
		n++
	}
	return n
}

func (s *scanner) skipNumber() bool {
	s.consume('-')
	switch {
	case s.consume('0'):
	case s.peek() >= '1' && s.peek() <= '9':
		s.digits()
	default:
		return false
	}
	if s.consume('.') && s.digits() == 0 {
		return false
	}
	if c := s.peek(); c == 'e' || c == 'E' {
		s.i++
		if !s.consume('+') {
			s.consume('-')
		}
		if s.digits() == 0 {
			return false
		}
	}
	return true
}
