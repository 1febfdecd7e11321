package sioserver

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

func TestDecodeSIO(t *testing.T) {
	for _, tt := range []struct {
		in          string
		typ         byte
		nsp         string
		ack         int64
		attachments int
		data        string
		bad         bool
	}{
		{in: "0", typ: sioConnect, nsp: "/", ack: -1},
		{in: `0{"token":"x"}`, typ: sioConnect, nsp: "/", ack: -1, data: `{"token":"x"}`},
		{in: "0/admin,", typ: sioConnect, nsp: "/admin", ack: -1},
		{in: "0/admin", typ: sioConnect, nsp: "/admin", ack: -1},
		{in: "1", typ: sioDisconnect, nsp: "/", ack: -1},
		{in: `2["offer",{"target":"x"}]`, typ: sioEvent, nsp: "/", ack: -1, data: `["offer",{"target":"x"}]`},
		{in: `212["offer",{}]`, typ: sioEvent, nsp: "/", ack: 12, data: `["offer",{}]`},
		{in: `2/x,5["a"]`, typ: sioEvent, nsp: "/x", ack: 5, data: `["a"]`},
		{in: `2[ "a" , 1 ]`, typ: sioEvent, nsp: "/", ack: -1, data: `[ "a" , 1 ]`},
		{in: `31[]`, typ: sioAck, nsp: "/", ack: 1, data: `[]`},
		{in: `4{"message":"no"}`, typ: sioConnectError, nsp: "/", ack: -1, data: `{"message":"no"}`},
		{in: `51-["a",{"_placeholder":true,"num":0}]`, typ: sioBinaryEvent, nsp: "/", ack: -1, attachments: 1, data: `["a",{"_placeholder":true,"num":0}]`},
		{in: `62-/x,7[]`, typ: sioBinaryAck, nsp: "/x", ack: 7, attachments: 2, data: `[]`},
		{in: "", bad: true},
		{in: "7", bad: true},
		{in: "x", bad: true},
		{in: "0[]", bad: true},
		{in: "0x", bad: true},
		{in: "1{}", bad: true},
		{in: "05", bad: true},
		{in: "2", bad: true},
		{in: "2{}", bad: true},
		{in: "2[]", bad: true},
		{in: "2[1]", bad: true},
		{in: `2["a"`, bad: true},
		{in: `2["a"]]`, bad: true},
		{in: `2["a",]`, bad: true},
		{in: `2["a",01]`, bad: true},
		{in: `2["a\x01"]`, bad: true},
		{in: `2["\q"]`, bad: true},
		{in: `2["a",tru]`, bad: true},
		{in: "2" + strings.Repeat("1", 16) + `["a"]`, bad: true},
		{in: "3[]", bad: true},
		{in: "4", bad: true},
		{in: `5["a"]`, bad: true},
		{in: `517-["a"]`, bad: true},
		{in: `5-["a"]`, bad: true},
		{in: "2" + strings.Repeat("[", 100) + strings.Repeat("]", 100), bad: true},
		{in: "0/" + strings.Repeat("n", 200) + ",", bad: true},
	} {
		p, err := decodeSIO([]byte(tt.in))
		if tt.bad {
			if err == nil && p.typ == sioEvent { // an event's JSON is checked as it is split
				if _, ok := splitArgs(p.data, nil); !ok {
					continue
				}
			}
			if !errors.Is(err, ErrBadPacket) {
				t.Errorf("decodeSIO(%q) = %+v, %v; want ErrBadPacket", tt.in, p, err)
			}
			continue
		}
		if err != nil || p.typ != tt.typ || string(p.nsp) != tt.nsp || p.ack != tt.ack || p.attachments != tt.attachments || string(p.data) != tt.data {
			t.Errorf("decodeSIO(%q) = {%c %q %d %d %q}, %v; want {%c %q %d %d %q}", tt.in,
				p.typ, p.nsp, p.ack, p.attachments, p.data, err, tt.typ, tt.nsp, tt.ack, tt.attachments, tt.data)
		}
	}
}

func TestDecodePayload(t *testing.T) {
	for _, tt := range []struct {
		in   string
		want []string // type + data, "B:" prefix for binary
		bad  bool
	}{
		{in: "2", want: []string{"2"}},
		{in: "40\x1e42[\"a\"]\x1e3", want: []string{"40", `42["a"]`, "3"}},
		{in: "4hello\x1ebAQID", want: []string{"4hello", "B:\x01\x02\x03"}},
		{in: "", bad: true},
		{in: "\x1e", bad: true},
		{in: "40\x1e", bad: true},
		{in: "40\x1e\x1e3", bad: true},
		{in: "8", bad: true},
		{in: "b!!", bad: true},
	} {
		var got []string
		err := decodePayload([]byte(tt.in), func(p eioPacket) error {
			if p.binary {
				got = append(got, "B:"+string(p.data))
			} else {
				got = append(got, string(p.typ)+string(p.data))
			}
			return nil
		})
		if tt.bad {
			if err == nil {
				t.Errorf("decodePayload(%q) = %q, nil; want an error", tt.in, got)
			}
			continue
		}
		if err != nil || strings.Join(got, "|") != strings.Join(tt.want, "|") {
			t.Errorf("decodePayload(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
		}
	}
}

func TestSplitArgsAndField(t *testing.T) {
	args, ok := splitArgs([]byte(` [ "offer" , {"target":"a\"b","x":[1,{"y":null}],"target":"t2"} , 3.5e-1 ] `), nil)
	if !ok || len(args) != 3 || string(args[0]) != `"offer"` || string(args[2]) != "3.5e-1" {
		t.Fatalf("splitArgs = %q, %v", args, ok)
	}
	if v := field(args[1], "target"); string(v) != `"t2"` {
		t.Errorf("field(target) = %s, want the last occurrence", v)
	}
	if v := field(args[1], "x"); string(v) != `[1,{"y":null}]` {
		t.Errorf("field(x) = %s", v)
	}
	if v := field(args[1], "y"); v != nil {
		t.Errorf("field(y) = %s, want nil (not top level)", v)
	}
	if _, ok := plainString([]byte(`"a\"b"`)); ok {
		t.Error("plainString accepted an escaped string")
	}
	for _, bad := range []string{``, `[`, `["a",]`, `[1 2]`, `{}`, `["a"] x`} {
		if _, ok := splitArgs([]byte(bad), nil); ok {
			t.Errorf("splitArgs(%q) ok", bad)
		}
	}
}

func TestAppendRelayData(t *testing.T) {
	for _, tt := range []struct{ data, want string }{
		{`{"sdp":"x"}`, `{"sdp":"x","from":"P"}`},
		{`{}`, `{"from":"P"}`},
		{`{ }`, `{ "from":"P"}`},
		{`{"from":"forged"}`, `{"from":"forged","from":"P"}`},
		{`"hi"`, `"hi",{"from":"P"}`},
		{`[1]`, `[1],{"from":"P"}`},
	} {
		got := string(appendRelayData(nil, []byte(tt.data), "P"))
		if got != tt.want {
			t.Errorf("appendRelayData(%s) = %s, want %s", tt.data, got, tt.want)
		}
		// What a client sees: JSON.parse keeps the last "from".
		var args []map[string]any
		if json.Unmarshal([]byte("["+got+"]"), &args) == nil && args[len(args)-1]["from"] != "P" {
			t.Errorf("%s: from is %v for a JSON parser", got, args[len(args)-1]["from"])
		}
	}
}
