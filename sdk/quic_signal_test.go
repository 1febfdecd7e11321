package sdk

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
)

const testHello = `{"switchboard":"quic","quic":"hello","v":1,"ufrag":"abcd","pwd":"pppppppppppppppppppppp","fp":"0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f"}`

func TestDecodeQUICMsg(t *testing.T) {
	fp := strings.Repeat("0f", 32)
	pwd := strings.Repeat("p", 22)
	for _, tc := range []struct {
		in      string
		ours    bool
		wantErr bool
	}{
		{testHello, true, false},
		{`{"switchboard":"quic","quic":"cand","cand":"candidate:1 1 udp 1 127.0.0.1 5000 typ host"}`, true, false},
		{`{"switchboard":"quic","quic":"eoc"}`, true, false},
		{`{"switchboard":"negotiate"}`, false, false},
		{`{"quic":"hello"}`, false, false}, // no switchboard field: an application's message
		{`not json`, true, true},
		{`{"switchboard":"quic","quic":"hello","v":"1"}`, true, true},
		{`{"switchboard":"quic","quic":"hello","v":2,"ufrag":"abcd","pwd":"` + pwd + `","fp":"` + fp + `"}`, true, true},
		{`{"switchboard":"quic","quic":"hello","v":1,"ufrag":"ab","pwd":"` + pwd + `","fp":"` + fp + `"}`, true, true},
		{`{"switchboard":"quic","quic":"hello","v":1,"ufrag":"abcd","pwd":"short","fp":"` + fp + `"}`, true, true},
		{`{"switchboard":"quic","quic":"hello","v":1,"ufrag":"abcd","pwd":"` + pwd + `","fp":"xyz"}`, true, true},
		{`{"switchboard":"quic","quic":"cand"}`, true, true},
		{`{"switchboard":"quic","quic":"bye"}`, true, true},
		{`{"switchboard":"quic","quic":"cand","cand":"` + strings.Repeat("c", maxQUICMsg) + `"}`, true, true},
	} {
		_, ours, err := decodeQUICMsg([]byte(tc.in))
		if ours != tc.ours || (err != nil) != tc.wantErr {
			t.Errorf("%.60q: ours %v, err %v", tc.in, ours, err)
		}
		if err != nil && !errors.Is(err, ErrQUICSignal) {
			t.Errorf("%.60q: %v does not wrap ErrQUICSignal", tc.in, err)
		}
		if isQUICMsg([]byte(tc.in)) != (tc.ours && tc.in != "not json") {
			t.Errorf("%.60q: isQUICMsg %v", tc.in, !tc.ours)
		}
	}
}

// TestQUICInboxBounded: a remote flooding the exchange fills the inbox up to its bound, then
// the inbox holds an error (reported once) and nothing more.
func TestQUICInboxBounded(t *testing.T) {
	in := newQUICInbox()
	if err := in.put([]byte(testHello)); err != nil {
		t.Fatal(err)
	}
	var errs int
	for range 10 * maxQUICInbox {
		if err := in.put([]byte(`{"switchboard":"quic","quic":"cand","cand":"x"}`)); err != nil {
			errs++
		}
	}
	msgs, err := in.take()
	if len(msgs) != 0 || !errors.Is(err, ErrQUICSignal) || errs != 1 {
		t.Fatalf("%d messages kept, %d errors reported, err %v", len(msgs), errs, err)
	}
	if !strings.Contains(err.Error(), "more than 32 messages") {
		t.Fatalf("error %v", err)
	}
}

// TestQUICInboxOrder: the hello comes first and once; nothing follows end-of-candidates. A
// hello held before QUIC is called stays there, with its candidates, until taken.
func TestQUICInboxOrder(t *testing.T) {
	cand := `{"switchboard":"quic","quic":"cand","cand":"candidate:1 1 udp 1 127.0.0.1 5000 typ host"}`
	eoc := `{"switchboard":"quic","quic":"eoc"}`
	for _, tc := range []struct {
		name string
		msgs []string
		want string // in the error; "" for none
	}{
		{"in order", []string{testHello, cand, cand, eoc}, ""},
		{"candidate first", []string{cand, testHello}, "cand before hello"},
		{"two hellos", []string{testHello, cand, testHello}, "a second hello"},
		{"after eoc", []string{testHello, eoc, cand}, "cand after end-of-candidates"},
	} {
		in := newQUICInbox()
		for _, m := range tc.msgs {
			_ = in.put([]byte(m))
		}
		msgs, err := in.take()
		switch {
		case tc.want == "" && (err != nil || len(msgs) != len(tc.msgs) || msgs[0].Quic != quicHello):
			t.Errorf("%s: %d messages, err %v", tc.name, len(msgs), err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want) || !errors.Is(err, ErrQUICSignal)):
			t.Errorf("%s: err %v, want %q", tc.name, err, tc.want)
		}
	}
}

func FuzzDecodeQUICMsg(f *testing.F) {
	f.Add([]byte(testHello))
	f.Add([]byte(`{"switchboard":"quic","quic":"cand","cand":"candidate:1 1 udp 1 127.0.0.1 5000 typ host"}`))
	f.Add([]byte(`{"switchboard":"quic","quic":"eoc"}`))
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
		if m.Switchboard != quicSwitchboard || !isQUICMsg(b) {
			t.Fatalf("accepted %q as ours", b)
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
		in := newQUICInbox() // the inbox takes whatever the decoder does without panicking
		_ = in.put(b)
	})
}

// TestQUICRolesAgree: whatever the hellos say, the two sides of a pair take opposite ICE
// roles and exactly one dials; with exactly one newcomer, it controls ICE and the other
// dials.
func TestQUICRolesAgree(t *testing.T) {
	flags := []*bool{nil, newFlag(false), newFlag(true)} // nil: an older peer's hello
	for _, aPolite := range []bool{false, true} {
		for _, aNew := range flags {
			for _, bNew := range flags {
				if (aNew == nil) != (bNew == nil) {
					continue // a mixed pair: TestQUICRolesWithOlderPeer
				}
				ca, da := quicRoles(aPolite, aNew, bNew)
				cb, db := quicRoles(!aPolite, bNew, aNew)
				if ca == cb || da == db {
					t.Fatalf("a polite %v, new %v/%v: a controls %v dials %v, b controls %v dials %v", aPolite, aNew, bNew, ca, da, cb, db)
				}
				if aNew != nil && bNew != nil && *aNew != *bNew && (ca != *aNew || da == *aNew) {
					t.Fatalf("newcomer a=%v: a controls %v, dials %v; want the newcomer to control and the other to dial", *aNew, ca, da)
				}
			}
		}
	}
}

// TestQUICRolesWithOlderPeer: a peer of the version before the "new" flag sends hellos
// without it and takes the roles from politeness alone (the impolite side controls ICE and
// dials). Whichever side is the newcomer and whichever is polite, a current peer facing it
// must take the other roles: exactly one dials (else both wait to accept until their ctx
// ends, or both dial). ICE roles may clash: ICE resolves that itself (role conflict).
func TestQUICRolesWithOlderPeer(t *testing.T) {
	old, _, err := decodeQUICMsg([]byte(testHello)) // an older peer's hello: no "new"
	if err != nil {
		t.Fatal(err)
	}
	for _, polite := range []bool{false, true} {
		for _, newcomer := range []bool{false, true} {
			mine := quicMsg{Quic: quicHello, New: newFlag(newcomer)}
			b, err := json.Marshal(mine)
			if err != nil {
				t.Fatal(err)
			}
			if want := fmt.Sprintf(`"new":%v`, newcomer); !strings.Contains(string(b), want) {
				t.Fatalf("hello %s: want %s sent either way", b, want)
			}
			_, dials := quicRoles(polite, mine.New, old.New)
			oldDials := polite // the older peer is the other side: impolite there
			if dials == oldDials {
				t.Errorf("polite %v, newcomer %v: we dial %v, the older peer dials %v", polite, newcomer, dials, oldDials)
			}
		}
	}
}
