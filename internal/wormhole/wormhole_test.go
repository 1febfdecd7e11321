package wormhole

import (
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

func TestWordList(t *testing.T) {
	if len(evenWords) != 256 || len(oddWords) != 256 || len(wordIndex) != 512 {
		t.Fatalf("%d even, %d odd, %d distinct; want 256, 256, 512", len(evenWords), len(oddWords), len(wordIndex))
	}
	// Spot checks against the published list.
	if evenWords[0] != "aardvark" || evenWords[255] != "zulu" || oddWords[0] != "adroitness" || oddWords[255] != "yucatan" {
		t.Fatalf("ends of the list: %s %s %s %s", evenWords[0], evenWords[255], oddWords[0], oddWords[255])
	}
}

func TestCodeRoundTrip(t *testing.T) {
	seen := map[string]bool{}
	for range 200 {
		c, err := NewCode()
		if err != nil {
			t.Fatal(err)
		}
		if c.Channel < 1 || c.Channel > newChannels || len(c.Words) != CodeWords {
			t.Fatalf("code %v", c)
		}
		p, err := ParseCode(strings.ToUpper(strings.ReplaceAll(c.String(), "-", " ")))
		if err != nil || p.String() != c.String() || p.Room() != c.Room() {
			t.Fatalf("%q parsed as %q, %v", c, p, err)
		}
		seen[c.String()] = true
	}
	if len(seen) < 190 {
		t.Fatalf("only %d distinct codes in 200", len(seen))
	}
}

func TestParseCodeRefuses(t *testing.T) {
	for _, s := range []string{"", "7", "gravity-lemon", "0-aardvark-adroitness-acme", "10000-aardvark-adroitness-acme",
		"7-aardvark-adroitness", "7-aardvark-adroitness-acme-adviser", "7-adroitness-aardvark-acme", "7-aardvark-nonsense-acme",
		"x-aardvark-adroitness-acme"} {
		if _, err := ParseCode(s); !errors.Is(err, ErrCode) {
			t.Errorf("%q: %v, want ErrCode", s, err)
		}
	}
	if _, err := ParseCode("  42 Aardvark ADROITNESS acme "); err != nil {
		t.Fatal(err)
	}
}

// run runs the key exchange between a receiver on rc and a sender on sc through JSON, as
// the server relays it.
func run(t *testing.T, rc, sc Code) (r, s *Session, rerr, serr error) {
	t.Helper()
	r, x, err := NewReceiver(rc)
	if err != nil {
		t.Fatal(err)
	}
	s, err = NewSender(sc)
	if err != nil {
		t.Fatal(err)
	}
	y, ok, serr := s.Handle(relay(t, x))
	if serr != nil || !ok {
		t.Fatalf("sender on x: %v", serr)
	}
	confirm, ok, rerr := r.Handle(relay(t, y))
	if !ok {
		t.Fatal("the receiver answered nothing")
	}
	_, _, serr = s.Handle(relay(t, confirm))
	return r, s, rerr, serr
}

func relay(t *testing.T, m Msg) Msg {
	t.Helper()
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	if !IsMsg(b) {
		t.Fatalf("%s is not an exchange message", b)
	}
	d, err := DecodeMsg(b)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func TestExchangeAndBind(t *testing.T) {
	c, _ := NewCode()
	r, s, rerr, serr := run(t, c, c)
	if rerr != nil || serr != nil || !r.Ready() || !s.Ready() {
		t.Fatalf("same code: receiver %v, sender %v", rerr, serr)
	}
	fr, fs := sha256.Sum256([]byte("receiver cert")), sha256.Sum256([]byte("sender cert"))
	// Each binds its view; each checks the other's.
	bs, err := s.Bind(PathQUIC, fs[:], fr[:])
	if err != nil {
		t.Fatal(err)
	}
	br, _ := r.Bind(PathQUIC, fr[:], fs[:])
	if err := r.CheckBind(relay(t, bs), PathQUIC, fr[:], fs[:]); err != nil {
		t.Fatalf("receiver checks the sender's bind: %v", err)
	}
	if err := s.CheckBind(relay(t, br), PathQUIC, fs[:], fr[:]); err != nil {
		t.Fatalf("sender checks the receiver's bind: %v", err)
	}
	// A man in the middle: each side saw the attacker's certificate.
	fm := sha256.Sum256([]byte("attacker cert"))
	bs, _ = s.Bind(PathQUIC, fs[:], fm[:])
	if err := r.CheckBind(bs, PathQUIC, fr[:], fm[:]); !errors.Is(err, ErrBinding) {
		t.Fatalf("substituted certificates: %v, want ErrBinding", err)
	}
	// Another path, or a bind replayed as the other role.
	if err := r.CheckBind(relay(t, bs), PathDTLS, fr[:], fs[:]); !errors.Is(err, ErrBinding) {
		t.Fatalf("other path: %v", err)
	}
	if err := s.CheckBind(bs, PathQUIC, fs[:], fr[:]); !errors.Is(err, ErrBinding) {
		t.Fatalf("its own bind reflected: %v", err)
	}
}

func TestWrongCode(t *testing.T) {
	c, _ := NewCode()
	w := c
	w.Words = append([]string(nil), c.Words...)
	w.Words[2] = evenWords[(wordIndex[c.Words[2]].value+1)%255]
	r, s, rerr, serr := run(t, w, c)
	if !errors.Is(rerr, ErrWrongCode) {
		t.Fatalf("receiver with a wrong code: %v, want ErrWrongCode", rerr)
	}
	if r.Ready() || s.Ready() {
		t.Fatal("ready with different codes")
	}
	// The receiver's answer was "refused": the sender learns of the wrong code from it.
	if !errors.Is(serr, ErrWrongCode) {
		t.Fatalf("sender: %v, want ErrWrongCode", serr)
	}
	if _, err := s.Bind(PathQUIC, nil, nil); err == nil {
		t.Fatal("bind without a confirmed key")
	}
}

// TestConfirmForged: a receiver that skips its check and sends a made-up confirmation (it
// does not know the code) is refused by the sender.
func TestConfirmForged(t *testing.T) {
	c, _ := NewCode()
	_, x, _ := NewReceiver(c)
	s, _ := NewSender(c)
	if _, _, err := s.Handle(x); err != nil {
		t.Fatal(err)
	}
	reply, ok, err := s.Handle(Msg{Switchboard: msgTag, Kind: KindConfirm, MAC: bytes.Repeat([]byte{7}, 32)})
	if !errors.Is(err, ErrWrongCode) || !ok || reply.Kind != KindRefused || s.Ready() {
		t.Fatalf("forged confirm: %v %v %+v", err, ok, reply)
	}
}

func TestOutOfOrder(t *testing.T) {
	c, _ := NewCode()
	s, _ := NewSender(c)
	if _, _, err := s.Handle(Msg{Kind: KindConfirm, MAC: make([]byte, 32)}); !errors.Is(err, ErrMsg) {
		t.Fatalf("confirm first: %v", err)
	}
	if _, _, err := s.Handle(Msg{Kind: KindX, Body: []byte("{}")}); err == nil {
		t.Fatal("a failed session took another message")
	}
}

// FuzzSenderX: whatever comes as x, the sender answers or refuses with an error, never panics.
func FuzzSenderX(f *testing.F) {
	c, _ := NewCode()
	_, x, _ := NewReceiver(c)
	b, _ := json.Marshal(x)
	f.Add(b)
	f.Add([]byte(`{"switchboard":"pake","pake":"x","body":"e30="}`))
	f.Add([]byte(`{"switchboard":"pake","pake":"x","body":"eyJSb2xlIjowfQ=="}`))
	f.Add([]byte(`{"switchboard":"pake","pake":"x","body":"eyJSb2xlIjowLCJY4bWkIjoxLCJY4bWlIjoyfQ=="}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := DecodeMsg(b)
		if err != nil {
			return
		}
		s, _ := NewSender(c)
		_, _, _ = s.Handle(m)
	})
}

// FuzzReceiverY: the same for the receiver and the sender's answer.
func FuzzReceiverY(f *testing.F) {
	c, _ := NewCode()
	_, x, _ := NewReceiver(c)
	s, _ := NewSender(c)
	y, _, _ := s.Handle(x)
	b, _ := json.Marshal(y)
	f.Add(b)
	f.Add([]byte(`{"switchboard":"pake","pake":"y","body":"e30=","mac":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := DecodeMsg(b)
		if err != nil {
			return
		}
		r, _, _ := NewReceiver(c)
		_, _, _ = r.Handle(m)
	})
}
