package protocol_test

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"os"
	"reflect"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/switchboard-rtc/switchboard/protocol"
)

// decodeMap decodes a JSON object with numbers kept as json.Number, failing the test if it is
// not valid JSON.
func decodeMap(t *testing.T, b []byte) map[string]any {
	t.Helper()
	if !json.Valid(b) {
		t.Fatalf("not valid JSON: %s", b)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var m map[string]any
	if err := dec.Decode(&m); err != nil {
		t.Fatalf("decode %s: %v", b, err)
	}
	return m
}

// mustMap decodes a literal JSON object for use as an expectation.
func mustMap(t *testing.T, s string) map[string]any {
	t.Helper()
	return decodeMap(t, []byte(s))
}

func TestAppendEvent(t *testing.T) {
	const from = protocol.PeerID("Vb4k7hVd0S2v0w9Jv1qgXA")
	const sdp = `{"type":"offer","sdp":"v=0\r\n..."}`
	ada := protocol.PeerInfo{ID: "q3m8sXoLqv1yCpTtNd3h1w", Name: "Ada", Meta: []byte(`{"avatar":"🦊"}`)}
	grace := protocol.PeerInfo{ID: "Vb4k7hVd0S2v0w9Jv1qgXA", Name: "Grace", Meta: []byte(`{"avatar":"🐙"}`)}
	bare := protocol.PeerInfo{ID: "AAAAAAAAAAAAAAAAAAAAAA"}
	tests := []struct {
		name string
		e    protocol.Event
		want string
	}{
		{"offer", protocol.Event{Type: protocol.TypeOffer, From: from, Data: []byte(sdp)},
			`{"type":"offer","from":"Vb4k7hVd0S2v0w9Jv1qgXA","data":` + sdp + `}`},
		{"answer", protocol.Event{Type: protocol.TypeAnswer, From: from, Data: []byte(`{"type":"answer","sdp":"v=0"}`)},
			`{"type":"answer","from":"Vb4k7hVd0S2v0w9Jv1qgXA","data":{"type":"answer","sdp":"v=0"}}`},
		{"ice-candidate", protocol.Event{Type: protocol.TypeICECandidate, From: from, Data: []byte(`{"candidate":"c","sdpMid":"0","sdpMLineIndex":0}`)},
			`{"type":"ice-candidate","from":"Vb4k7hVd0S2v0w9Jv1qgXA","data":{"candidate":"c","sdpMid":"0","sdpMLineIndex":0}}`},
		{"message", protocol.Event{Type: protocol.TypeMessage, From: from, Data: []byte(`"hi"`)},
			`{"type":"message","from":"Vb4k7hVd0S2v0w9Jv1qgXA","data":"hi"}`},
		{"message broadcast", protocol.Event{Type: protocol.TypeMessage, From: from, Data: []byte(`{"text":"hello room"}`), Broadcast: true},
			`{"type":"message","from":"Vb4k7hVd0S2v0w9Jv1qgXA","data":{"text":"hello room"},"broadcast":true}`},
		{"relay with id", protocol.Event{Type: protocol.TypeOffer, ID: []byte(`"o1"`), From: from, Data: []byte(`null`)},
			`{"type":"offer","id":"o1","from":"Vb4k7hVd0S2v0w9Jv1qgXA","data":null}`},
		{"retry the server could not check", protocol.Event{Type: protocol.TypeMessage, ID: []byte(`"r42"`), From: from, Data: []byte(`1`), Retry: true, Seq: 19},
			`{"type":"message","id":"r42","from":"Vb4k7hVd0S2v0w9Jv1qgXA","data":1,"retry":true,"seq":19}`},
		{"welcome (docs example)", protocol.Event{Type: protocol.TypeWelcome, ID: []byte(`1`), Welcome: &protocol.Welcome{
			Self: ada.ID, Room: "standup-42", Peers: []protocol.PeerInfo{grace},
			ICEServers: []byte(`[{"urls":["stun:stun.example.org:3478"]}]`),
		}}, `{"type":"welcome","id":1,"v":1,"peer":"q3m8sXoLqv1yCpTtNd3h1w","room":"standup-42",
			"peers":[{"id":"Vb4k7hVd0S2v0w9Jv1qgXA","name":"Grace","meta":{"avatar":"🐙"}}],
			"iceServers":[{"urls":["stun:stun.example.org:3478"]}]}`},
		{"ice-servers answer", protocol.Event{Type: protocol.TypeICEServers, ID: []byte(`3`), ICEServers: []byte(`[{"urls":["turn:t:3478"],"username":"1:p","credential":"c"}]`)},
			`{"type":"ice-servers","id":3,"iceServers":[{"urls":["turn:t:3478"],"username":"1:p","credential":"c"}]}`},
		{"ice-servers answer, none", protocol.Event{Type: protocol.TypeICEServers},
			`{"type":"ice-servers","iceServers":[]}`},
		{"welcome empty room, no ICE servers", protocol.Event{Type: protocol.TypeWelcome, Welcome: &protocol.Welcome{Self: ada.ID, Room: "r"}},
			`{"type":"welcome","v":1,"peer":"q3m8sXoLqv1yCpTtNd3h1w","room":"r","peers":[],"iceServers":[]}`},
		{"welcome several peers", protocol.Event{Type: protocol.TypeWelcome, ID: []byte(`"j"`), Welcome: &protocol.Welcome{
			Self: "me", Room: "r", Peers: []protocol.PeerInfo{grace, bare, ada}, ICEServers: []byte(`[]`),
		}}, `{"type":"welcome","id":"j","v":1,"peer":"me","room":"r","peers":[
			{"id":"Vb4k7hVd0S2v0w9Jv1qgXA","name":"Grace","meta":{"avatar":"🐙"}},
			{"id":"AAAAAAAAAAAAAAAAAAAAAA"},
			{"id":"q3m8sXoLqv1yCpTtNd3h1w","name":"Ada","meta":{"avatar":"🦊"}}],"iceServers":[]}`},
		{"peer-joined (docs example)", protocol.Event{Type: protocol.TypePeerJoined, Peer: &ada},
			`{"type":"peer-joined","peer":{"id":"q3m8sXoLqv1yCpTtNd3h1w","name":"Ada","meta":{"avatar":"🦊"}}}`},
		{"peer-joined bare", protocol.Event{Type: protocol.TypePeerJoined, Peer: &bare},
			`{"type":"peer-joined","peer":{"id":"AAAAAAAAAAAAAAAAAAAAAA"}}`},
		{"peer-joined resumed", protocol.Event{Type: protocol.TypePeerJoined, Peer: &bare, Resumed: true},
			`{"type":"peer-joined","peer":{"id":"AAAAAAAAAAAAAAAAAAAAAA"},"resumed":true}`},
		{"peer-updated ignores resumed", protocol.Event{Type: protocol.TypePeerUpdated, Peer: &bare, Resumed: true},
			`{"type":"peer-updated","peer":{"id":"AAAAAAAAAAAAAAAAAAAAAA"}}`},
		{"peer-joined name needing escapes", protocol.Event{Type: protocol.TypePeerJoined, Peer: &protocol.PeerInfo{ID: "x", Name: "a\"b\\c\n"}},
			`{"type":"peer-joined","peer":{"id":"x","name":"a\"b\\c\n"}}`},
		{"peer-left (docs example)", protocol.Event{Type: protocol.TypePeerLeft, Peer: &ada, Reason: "left"},
			`{"type":"peer-left","peer":{"id":"q3m8sXoLqv1yCpTtNd3h1w"},"reason":"left"}`},
		{"ack string id", protocol.Event{Type: protocol.TypeAck, ID: []byte(`"m7"`)}, `{"type":"ack","id":"m7"}`},
		{"ack number id", protocol.Event{Type: protocol.TypeAck, ID: []byte(`-1.5e3`)}, `{"type":"ack","id":-1.5e3}`},
		{"error (docs example)", protocol.Event{Type: protocol.TypeError, ID: []byte(`"m7"`),
			Err: protocol.Errorf(protocol.CodeUnknownTarget, "target is not in your room")},
			`{"type":"error","code":"unknown-target","message":"target is not in your room","id":"m7"}`},
		{"offer with seq", protocol.Event{Type: protocol.TypeOffer, From: from, Data: []byte(`{}`), Seq: 7},
			`{"type":"offer","from":"Vb4k7hVd0S2v0w9Jv1qgXA","data":{},"seq":7}`},
		{"broadcast with seq", protocol.Event{Type: protocol.TypeMessage, From: from, Data: []byte(`1`), Broadcast: true, Seq: 18446744073709551615},
			`{"type":"message","from":"Vb4k7hVd0S2v0w9Jv1qgXA","data":1,"broadcast":true,"seq":18446744073709551615}`},
		{"peer-joined with seq", protocol.Event{Type: protocol.TypePeerJoined, Peer: &bare, Seq: 1},
			`{"type":"peer-joined","peer":{"id":"AAAAAAAAAAAAAAAAAAAAAA"},"seq":1}`},
		{"peer-joined resumed with seq", protocol.Event{Type: protocol.TypePeerJoined, Peer: &bare, Resumed: true, Seq: 2},
			`{"type":"peer-joined","peer":{"id":"AAAAAAAAAAAAAAAAAAAAAA"},"resumed":true,"seq":2}`},
		{"peer-left with seq", protocol.Event{Type: protocol.TypePeerLeft, Peer: &bare, Reason: "timeout", Seq: 3},
			`{"type":"peer-left","peer":{"id":"AAAAAAAAAAAAAAAAAAAAAA"},"reason":"timeout","seq":3}`},
		{"peer-updated with seq", protocol.Event{Type: protocol.TypePeerUpdated, Peer: &ada, Seq: 4},
			`{"type":"peer-updated","peer":{"id":"q3m8sXoLqv1yCpTtNd3h1w","name":"Ada","meta":{"avatar":"🦊"}},"seq":4}`},
		{"server-message with seq", protocol.Event{Type: protocol.TypeServerMessage, Data: []byte(`{"text":"bye"}`), Seq: 5},
			`{"type":"server-message","data":{"text":"bye"},"seq":5}`},
		{"resume-token", protocol.Event{Type: protocol.TypeResumeToken, Resume: "a.b\"c"},
			`{"type":"resume-token","resume":"a.b\"c"}`},
		{"welcome resumed", protocol.Event{Type: protocol.TypeWelcome, ID: []byte(`1`), Welcome: &protocol.Welcome{
			Self: ada.ID, Room: "r", Peers: []protocol.PeerInfo{bare}, Resume: "t", ResumeMillis: 15000, Resumed: true, Seq: 42,
		}}, `{"type":"welcome","id":1,"v":1,"peer":"q3m8sXoLqv1yCpTtNd3h1w","room":"r","peers":[{"id":"AAAAAAAAAAAAAAAAAAAAAA"}],
			"iceServers":[],"resume":"t","resumeMs":15000,"resumed":true,"seq":42}`},
		{"welcome resumed, restored, with a gap", protocol.Event{Type: protocol.TypeWelcome, Welcome: &protocol.Welcome{
			Self: ada.ID, Room: "r", Resume: "t", ResumeMillis: 1, Resumed: true, Seq: 9, Gap: true, Restored: true,
		}}, `{"type":"welcome","v":1,"peer":"q3m8sXoLqv1yCpTtNd3h1w","room":"r","peers":[],
			"iceServers":[],"resume":"t","resumeMs":1,"resumed":true,"seq":9,"gap":true,"restored":true}`},
		{"error without id, message needing escapes", protocol.Event{Type: protocol.TypeError,
			Err: &protocol.Error{Code: protocol.CodeBadJSON, Message: "bad \"x\"\t\x01 \xff"}},
			`{"type":"error","code":"bad-json","message":"bad \"x\"\t\u0001 \ufffd"}`},
	}
	covered := map[protocol.Type]bool{}
	for _, tt := range tests {
		covered[tt.e.Type] = true
		t.Run(tt.name, func(t *testing.T) {
			e := tt.e
			got := protocol.AppendEvent(nil, &e)
			if !utf8.Valid(got) {
				t.Errorf("output is not valid UTF-8: %q", got)
			}
			if !bytes.HasPrefix(got, []byte(`{"type":"`+tt.e.Type.String()+`"`)) {
				t.Errorf("output %s does not start with its type", got)
			}
			if g, w := decodeMap(t, got), mustMap(t, tt.want); !reflect.DeepEqual(g, w) {
				t.Errorf("AppendEvent =\n%s\nwant (as JSON)\n%s", got, tt.want)
			}
			// Appending keeps what dst already held.
			prefix := []byte("prefix:")
			if got2 := protocol.AppendEvent(prefix, &e); !bytes.Equal(got2, append([]byte("prefix:"), got...)) {
				t.Errorf("AppendEvent(prefix) = %q", got2)
			}
		})
	}
	for _, typ := range []protocol.Type{protocol.TypeOffer, protocol.TypeAnswer, protocol.TypeICECandidate, protocol.TypeMessage,
		protocol.TypeWelcome, protocol.TypePeerJoined, protocol.TypePeerLeft, protocol.TypeAck, protocol.TypeError,
		protocol.TypePeerUpdated, protocol.TypeServerMessage, protocol.TypeResumeToken} {
		if !covered[typ] {
			t.Errorf("no AppendEvent test for %v", typ)
		}
	}
}

// TestAppendEventRelayDataByteIdentical checks that relayed data is copied byte for byte,
// whitespace, escapes, key order and number spelling included.
func TestAppendEventRelayDataByteIdentical(t *testing.T) {
	datas := []string{
		`{"type":"offer","sdp":"v=0\r\no=- 4611731400430051336 2 IN IP4 127.0.0.1\r\n"}`,
		"{ \"b\" : 1 ,\n\t\"a\" : [ 1.50 , 1E+2 , -0 ] }",
		`"\u00e9\ud83e\udd8a\/"`,
		`12345678901234567890123456789`,
		`[]`, `{}`, `null`, `true`,
		`{"z":1,"z":2}`,
	}
	for _, typ := range []protocol.Type{protocol.TypeOffer, protocol.TypeAnswer, protocol.TypeICECandidate, protocol.TypeMessage} {
		for _, d := range datas {
			for _, bc := range []bool{false, true} {
				e := protocol.Event{Type: typ, From: "f", Data: []byte(d), Broadcast: bc}
				out := protocol.AppendEvent(nil, &e)
				var m map[string]json.RawMessage
				if err := json.Unmarshal(out, &m); err != nil {
					t.Fatalf("%v %s: %v", typ, out, err)
				}
				if string(m["data"]) != d {
					t.Errorf("%v: data = %s, want %s", typ, m["data"], d)
				}
				if !bytes.Contains(out, []byte(`"data":`+d)) {
					t.Errorf("%v: %s does not hold the data verbatim", typ, out)
				}
				if _, ok := m["broadcast"]; ok != bc {
					t.Errorf("%v broadcast=%v: %s", typ, bc, out)
				}
			}
		}
	}
}

// TestDecodeEncodeRelay is the server's relay path: a decoded frame's data goes out unchanged
// under a server-stamped from, whatever from the client claimed.
func TestDecodeEncodeRelay(t *testing.T) {
	in := []byte(`{"type":"offer","from":"spoofed","target":"p","data": {"sdp" : "v=0\r\n"} }`)
	var f protocol.Frame
	if err := protocol.DecodeFrame(in, &f); err != nil {
		t.Fatal(err)
	}
	out := protocol.AppendEvent(nil, &protocol.Event{Type: f.Type, From: "real", Data: f.Data})
	if want := `{"type":"offer","from":"real","data":{"sdp" : "v=0\r\n"}}`; string(out) != want {
		t.Errorf("relay = %s, want %s", out, want)
	}
}

func TestAppendEventEveryErrorCode(t *testing.T) {
	for c := protocol.Code(0); int(c) < protocol.NumCodes; c++ {
		out := protocol.AppendEvent(nil, &protocol.Event{Type: protocol.TypeError, Err: protocol.Errorf(c, "m %d", c)})
		m := decodeMap(t, out)
		if m["code"] != c.String() {
			t.Errorf("code %d: %s", c, out)
		}
	}
}

func TestAppendString(t *testing.T) {
	tests := []struct {
		name, in, want string
	}{
		{"empty", "", `""`},
		{"plain", "hello", `"hello"`},
		{"quote", `a"b`, `"a\"b"`},
		{"backslash", `a\b`, `"a\\b"`},
		{"newline, return, tab", "a\nb\rc\td", `"a\nb\rc\td"`},
		{"NUL", "\x00", `"\u0000"`},
		{"control chars", "\x01\x08\x0b\x0c\x1b\x1f", `"\u0001\u0008\u000b\u000c\u001b\u001f"`},
		{"space and DEL kept", " \x7f", "\" \x7f\""},
		{"slash and html kept", "</script>&", `"</script>&"`},
		{"unicode kept", "Zoë 🦊 日本", `"Zoë 🦊 日本"`},
		{"line separators kept", "\u2028\u2029", "\"\u2028\u2029\""},
		{"U+FFFD kept", "\uFFFD", "\"\uFFFD\""},
		{"invalid byte", "\xff", `"\ufffd"`},
		{"invalid bytes each replaced", "a\xff\xfeb", `"a\ufffd\ufffdb"`},
		{"truncated rune at end", "ab\xc3", `"ab\ufffd"`},
		{"truncated 4-byte rune", "\xf0\x9f\xa6", `"\ufffd\ufffd\ufffd"`},
		{"continuation byte alone", "\x80x", `"\ufffdx"`},
		{"UTF-8 encoded surrogate", "\xed\xa0\x80", `"\ufffd\ufffd\ufffd"`},
		{"overlong encoding", "\xc0\xaf", `"\ufffd\ufffd"`},
		{"mixed", "\"\xff\n", `"\"\ufffd\n"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := protocol.AppendString(nil, tt.in)
			if string(got) != tt.want {
				t.Errorf("AppendString(%q) = %s, want %s", tt.in, got, tt.want)
			}
			if !json.Valid(got) {
				t.Errorf("AppendString(%q) = %s: not valid JSON", tt.in, got)
			}
			var s string
			if err := json.Unmarshal(got, &s); err != nil {
				t.Fatal(err)
			}
			if want := strings.ToValidUTF8(tt.in, "\uFFFD"); utf8.ValidString(tt.in) && s != want {
				t.Errorf("round trip = %q, want %q", s, want)
			}
			if got2 := protocol.AppendString([]byte("x"), tt.in); string(got2) != "x"+tt.want {
				t.Errorf("AppendString(prefix) = %q", got2)
			}
		})
	}
}

// TestAppendStringEveryByte escapes every single byte and compares the decoded result with
// encoding/json's own encoding.
func TestAppendStringEveryByte(t *testing.T) {
	for c := 0; c < 256; c++ {
		s := "a" + string([]byte{byte(c)}) + "z"
		got := protocol.AppendString(nil, s)
		if !json.Valid(got) {
			t.Fatalf("byte %#x: %q is not valid JSON", c, got)
		}
		ref, _ := json.Marshal(s)
		var g, r string
		if err := json.Unmarshal(got, &g); err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(ref, &r); err != nil {
			t.Fatal(err)
		}
		if g != r {
			t.Errorf("byte %#x: decodes to %q, encoding/json gives %q", c, g, r)
		}
		for _, b := range got {
			if b < 0x20 {
				t.Errorf("byte %#x: raw control character in %q", c, got)
			}
		}
	}
}

func TestNewPeerID(t *testing.T) {
	const n = 10000
	seen := make(map[protocol.PeerID]bool, n)
	for i := 0; i < n; i++ {
		id := protocol.NewPeerID()
		if len(id) != 22 {
			t.Fatalf("NewPeerID() = %q: %d chars, want 22", id, len(id))
		}
		for _, c := range []byte(id) {
			if !(c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
				t.Fatalf("NewPeerID() = %q: %q is not base64url", id, c)
			}
		}
		raw, err := base64.RawURLEncoding.DecodeString(string(id))
		if err != nil || len(raw) != 16 {
			t.Fatalf("NewPeerID() = %q: decodes to %d bytes, %v", id, len(raw), err)
		}
		if seen[id] {
			t.Fatalf("NewPeerID() repeated %q after %d draws", id, i)
		}
		seen[id] = true
	}
}

func TestValidRoom(t *testing.T) {
	tests := []struct {
		name string
		ok   bool
	}{
		{"", false},
		{"a", true},
		{"standup-42", true},
		{"A.b_c-9", true},
		{"ABCXYZabcxyz0189", true},
		{".", true},
		{"-", true},
		{"_", true},
		{strings.Repeat("r", protocol.MaxRoomLen), true},
		{strings.Repeat("r", protocol.MaxRoomLen+1), false},
		{"a b", false},
		{" a", false},
		{"a/b", false},
		{"a\\b", false},
		{"a:b", false},
		{"a@b", false},
		{"a+b", false},
		{"a~b", false},
		{"é", false},
		{"room🦊", false},
		{"a\x00", false},
		{"a\n", false},
		{"\xff", false},
		{"[", false},
		{"`", false},
		{"{", false},
	}
	for _, tt := range tests {
		if got := protocol.ValidRoom(tt.name); got != tt.ok {
			t.Errorf("ValidRoom(%q) = %v, want %v", tt.name, got, tt.ok)
		}
	}
	// Every byte outside the allowed set is rejected.
	for c := 0; c < 256; c++ {
		allowed := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-' || c == '.'
		if got := protocol.ValidRoom("x" + string([]byte{byte(c)})); got != allowed {
			t.Errorf("ValidRoom(x%q) = %v, want %v", rune(c), got, allowed)
		}
	}
}

func TestTypeNames(t *testing.T) {
	seen := map[string]bool{}
	for typ := protocol.Type(0); int(typ) < protocol.NumTypes; typ++ {
		name := typ.String()
		if name == "" || seen[name] {
			t.Errorf("type %d: name %q empty or repeated", typ, name)
		}
		seen[name] = true
		// Client types parse back; server types and "unknown" do not.
		client := typ == protocol.TypeJoin || typ == protocol.TypeLeave || typ.IsRelay() || typ == protocol.TypeICEServers || typ == protocol.TypeRead
		if got := protocol.ParseType([]byte(name)); client && got != typ || !client && got != protocol.TypeUnknown {
			t.Errorf("ParseType(%q) = %v", name, got)
		}
	}
	if got := protocol.Type(200).String(); got != "type(200)" {
		t.Errorf("Type(200).String() = %q", got)
	}
	relays := map[protocol.Type]bool{protocol.TypeOffer: true, protocol.TypeAnswer: true, protocol.TypeICECandidate: true, protocol.TypeMessage: true}
	for typ := protocol.Type(0); typ < 255; typ++ {
		if typ.IsRelay() != relays[typ] {
			t.Errorf("%v.IsRelay() = %v", typ, typ.IsRelay())
		}
	}
	if got := protocol.Code(200).String(); got != "code(200)" {
		t.Errorf("Code(200).String() = %q", got)
	}
}

// TestDocsListEveryNameAndCode keeps docs/protocol.md in step with the code: every frame type
// and every error code must be documented.
func TestDocsListEveryNameAndCode(t *testing.T) {
	doc, err := os.ReadFile("../docs/protocol.md")
	if err != nil {
		t.Fatalf("docs/protocol.md: %v", err)
	}
	for typ := protocol.Type(1); int(typ) < protocol.NumTypes; typ++ {
		if !bytes.Contains(doc, []byte("`"+typ.String()+"`")) {
			t.Errorf("docs/protocol.md does not mention type `%s`", typ)
		}
	}
	seen := map[string]bool{}
	for c := protocol.Code(0); int(c) < protocol.NumCodes; c++ {
		name := c.String()
		if seen[name] || strings.HasPrefix(name, "code(") {
			t.Errorf("code %d: name %q repeated or missing", c, name)
		}
		seen[name] = true
		if !bytes.Contains(doc, []byte("| `"+name+"` |")) {
			t.Errorf("docs/protocol.md's error table does not list `%s`", name)
		}
	}
}
