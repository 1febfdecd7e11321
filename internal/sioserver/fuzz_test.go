package sioserver

import (
	"encoding/json"
	"testing"
)

// FuzzDecodePayload: the long-polling payload decoder never panics, and what it yields are
// well-formed packets.
func FuzzDecodePayload(f *testing.F) {
	for _, s := range []string{"2", "40", "40\x1e42[\"offer\",{\"target\":\"x\"}]\x1e3", "bAQID", "4\x1e", "6\x1e\x1e", "b!"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		_ = decodePayload(b, func(p eioPacket) error {
			if !p.binary && (p.typ < eioOpen || p.typ > eioNoop) {
				t.Fatalf("packet type %q", p.typ)
			}
			if p.typ == eioMessage && !p.binary {
				_, _ = decodeSIO(p.data)
			}
			return nil
		})
	})
}

// FuzzDecodeSIO: the Socket.IO packet decoder never panics, and the JSON it accepts is valid
// JSON of the shape the type allows; event arguments split and relay data re-encode to valid
// JSON.
func FuzzDecodeSIO(f *testing.F) {
	for _, s := range []string{
		"0", `0{"token":"x"}`, `0{"token":"a.b.c","room":"r"}`, `0{"token":5}`, `0{"token":null,"room":["r"]}`,
		`0"x"`, `0["x"]`, "0null", `0/admin,{"token":"x"}`, "0/admin,", "1", `2["offer",{"target":"x","sdp":"v=0"}]`, `212["join",{"room":"r"}]`,
		`2/x,5["a"]`, `31[]`, `4{"message":"no"}`, `51-["a",{"_placeholder":true,"num":0}]`, `2["a",-0.5e+3,true,null,"\u00e9\n"]`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := decodeSIO(b)
		if err != nil {
			return
		}
		if p.data == nil {
			return
		}
		args, ok := splitArgs(p.data, nil)
		if ok != json.Valid(p.data) && p.data[0] == '[' {
			t.Fatalf("splitArgs(%q) ok=%v, json.Valid says otherwise", p.data, ok)
		}
		if p.typ != sioEvent {
			if !json.Valid(p.data) {
				t.Fatalf("accepted invalid JSON %q", p.data)
			}
			return
		}
		if !ok {
			return // an event whose arguments are not valid JSON: refused by the session
		}
		if len(args) == 0 {
			t.Fatalf("event %q has no arguments", p.data)
		}
		for _, a := range args {
			out := appendRelayData([]byte("["), a, "P")
			out = append(out, ']')
			if !json.Valid(out) {
				t.Fatalf("relay of %q is invalid JSON %q", a, out)
			}
			_ = field(a, "target")
		}
	})
}
