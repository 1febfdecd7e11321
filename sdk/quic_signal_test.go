package sdk

import (
	"errors"
	"strings"
	"testing"
)

func TestDecodeQUICMsg(t *testing.T) {
	fp := strings.Repeat("0f", 32)
	good := `{"quic":"hello","v":1,"ufrag":"abcd","pwd":"` + strings.Repeat("p", 22) + `","fp":"` + fp + `"}`
	for _, tc := range []struct {
		in      string
		ours    bool
		wantErr bool
	}{
		{good, true, false},
		{`{"quic":"cand","cand":"candidate:1 1 udp 1 127.0.0.1 5000 typ host"}`, true, false},
		{`{"quic":"eoc"}`, true, false},
		{`{"switchboard":"something else"}`, false, false},
		{`not json`, true, true},
		{`{"quic":"hello","v":2,"ufrag":"abcd","pwd":"` + strings.Repeat("p", 22) + `","fp":"` + fp + `"}`, true, true},
		{`{"quic":"hello","v":1,"ufrag":"ab","pwd":"` + strings.Repeat("p", 22) + `","fp":"` + fp + `"}`, true, true},
		{`{"quic":"hello","v":1,"ufrag":"abcd","pwd":"short","fp":"` + fp + `"}`, true, true},
		{`{"quic":"hello","v":1,"ufrag":"abcd","pwd":"` + strings.Repeat("p", 22) + `","fp":"xyz"}`, true, true},
		{`{"quic":"cand"}`, true, true},
		{`{"quic":"bye"}`, true, true},
		{`{"quic":"cand","cand":"` + strings.Repeat("c", maxQUICMsg) + `"}`, true, true},
	} {
		_, ours, err := decodeQUICMsg([]byte(tc.in))
		if ours != tc.ours || (err != nil) != tc.wantErr {
			t.Errorf("%.40q: ours %v, err %v", tc.in, ours, err)
		}
		if err != nil && !errors.Is(err, ErrQUICSignal) {
			t.Errorf("%.40q: %v does not wrap ErrQUICSignal", tc.in, err)
		}
	}
}

// TestQUICInboxBounded: a remote flooding the control channel fills the inbox up to its bound,
// then the inbox holds an error and nothing more.
func TestQUICInboxBounded(t *testing.T) {
	in := newQUICInbox()
	for range 10 * maxQUICInbox {
		in.put([]byte(`{"quic":"eoc"}`))
	}
	msgs, err := in.take()
	if len(msgs) != maxQUICInbox || !errors.Is(err, ErrQUICSignal) {
		t.Fatalf("%d messages, err %v", len(msgs), err)
	}
	in.put([]byte(`{"quic":"eoc"}`))
	if msgs, _ := in.take(); len(msgs) != 0 {
		t.Fatalf("a message queued after the overflow")
	}
}

func FuzzDecodeQUICMsg(f *testing.F) {
	f.Add([]byte(`{"quic":"hello","v":1,"ufrag":"abcd","pwd":"pppppppppppppppppppppp","fp":"` + strings.Repeat("0f", 32) + `"}`))
	f.Add([]byte(`{"quic":"cand","cand":"candidate:1 1 udp 1 127.0.0.1 5000 typ host"}`))
	f.Add([]byte(`{"quic":"eoc"}`))
	f.Add([]byte(`{}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		m, ours, err := decodeQUICMsg(b)
		if err != nil {
			if !ours || !errors.Is(err, ErrQUICSignal) {
				t.Fatalf("error %v with ours %v", err, ours)
			}
			return
		}
		if !ours {
			return
		}
		switch m.Quic {
		case quicHello:
			if len(m.FP) != 64 || len(m.Ufrag) < 4 || len(m.Pwd) < 22 {
				t.Fatalf("accepted a bad hello %+v", m)
			}
		case quicCand:
			if m.Cand == "" {
				t.Fatal("accepted an empty candidate")
			}
		case quicEOC:
		default:
			t.Fatalf("accepted kind %q", m.Quic)
		}
	})
}
