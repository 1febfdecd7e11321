package protocol_test

import (
	"bytes"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/switchboard-rtc/switchboard/protocol"
)

// wantFrame is the expected result of a successful decode. Byte fields are compared as
// strings; an empty string means the field must be nil (absent).
type wantFrame struct {
	typ       protocol.Type
	id        string
	target    string
	data      string
	broadcast bool
	room      string
	name      string
	meta      string
	v         int
}

func frameString(b []byte) string {
	if b == nil {
		return "<nil>"
	}
	return string(b)
}

func optString(s string) string {
	if s == "" {
		return "<nil>"
	}
	return s
}

func checkFrame(t *testing.T, got *protocol.Frame, want wantFrame) {
	t.Helper()
	if got.Type != want.typ {
		t.Errorf("Type = %v, want %v", got.Type, want.typ)
	}
	for _, c := range []struct {
		field string
		got   []byte
		want  string
	}{
		{"ID", got.ID, want.id},
		{"Target", got.Target, want.target},
		{"Data", got.Data, want.data},
		{"Room", got.Room, want.room},
		{"Name", got.Name, want.name},
		{"Meta", got.Meta, want.meta},
	} {
		if g, w := frameString(c.got), optString(c.want); g != w {
			t.Errorf("%s = %q, want %q", c.field, g, w)
		}
	}
	if got.Broadcast != want.broadcast {
		t.Errorf("Broadcast = %v, want %v", got.Broadcast, want.broadcast)
	}
	if got.V != want.v {
		t.Errorf("V = %d, want %d", got.V, want.v)
	}
}

func TestDecodeFrameValid(t *testing.T) {
	const sdp = `{"type":"offer","sdp":"v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\n"}`
	const peer = "q3m8sXoLqv1yCpTtNd3h1w"
	tests := []struct {
		name string
		in   string
		want wantFrame
	}{
		// Every client type.
		{"join minimal", `{"type":"join","room":"standup-42"}`,
			wantFrame{typ: protocol.TypeJoin, room: "standup-42"}},
		{"join full (docs example)", `{"type":"join","id":1,"room":"standup-42","name":"Ada","meta":{"avatar":"🦊"},"v":1}`,
			wantFrame{typ: protocol.TypeJoin, id: "1", room: "standup-42", name: "Ada", meta: `{"avatar":"🦊"}`, v: 1}},
		{"join with a token, no room (the hub decides)", `{"type":"join","token":"a.b.c"}`,
			wantFrame{typ: protocol.TypeJoin}},
		{"leave", `{"type":"leave"}`, wantFrame{typ: protocol.TypeLeave}},
		{"leave with id", `{"type":"leave","id":2}`, wantFrame{typ: protocol.TypeLeave, id: "2"}},
		{"ice-servers", `{"type":"ice-servers","id":"r1"}`, wantFrame{typ: protocol.TypeICEServers, id: `"r1"`}},
		{"offer", `{"type":"offer","target":"` + peer + `","data":` + sdp + `}`,
			wantFrame{typ: protocol.TypeOffer, target: peer, data: sdp}},
		{"answer", `{"type":"answer","target":"` + peer + `","data":{"type":"answer","sdp":"v=0\r\n..."}}`,
			wantFrame{typ: protocol.TypeAnswer, target: peer, data: `{"type":"answer","sdp":"v=0\r\n..."}`}},
		{"ice-candidate", `{"type":"ice-candidate","target":"` + peer + `","data":{"candidate":"candidate:1 1 udp 2122260223 192.0.2.1 54400 typ host","sdpMid":"0","sdpMLineIndex":0}}`,
			wantFrame{typ: protocol.TypeICECandidate, target: peer, data: `{"candidate":"candidate:1 1 udp 2122260223 192.0.2.1 54400 typ host","sdpMid":"0","sdpMLineIndex":0}`}},
		{"ice-candidate end of candidates (data null)", `{"type":"ice-candidate","target":"p","data":null}`,
			wantFrame{typ: protocol.TypeICECandidate, target: "p", data: "null"}},
		{"message with string id", `{"type":"message","id":"m7","target":"` + peer + `","data":{"text":"hi"}}`,
			wantFrame{typ: protocol.TypeMessage, id: `"m7"`, target: peer, data: `{"text":"hi"}`}},

		// Broadcast rules.
		{"message broadcast", `{"type":"message","broadcast":true,"data":{"text":"hello room"}}`,
			wantFrame{typ: protocol.TypeMessage, broadcast: true, data: `{"text":"hello room"}`}},
		{"message broadcast false with target", `{"type":"message","broadcast":false,"target":"p","data":1}`,
			wantFrame{typ: protocol.TypeMessage, target: "p", data: "1"}},
		{"offer broadcast false is fine", `{"type":"offer","broadcast":false,"target":"p","data":{}}`,
			wantFrame{typ: protocol.TypeOffer, target: "p", data: "{}"}},
		{"broadcast on leave is not checked", `{"type":"leave","broadcast":true}`,
			wantFrame{typ: protocol.TypeLeave, broadcast: true}},

		// Data of every JSON kind, kept byte for byte (whitespace and escapes included).
		{"data string", `{"type":"message","target":"p","data":"a\"b\\c\u00e9"}`,
			wantFrame{typ: protocol.TypeMessage, target: "p", data: `"a\"b\\c\u00e9"`}},
		{"data number", `{"type":"message","target":"p","data":-12.5e+3}`,
			wantFrame{typ: protocol.TypeMessage, target: "p", data: `-12.5e+3`}},
		{"data true", `{"type":"message","target":"p","data":true}`,
			wantFrame{typ: protocol.TypeMessage, target: "p", data: `true`}},
		{"data false", `{"type":"message","target":"p","data":false}`,
			wantFrame{typ: protocol.TypeMessage, target: "p", data: `false`}},
		{"data empty array", `{"type":"message","target":"p","data":[]}`,
			wantFrame{typ: protocol.TypeMessage, target: "p", data: `[]`}},
		{"data with inner whitespace", "{\"type\":\"message\",\"target\":\"p\",\"data\": { \"a\" :\t[ 1 , 2.5E-3 ,\n\"x\\u0041\" ] , \"b\" : null }  }",
			wantFrame{typ: protocol.TypeMessage, target: "p", data: "{ \"a\" :\t[ 1 , 2.5E-3 ,\n\"x\\u0041\" ] , \"b\" : null }"}},
		{"data nested", `{"type":"message","target":"p","data":{"a":{"b":[[{"c":[true,false,null]}]]}}}`,
			wantFrame{typ: protocol.TypeMessage, target: "p", data: `{"a":{"b":[[{"c":[true,false,null]}]]}}`}},
		{"data unicode", `{"type":"message","target":"p","data":"héllo 🦊 \u2028"}`,
			wantFrame{typ: protocol.TypeMessage, target: "p", data: `"héllo 🦊 \u2028"`}},
		{"data first, type last", `{"data":[1],"target":"p","type":"answer"}`,
			wantFrame{typ: protocol.TypeAnswer, target: "p", data: `[1]`}},

		// Escaped strings are unescaped.
		{"escaped target", `{"type":"offer","target":"a\"b\\c\/d\u00e9\n","data":0}`,
			wantFrame{typ: protocol.TypeOffer, target: "a\"b\\c/dé\n", data: "0"}},
		{"escaped room", `{"type":"join","room":"r\u0031-\u0041"}`,
			wantFrame{typ: protocol.TypeJoin, room: "r1-A"}},
		{"escaped name with surrogate pair", `{"type":"join","room":"r","name":"Ad\u0061 \ud83e\udd8a"}`,
			wantFrame{typ: protocol.TypeJoin, room: "r", name: "Ada 🦊"}},
		{"lone surrogate becomes U+FFFD", `{"type":"join","room":"r","name":"\ud800"}`,
			wantFrame{typ: protocol.TypeJoin, room: "r", name: "\uFFFD"}},
		{"escaped type", `{"type":"jo\u0069n","room":"r"}`,
			wantFrame{typ: protocol.TypeJoin, room: "r"}},
		{"unicode name unescaped", `{"type":"join","room":"r","name":"Zoë 🦊"}`,
			wantFrame{typ: protocol.TypeJoin, room: "r", name: "Zoë 🦊"}},

		// id forms.
		{"id negative", `{"type":"leave","id":-3}`, wantFrame{typ: protocol.TypeLeave, id: "-3"}},
		{"id float", `{"type":"leave","id":1.5e3}`, wantFrame{typ: protocol.TypeLeave, id: "1.5e3"}},
		{"id zero", `{"type":"leave","id":0}`, wantFrame{typ: protocol.TypeLeave, id: "0"}},
		{"id escaped string kept raw", `{"type":"leave","id":"a\"b"}`, wantFrame{typ: protocol.TypeLeave, id: `"a\"b"`}},
		{"id of exactly MaxIDLen bytes", `{"type":"leave","id":"` + strings.Repeat("x", protocol.MaxIDLen-2) + `"}`,
			wantFrame{typ: protocol.TypeLeave, id: `"` + strings.Repeat("x", protocol.MaxIDLen-2) + `"`}},

		// v.
		{"v 0 (present, so the hub says unsupported-version)", `{"type":"join","room":"r","v":0}`, wantFrame{typ: protocol.TypeJoin, room: "r", v: -1}},
		{"v 2 (rejected later by the hub)", `{"type":"join","room":"r","v":2}`, wantFrame{typ: protocol.TypeJoin, room: "r", v: 2}},
		{"v 999999", `{"type":"join","room":"r","v":999999}`, wantFrame{typ: protocol.TypeJoin, room: "r", v: 999999}},

		// Unknown fields are ignored, whatever their value; a client's "from" too.
		{"unknown fields ignored", `{"type":"leave","extra":{"x":[1,2,{"y":null}]},"from":"spoof","z":"\u0000","n":-0.0e-0}`,
			wantFrame{typ: protocol.TypeLeave}},
		{"unknown field with weird key", `{"":1,"type":"leave","\u0000":2,"ty":3,"typex":4}`,
			wantFrame{typ: protocol.TypeLeave}},
		{"join fields on a relay are kept but harmless", `{"type":"offer","target":"p","data":1,"room":"r","name":"n","meta":{},"v":1}`,
			wantFrame{typ: protocol.TypeOffer, target: "p", data: "1", room: "r", name: "n", meta: "{}", v: 1}},

		// Duplicate keys: the last one wins, as in encoding/json.
		{"duplicate type", `{"type":"offer","type":"leave"}`, wantFrame{typ: protocol.TypeLeave}},
		{"duplicate data", `{"type":"message","target":"p","data":1,"data":[2]}`,
			wantFrame{typ: protocol.TypeMessage, target: "p", data: "[2]"}},

		// Whitespace.
		{"whitespace everywhere", " \t\r\n{ \"type\" :\t\"join\" ,\n\"room\"\r:\"r\" , \"v\" : 1 } \n\t\r ",
			wantFrame{typ: protocol.TypeJoin, room: "r", v: 1}},
		{"newline-delimited", "{\"type\":\"leave\"}\n", wantFrame{typ: protocol.TypeLeave}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if !utf8.ValidString(tt.in) {
				t.Fatalf("test input is not valid UTF-8")
			}
			var f protocol.Frame
			if err := protocol.DecodeFrame([]byte(tt.in), &f); err != nil {
				t.Fatalf("DecodeFrame(%s) = %v, want nil", tt.in, err)
			}
			checkFrame(t, &f, tt.want)
		})
	}
}

func TestDecodeFrameEmptyNameIsPresent(t *testing.T) {
	var f protocol.Frame
	if err := protocol.DecodeFrame([]byte(`{"type":"join","room":"r","name":""}`), &f); err != nil {
		t.Fatal(err)
	}
	if f.Name == nil || len(f.Name) != 0 {
		t.Errorf("Name = %#v, want empty non-nil", f.Name)
	}
}

func TestDecodeFrameErrors(t *testing.T) {
	deep := func(n int) string { // n nested arrays inside data
		return `{"type":"message","target":"p","data":` + strings.Repeat("[", n) + strings.Repeat("]", n) + `}`
	}
	long := strings.Repeat("x", protocol.MaxIDLen-1) // as a JSON string: MaxIDLen+1 bytes
	tests := []struct {
		name string
		in   string
		code protocol.Code
	}{
		// bad-json: not an object.
		{"empty", ``, protocol.CodeBadJSON},
		{"whitespace only", " \n\t", protocol.CodeBadJSON},
		{"array", `[]`, protocol.CodeBadJSON},
		{"array of frames", `[{"type":"leave"}]`, protocol.CodeBadJSON},
		{"string", `"join"`, protocol.CodeBadJSON},
		{"number", `1`, protocol.CodeBadJSON},
		{"null", `null`, protocol.CodeBadJSON},
		{"true", `true`, protocol.CodeBadJSON},
		{"byte order mark", "\uFEFF{\"type\":\"leave\"}", protocol.CodeBadJSON},

		// bad-json: syntax errors and truncation.
		{"lone brace", `{`, protocol.CodeBadJSON},
		{"unclosed object", `{"type":"leave"`, protocol.CodeBadJSON},
		{"unclosed after comma", `{"type":"leave",`, protocol.CodeBadJSON},
		{"trailing comma", `{"type":"leave",}`, protocol.CodeBadJSON},
		{"leading comma", `{,"type":"leave"}`, protocol.CodeBadJSON},
		{"double comma", `{"type":"leave",,"id":1}`, protocol.CodeBadJSON},
		{"missing colon", `{"type" "leave"}`, protocol.CodeBadJSON},
		{"missing value", `{"type":}`, protocol.CodeBadJSON},
		{"missing comma", `{"type":"leave" "id":1}`, protocol.CodeBadJSON},
		{"unquoted key", `{type:"leave"}`, protocol.CodeBadJSON},
		{"single quotes", `{'type':'leave'}`, protocol.CodeBadJSON},
		{"numeric key", `{1:"leave"}`, protocol.CodeBadJSON},
		{"unterminated string", `{"type":"leave}`, protocol.CodeBadJSON},
		{"unterminated key", `{"type`, protocol.CodeBadJSON},
		{"bad escape", `{"type":"leave","x":"\x"}`, protocol.CodeBadJSON},
		{"short unicode escape", `{"type":"leave","x":"\u12"}`, protocol.CodeBadJSON},
		{"non-hex unicode escape", `{"type":"leave","x":"\u12g4"}`, protocol.CodeBadJSON},
		{"escape at end", `{"type":"leave","x":"\`, protocol.CodeBadJSON},
		{"raw newline in string", "{\"type\":\"leave\",\"x\":\"a\nb\"}", protocol.CodeBadJSON},
		{"raw NUL in string", "{\"type\":\"leave\",\"x\":\"a\x00b\"}", protocol.CodeBadJSON},
		{"raw tab in key", "{\"ty\tpe\":\"leave\"}", protocol.CodeBadJSON},
		{"leading zero", `{"type":"leave","x":01}`, protocol.CodeBadJSON},
		{"trailing dot", `{"type":"leave","x":1.}`, protocol.CodeBadJSON},
		{"leading dot", `{"type":"leave","x":.5}`, protocol.CodeBadJSON},
		{"lone minus", `{"type":"leave","x":-}`, protocol.CodeBadJSON},
		{"plus sign", `{"type":"leave","x":+1}`, protocol.CodeBadJSON},
		{"empty exponent", `{"type":"leave","x":1e}`, protocol.CodeBadJSON},
		{"signed empty exponent", `{"type":"leave","x":1e+}`, protocol.CodeBadJSON},
		{"hex number", `{"type":"leave","x":0x10}`, protocol.CodeBadJSON},
		{"NaN", `{"type":"leave","x":NaN}`, protocol.CodeBadJSON},
		{"Infinity", `{"type":"leave","x":-Infinity}`, protocol.CodeBadJSON},
		{"truncated true", `{"type":"leave","x":tru}`, protocol.CodeBadJSON},
		{"truncated null at end", `{"type":"leave","x":nul`, protocol.CodeBadJSON},
		{"capitalised literal", `{"type":"leave","x":True}`, protocol.CodeBadJSON},
		{"nested trailing comma", `{"type":"message","target":"p","data":[1,]}`, protocol.CodeBadJSON},
		{"nested missing colon", `{"type":"message","target":"p","data":{"a" 1}}`, protocol.CodeBadJSON},
		{"nested non-string key", `{"type":"message","target":"p","data":{a:1}}`, protocol.CodeBadJSON},
		{"mismatched brackets", `{"type":"message","target":"p","data":[1}}`, protocol.CodeBadJSON},
		{"truncated data", `{"type":"offer","target":"p","data":{"sdp":"v=0`, protocol.CodeBadJSON},
		{"truncated after data", `{"type":"offer","target":"p","data":{"sdp":"v=0"}`, protocol.CodeBadJSON},
		{"deep nesting", deep(100), protocol.CodeBadJSON},
		{"very deep nesting", deep(100000), protocol.CodeBadJSON},
		{"deep unclosed nesting", `{"type":"leave","x":` + strings.Repeat(`{"a":`, 100000), protocol.CodeBadJSON},

		// bad-json: trailing data.
		{"trailing garbage", `{"type":"leave"}x`, protocol.CodeBadJSON},
		{"two objects", `{"type":"leave"}{"type":"leave"}`, protocol.CodeBadJSON},
		{"trailing number after space", `{"type":"leave"} 1`, protocol.CodeBadJSON},
		{"trailing comma after object", `{"type":"leave"},`, protocol.CodeBadJSON},
		{"trailing NUL", "{\"type\":\"leave\"}\x00", protocol.CodeBadJSON},
		{"extra closing brace", `{"type":"leave"}}`, protocol.CodeBadJSON},

		// bad-json wins over every semantic error.
		{"bad field then syntax error", `{"type":5,"x":}`, protocol.CodeBadJSON},
		{"bad field then trailing data", `{"type":5}x`, protocol.CodeBadJSON},
		{"unknown type then trailing data", `{"type":"nope"} {}`, protocol.CodeBadJSON},

		// bad-field: wrong JSON types.
		{"type number", `{"type":5}`, protocol.CodeBadField},
		{"type null", `{"type":null}`, protocol.CodeBadField},
		{"type array", `{"type":["join"]}`, protocol.CodeBadField},
		{"id true", `{"type":"leave","id":true}`, protocol.CodeBadField},
		{"id null", `{"type":"leave","id":null}`, protocol.CodeBadField},
		{"id object", `{"type":"leave","id":{}}`, protocol.CodeBadField},
		{"id array", `{"type":"leave","id":[1]}`, protocol.CodeBadField},
		{"id string too long", `{"type":"leave","id":"` + long + `"}`, protocol.CodeBadField},
		{"id number too long", `{"type":"leave","id":` + strings.Repeat("9", protocol.MaxIDLen+1) + `}`, protocol.CodeBadField},
		{"target number", `{"type":"offer","target":1,"data":{}}`, protocol.CodeBadField},
		{"target null", `{"type":"offer","target":null,"data":{}}`, protocol.CodeBadField},
		{"target object", `{"type":"offer","target":{"id":"p"},"data":{}}`, protocol.CodeBadField},
		{"room number", `{"type":"join","room":42}`, protocol.CodeBadField},
		{"room null", `{"type":"join","room":null}`, protocol.CodeBadField},
		{"name array", `{"type":"join","room":"r","name":["Ada"]}`, protocol.CodeBadField},
		{"name number", `{"type":"join","room":"r","name":1}`, protocol.CodeBadField},
		{"meta array", `{"type":"join","room":"r","meta":[]}`, protocol.CodeBadField},
		{"meta string", `{"type":"join","room":"r","meta":"{}"}`, protocol.CodeBadField},
		{"meta null", `{"type":"join","room":"r","meta":null}`, protocol.CodeBadField},
		{"broadcast string", `{"type":"message","broadcast":"true","data":1}`, protocol.CodeBadField},
		{"broadcast number", `{"type":"message","broadcast":1,"data":1}`, protocol.CodeBadField},
		{"broadcast null", `{"type":"message","broadcast":null,"data":1}`, protocol.CodeBadField},
		{"v negative", `{"type":"join","room":"r","v":-1}`, protocol.CodeBadField},
		{"v fraction", `{"type":"join","room":"r","v":1.0}`, protocol.CodeBadField},
		{"v exponent", `{"type":"join","room":"r","v":1e0}`, protocol.CodeBadField},
		{"v string", `{"type":"join","room":"r","v":"1"}`, protocol.CodeBadField},
		{"v null", `{"type":"join","room":"r","v":null}`, protocol.CodeBadField},
		{"v too big", `{"type":"join","room":"r","v":1000000}`, protocol.CodeBadField},
		{"v huge", `{"type":"join","room":"r","v":99999999999999999999999}`, protocol.CodeBadField},

		// bad-field: broadcast rules.
		{"broadcast offer", `{"type":"offer","broadcast":true,"data":{}}`, protocol.CodeBadField},
		{"broadcast answer", `{"type":"answer","broadcast":true,"data":{}}`, protocol.CodeBadField},
		{"broadcast ice-candidate", `{"type":"ice-candidate","broadcast":true,"data":{}}`, protocol.CodeBadField},
		{"broadcast with target", `{"type":"message","broadcast":true,"target":"p","data":{}}`, protocol.CodeBadField},

		// bad-field wins over missing and unknown type.
		{"bad field without type", `{"id":true}`, protocol.CodeBadField},
		{"bad field with unknown type", `{"type":"nope","target":1}`, protocol.CodeBadField},
		{"bad field on join without room", `{"type":"join","name":1}`, protocol.CodeBadField},
		{"first duplicate bad", `{"type":"offer","target":1,"target":"p","data":{}}`, protocol.CodeBadField},

		// missing-field.
		{"empty object", `{}`, protocol.CodeMissingField},
		{"empty object with space", `{ }`, protocol.CodeMissingField},
		{"no type", `{"id":1,"room":"r"}`, protocol.CodeMissingField},
		{"key case matters", `{"Type":"leave"}`, protocol.CodeMissingField},
		{"offer without data", `{"type":"offer","target":"p"}`, protocol.CodeMissingField},
		{"answer without target", `{"type":"answer","data":{}}`, protocol.CodeMissingField},
		{"ice-candidate without target", `{"type":"ice-candidate","data":{}}`, protocol.CodeMissingField},
		{"message without target", `{"type":"message","data":{}}`, protocol.CodeMissingField},
		{"message broadcast false without target", `{"type":"message","broadcast":false,"data":{}}`, protocol.CodeMissingField},
		{"message broadcast without data", `{"type":"message","broadcast":true}`, protocol.CodeMissingField},

		// unknown-type.
		{"unknown type", `{"type":"bogus"}`, protocol.CodeUnknownType},
		{"empty type", `{"type":""}`, protocol.CodeUnknownType},
		{"type case matters", `{"type":"JOIN","room":"r"}`, protocol.CodeUnknownType},
		{"type with space", `{"type":" join","room":"r"}`, protocol.CodeUnknownType},
		{"type named unknown", `{"type":"unknown"}`, protocol.CodeUnknownType},
		{"server type welcome", `{"type":"welcome"}`, protocol.CodeUnknownType},
		{"server type peer-joined", `{"type":"peer-joined"}`, protocol.CodeUnknownType},
		{"server type peer-left", `{"type":"peer-left"}`, protocol.CodeUnknownType},
		{"server type ack", `{"type":"ack"}`, protocol.CodeUnknownType},
		{"server type error", `{"type":"error"}`, protocol.CodeUnknownType},
		{"seed's candidate name", `{"type":"candidate","target":"p","data":{}}`, protocol.CodeUnknownType},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var f protocol.Frame
			err := protocol.DecodeFrame([]byte(tt.in), &f)
			if err == nil {
				t.Fatalf("DecodeFrame(%.80q) = nil, want %v", tt.in, tt.code)
			}
			if err.Code != tt.code {
				t.Fatalf("DecodeFrame(%.80q) = %v, want code %v", tt.in, err, tt.code)
			}
			if err.Message == "" {
				t.Errorf("error has no message")
			}
			if !utf8.ValidString(err.Message) {
				t.Errorf("error message is not valid UTF-8: %q", err.Message)
			}
			if !strings.HasPrefix(err.Error(), tt.code.String()+": ") {
				t.Errorf("Error() = %q, want prefix %q", err.Error(), tt.code.String()+": ")
			}
		})
	}
}

func TestDecodeFrameNestingLimit(t *testing.T) {
	// 64 levels in all (the frame object plus 63 in data) must be accepted.
	for _, open := range []string{"[", `{"a":`} {
		closer := map[string]string{"[": "]", `{"a":`: "}"}[open]
		in := `{"type":"message","target":"p","data":` + strings.Repeat(open, 63) + "1" + strings.Repeat(closer, 63) + `}`
		var f protocol.Frame
		if err := protocol.DecodeFrame([]byte(in), &f); err != nil {
			t.Errorf("64 levels of %q: %v, want nil", open, err)
		}
		in = `{"type":"message","target":"p","data":` + strings.Repeat(open, 200) + "1" + strings.Repeat(closer, 200) + `}`
		if err := protocol.DecodeFrame([]byte(in), &f); err == nil || err.Code != protocol.CodeBadJSON {
			t.Errorf("201 levels of %q: %v, want bad-json", open, err)
		}
	}
}

func TestDecodeFrameIDEcho(t *testing.T) {
	tests := []struct {
		name string
		in   string
		code protocol.Code
		id   string // "" means nil
	}{
		{"bad type after id", `{"id":"r1","type":5}`, protocol.CodeBadField, `"r1"`},
		{"bad field before id", `{"room":1,"id":9,"type":"join"}`, protocol.CodeBadField, "9"},
		{"missing type", `{"id":7}`, protocol.CodeMissingField, "7"},
		{"missing target", `{"id":7,"type":"offer","data":{}}`, protocol.CodeMissingField, "7"},
		{"missing target", `{"type":"offer","data":{},"id":"o1"}`, protocol.CodeMissingField, `"o1"`},
		{"unknown type", `{"id":-1,"type":"nope"}`, protocol.CodeUnknownType, "-1"},
		{"broadcast offer", `{"id":3,"type":"offer","broadcast":true,"data":{}}`, protocol.CodeBadField, "3"},
		{"syntax error after id", `{"id":7,"type":"join",`, protocol.CodeBadJSON, "7"},
		{"trailing data after id", `{"type":"join","id":8,"room":"r"}x`, protocol.CodeBadJSON, "8"},
		{"syntax error before id", `{"type":"join",,"id":7}`, protocol.CodeBadJSON, ""},
		{"bad id is not echoed", `{"id":true,"type":"leave"}`, protocol.CodeBadField, ""},
		{"overlong id is not echoed", `{"id":"` + strings.Repeat("y", 100) + `","type":"leave"}`, protocol.CodeBadField, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var f protocol.Frame
			err := protocol.DecodeFrame([]byte(tt.in), &f)
			if err == nil || err.Code != tt.code {
				t.Fatalf("DecodeFrame(%s) = %v, want code %v", tt.in, err, tt.code)
			}
			if got, want := frameString(f.ID), optString(tt.id); got != want {
				t.Errorf("ID = %s, want %s", got, want)
			}
		})
	}
}

func TestDecodeFrameResetsFrame(t *testing.T) {
	f := protocol.Frame{
		Type: protocol.TypeOffer, ID: []byte("1"), Target: []byte("t"), Data: []byte("{}"), Broadcast: true,
		Room: []byte("r"), Name: []byte("n"), Meta: []byte("{}"), V: 1,
	}
	if err := protocol.DecodeFrame([]byte(`{"type":"leave"}`), &f); err != nil {
		t.Fatal(err)
	}
	checkFrame(t, &f, wantFrame{typ: protocol.TypeLeave})

	f = protocol.Frame{ID: []byte("1"), Target: []byte("t")}
	if err := protocol.DecodeFrame([]byte(`[`), &f); err == nil {
		t.Fatal("want an error")
	}
	if f.ID != nil || f.Target != nil {
		t.Errorf("stale fields after a failed decode: %+v", f)
	}
}

// TestDecodeFrameAliasing checks the documented memory contract: unescaped values alias the
// input buffer (no copies on the hot path), escaped strings are copied, and the input is never
// modified.
func TestDecodeFrameAliasing(t *testing.T) {
	in := []byte(`{"type":"offer","id":"i","target":"tt","data":{"k":"v"}}`)
	orig := bytes.Clone(in)
	var f protocol.Frame
	if err := protocol.DecodeFrame(in, &f); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(in, orig) {
		t.Fatalf("DecodeFrame modified its input")
	}
	for _, c := range []struct {
		name string
		b    []byte
	}{{"Data", f.Data}, {"Target", f.Target}, {"ID", f.ID}} {
		if !within(in, c.b) {
			t.Errorf("%s does not alias the input", c.name)
		}
	}

	in = []byte(`{"type":"join","room":"r\u0031","name":"a\nb"}`)
	orig = bytes.Clone(in)
	if err := protocol.DecodeFrame(in, &f); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(in, orig) {
		t.Fatalf("DecodeFrame modified its input while unescaping")
	}
	if string(f.Room) != "r1" || string(f.Name) != "a\nb" {
		t.Fatalf("Room, Name = %q, %q", f.Room, f.Name)
	}
}

// within reports whether sub lies inside the memory of b.
func within(b, sub []byte) bool {
	if len(sub) == 0 || len(b) == 0 {
		return false
	}
	for i := 0; i+len(sub) <= len(b); i++ {
		if &b[i] == &sub[0] {
			return true
		}
	}
	return false
}

// TestDecodeFrameUnknownTypeMessage checks that the echoed type in an unknown-type error is
// clipped and stays valid UTF-8 when the cut falls inside a rune.
func TestDecodeFrameUnknownTypeMessage(t *testing.T) {
	typ := "a" + strings.Repeat("é", 40) // 81 bytes: a cut at 32 splits an é
	var f protocol.Frame
	err := protocol.DecodeFrame([]byte(`{"type":"`+typ+`"}`), &f)
	if err == nil || err.Code != protocol.CodeUnknownType {
		t.Fatalf("err = %v, want unknown-type", err)
	}
	if !utf8.ValidString(err.Message) {
		t.Errorf("message is not valid UTF-8: %q", err.Message)
	}
	if !strings.Contains(err.Message, "a"+strings.Repeat("é", 15)) || strings.Contains(err.Message, strings.Repeat("é", 16)) {
		t.Errorf("message %q: want the type clipped to 31 bytes", err.Message)
	}
}

// TestDecodeFrameEscapedKeys checks that object keys are compared after unescaping, as JSON
// requires ("t\u0079pe" and "type" are the same member name; encoding/json and browsers agree).
func TestDecodeFrameEscapedKeys(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want wantFrame
	}{
		{"escaped type key", `{"t\u0079pe":"leave"}`, wantFrame{typ: protocol.TypeLeave}},
		{"escaped key overrides earlier type", `{"type":"leave","t\u0079pe":"join","room":"r"}`,
			wantFrame{typ: protocol.TypeJoin, room: "r"}},
		{"escaped target key", `{"type":"offer","t\u0061rget":"p","data":1}`,
			wantFrame{typ: protocol.TypeOffer, target: "p", data: "1"}},
		{"escaped data key", `{"type":"offer","target":"p","d\u0061ta":1}`,
			wantFrame{typ: protocol.TypeOffer, target: "p", data: "1"}},
		{"escaped room key", `{"type":"join","\u0072oom":"r"}`, wantFrame{typ: protocol.TypeJoin, room: "r"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var f protocol.Frame
			if err := protocol.DecodeFrame([]byte(tt.in), &f); err != nil {
				t.Fatalf("DecodeFrame(%s) = %v, want nil", tt.in, err)
			}
			checkFrame(t, &f, tt.want)
		})
	}
}
