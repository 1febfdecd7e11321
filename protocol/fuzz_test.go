package protocol_test

import (
	"bytes"
	"encoding/json"
	"strconv"
	"testing"
	"unicode/utf8"

	"github.com/switchboard-rtc/switchboard/protocol"
)

// fuzzMaxDepth is the nesting the decoder promises to accept; deeper input may be refused with
// bad-json even when it is valid JSON.
const fuzzMaxDepth = 64

// nesting returns the deepest nesting of objects and arrays in b, a top-level object counting
// as 1. Brackets inside strings are skipped.
func nesting(b []byte) int {
	depth, maxd := 0, 0
	inStr := false
	for i := 0; i < len(b); i++ {
		c := b[i]
		if inStr {
			switch c {
			case '\\':
				i++
			case '"':
				inStr = false
			}
			continue
		}
		switch c {
		case '"':
			inStr = true
		case '{', '[':
			depth++
			maxd = max(maxd, depth)
		case '}', ']':
			depth--
		}
	}
	return maxd
}

// topLevelObject reports whether the first non-space byte of b opens an object.
func topLevelObject(b []byte) bool {
	b = bytes.TrimLeft(b, " \t\r\n")
	return len(b) > 0 && b[0] == '{'
}

// jsonString decodes raw as a JSON string with encoding/json.
func jsonString(raw json.RawMessage) (string, bool) {
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return "", false
	}
	return s, true
}

// FuzzDecodeFrame checks DecodeFrame against encoding/json. DecodeFrame must never panic or
// modify its input; whatever it accepts encoding/json must accept and read the same way; what
// it refuses as bad-json must be invalid JSON, too deep, or not an object; and its other errors
// are only for valid JSON.
func FuzzDecodeFrame(f *testing.F) {
	for _, s := range []string{
		`{"type":"join","id":1,"room":"standup-42","name":"Ada","meta":{"avatar":"🦊"},"v":1}`,
		`{"type":"leave","id":2}`,
		`{"type":"offer","target":"Vb4k7hVd0S2v0w9Jv1qgXA","data":{"type":"offer","sdp":"v=0\r\n..."}}`,
		`{"type":"message","broadcast":true,"data":{"text":"hello room"}}`,
		`{"type":"message","id":"m7","target":"q3m8sXoLqv1yCpTtNd3h1w","data":{"text":"hi"}}`,
		`{"type":"join","room":"r\u0031","name":"\ud83e\udd8a\"\\"}`,
		`{"type":"join","room":"r","resume":"AbC-_d\u0030"}`,
		`{"type":"bogus","target":1}`,
		`{"type":"join","room":"r","resume":"t","last":12}`,
		`{"type":"read","seq":18446744073709551615}`,
		`{"type":"message","id":"m","target":"p","data":1,"retry":true}`,
		`{"type":"join"`,
		`{"type":"leave"} x`,
		`[{"type":"leave"}]`,
		"",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		orig := bytes.Clone(in)
		var fr protocol.Frame
		err := protocol.DecodeFrame(in, &fr)
		if !bytes.Equal(in, orig) {
			t.Fatalf("DecodeFrame modified its input")
		}
		valid := json.Valid(in)
		if err != nil {
			switch err.Code {
			case protocol.CodeBadJSON:
				if valid && nesting(in) <= fuzzMaxDepth && topLevelObject(in) {
					t.Fatalf("DecodeFrame(%q) = %v, but it is a valid JSON object nested %d deep", in, err, nesting(in))
				}
			case protocol.CodeBadField, protocol.CodeMissingField, protocol.CodeUnknownType:
				if !valid {
					t.Fatalf("DecodeFrame(%q) = %v, want bad-json: encoding/json rejects it", in, err)
				}
			default:
				t.Fatalf("DecodeFrame(%q) = %v: a code DecodeFrame never returns", in, err)
			}
			if !utf8.ValidString(err.Message) && utf8.Valid(in) {
				t.Fatalf("DecodeFrame(%q): error message %q is not valid UTF-8", in, err.Message)
			}
			return
		}

		// Accepted: encoding/json must agree.
		if !valid {
			t.Fatalf("DecodeFrame(%q) accepted input that encoding/json rejects", in)
		}
		var m map[string]json.RawMessage
		if e := json.Unmarshal(in, &m); e != nil || m == nil {
			t.Fatalf("DecodeFrame(%q) accepted it but it is not a JSON object: %v", in, e)
		}
		typ, ok := jsonString(m["type"])
		if !ok {
			t.Fatalf("DecodeFrame(%q) = %v, but encoding/json's type is %s", in, fr.Type, m["type"])
		}
		if got := protocol.ParseType([]byte(typ)); got != fr.Type || fr.Type == protocol.TypeUnknown {
			t.Fatalf("DecodeFrame(%q): type %v, encoding/json reads %q", in, fr.Type, typ)
		}
		// DecodeFrame requires valid UTF-8 (the WebSocket layer checks it); on other input
		// unescaped strings keep their invalid bytes while encoding/json replaces them.
		if utf8.Valid(in) {
			for _, c := range []struct {
				key string
				got []byte
			}{{"target", fr.Target}, {"room", fr.Room}, {"name", fr.Name}, {"resume", fr.Resume}} {
				raw, present := m[c.key]
				if present != (c.got != nil) {
					t.Fatalf("DecodeFrame(%q): %s present %v (%q), encoding/json: present %v (%s)", in, c.key, c.got != nil, c.got, present, raw)
				}
				if !present {
					continue
				}
				s, ok := jsonString(raw)
				if !ok || s != string(c.got) {
					t.Fatalf("DecodeFrame(%q): %s = %q, encoding/json reads %s", in, c.key, c.got, raw)
				}
			}
		}
		if fr.Data != nil {
			if !json.Valid(fr.Data) {
				t.Fatalf("DecodeFrame(%q): data %q is not valid JSON", in, fr.Data)
			}
			if !bytes.Equal(fr.Data, m["data"]) {
				t.Fatalf("DecodeFrame(%q): data = %s, encoding/json has %s", in, fr.Data, m["data"])
			}
		} else if _, ok := m["data"]; ok {
			t.Fatalf("DecodeFrame(%q): no data, encoding/json has %s", in, m["data"])
		}
		if id, ok := m["id"]; ok != (fr.ID != nil) || !bytes.Equal(fr.ID, id) {
			t.Fatalf("DecodeFrame(%q): id = %s, encoding/json has %s", in, fr.ID, id)
		}
		if meta, ok := m["meta"]; ok != (fr.Meta != nil) || !bytes.Equal(fr.Meta, meta) || ok && meta[0] != '{' {
			t.Fatalf("DecodeFrame(%q): meta = %s, encoding/json has %s", in, fr.Meta, meta)
		}
		if fr.Broadcast != (string(m["broadcast"]) == "true") {
			t.Fatalf("DecodeFrame(%q): broadcast = %v, encoding/json has %s", in, fr.Broadcast, m["broadcast"])
		}
		if raw, ok := m["v"]; ok {
			if n, e := strconv.Atoi(string(raw)); e != nil || n != fr.V {
				t.Fatalf("DecodeFrame(%q): v = %d, encoding/json has %s", in, fr.V, raw)
			}
		}

		for _, c := range []struct {
			key string
			got uint64
		}{{"last", fr.Last}, {"seq", fr.Seq}} {
			raw, ok := m[c.key]
			if !ok {
				if c.got != 0 {
					t.Fatalf("DecodeFrame(%q): %s = %d, absent for encoding/json", in, c.key, c.got)
				}
				continue
			}
			if n, e := strconv.ParseUint(string(raw), 10, 64); e != nil || n != c.got {
				t.Fatalf("DecodeFrame(%q): %s = %d, encoding/json has %s", in, c.key, c.got, raw)
			}
		}
		if _, ok := m["seq"]; ok != fr.HaveSeq {
			t.Fatalf("DecodeFrame(%q): HaveSeq %v", in, fr.HaveSeq)
		}
		if fr.Retry != (string(m["retry"]) == "true") {
			t.Fatalf("DecodeFrame(%q): retry = %v, encoding/json has %s", in, fr.Retry, m["retry"])
		}

		// The type's required fields are there.
		switch {
		case fr.Type == protocol.TypeJoin && fr.Room == nil:
			t.Fatalf("DecodeFrame(%q): join without room", in)
		case fr.Type == protocol.TypeRead && !fr.HaveSeq:
			t.Fatalf("DecodeFrame(%q): read without seq", in)
		case fr.Type.IsRelay() && fr.Data == nil:
			t.Fatalf("DecodeFrame(%q): relay without data", in)
		case fr.Type.IsRelay() && fr.Broadcast == (fr.Target != nil):
			t.Fatalf("DecodeFrame(%q): relay with broadcast=%v and target %q", in, fr.Broadcast, fr.Target)
		case fr.Broadcast && fr.Type.IsRelay() && fr.Type != protocol.TypeMessage:
			t.Fatalf("DecodeFrame(%q): %v broadcast", in, fr.Type)
		}
	})
}

// FuzzAppendString checks that AppendString always produces valid JSON that encoding/json
// reads back as the input (valid UTF-8) or as encoding/json's own encoding of it (invalid).
func FuzzAppendString(f *testing.F) {
	for _, s := range []string{"", "hello", "a\"b\\c", "\x00\x1f\n\r\t", "Zoë 🦊", "\xff\xfe", "\xed\xa0\x80", "\u2028</script>"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		out := protocol.AppendString(nil, s)
		if !json.Valid(out) {
			t.Fatalf("AppendString(%q) = %q: not valid JSON", s, out)
		}
		if !utf8.Valid(out) {
			t.Fatalf("AppendString(%q) = %q: not valid UTF-8", s, out)
		}
		var got string
		if err := json.Unmarshal(out, &got); err != nil {
			t.Fatalf("AppendString(%q) = %q: %v", s, out, err)
		}
		if utf8.ValidString(s) {
			if got != s {
				t.Fatalf("AppendString(%q) = %q reads back as %q", s, out, got)
			}
			return
		}
		ref, _ := json.Marshal(s)
		var want string
		if err := json.Unmarshal(ref, &want); err != nil {
			t.Fatal(err)
		}
		if got != want {
			t.Fatalf("AppendString(%q) = %q reads back as %q, encoding/json's encoding as %q", s, out, got, want)
		}
	})
}

// FuzzAppendEventSeq checks that every event encodes to valid JSON whose seq (when not 0) and
// resume token read back as given, whatever the strings hold.
func FuzzAppendEventSeq(f *testing.F) {
	f.Add(uint8(protocol.TypeOffer), uint64(1), "from", "tok", true)
	f.Add(uint8(protocol.TypeResumeToken), uint64(0), "", "a\"b", false)
	f.Add(uint8(protocol.TypeWelcome), uint64(1<<63), "\xff", "t", true)
	f.Fuzz(func(t *testing.T, typ uint8, seq uint64, s, tok string, flag bool) {
		peer := &protocol.PeerInfo{ID: protocol.PeerID(s), Name: s}
		e := protocol.Event{Type: protocol.Type(typ % uint8(protocol.NumTypes)), From: protocol.PeerID(s), Data: []byte(`{"x":1}`),
			Peer: peer, Reason: s, Err: protocol.Errorf(protocol.CodeInternal, "%s", s), Seq: seq, Resumed: flag, Resume: tok,
			Welcome: &protocol.Welcome{Self: protocol.PeerID(s), Room: s, Peers: []protocol.PeerInfo{*peer}, Resume: tok, Resumed: flag, Seq: seq, Gap: flag, Restored: flag}}
		out := protocol.AppendEvent(nil, &e)
		var m map[string]json.RawMessage
		if err := json.Unmarshal(out, &m); err != nil {
			t.Fatalf("AppendEvent(%+v) = %s: %v", e, out, err)
		}
		if e.Type != protocol.TypeWelcome {
			raw, ok := m["seq"]
			if ok != (seq != 0) || ok && string(raw) != strconv.FormatUint(seq, 10) {
				t.Fatalf("AppendEvent: seq %d encoded as %s (present %v)", seq, raw, ok)
			}
		}
		if e.Type == protocol.TypeResumeToken && utf8.ValidString(tok) {
			if got, _ := jsonString(m["resume"]); got != tok {
				t.Fatalf("AppendEvent: resume %q reads back as %q", tok, got)
			}
		}
	})
}
