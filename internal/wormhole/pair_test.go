package wormhole

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

// wire relays a step's reply as the server would: JSON bytes.
func wire(t *testing.T, st Step) []byte {
	t.Helper()
	if st.Reply == nil {
		t.Fatalf("step %+v has no reply", st)
	}
	b, err := json.Marshal(*st.Reply)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// exchange runs one receiver Pair on rc against the sender Pair s (peer ids "s" and id)
// until it ends, and returns the last steps of each side.
func exchange(t *testing.T, s *Pair, id string, rc Code) (r *Pair, rst, sst Step) {
	t.Helper()
	r = NewPair(Receiver, rc)
	rst, ok := r.Add("s")
	if !ok {
		t.Fatal("receiver: not added")
	}
	if _, ok := s.Add(id); !ok {
		t.Fatal("sender: not added")
	}
	sst = s.Message(id, wire(t, rst)) // x → y
	if sst.Err != nil {
		return r, rst, sst
	}
	rst = r.Message("s", wire(t, sst)) // y → confirm or refused
	sst = s.Message(id, wire(t, rst))
	return r, rst, sst
}

func TestPairRightCode(t *testing.T) {
	c, _ := NewCode()
	s := NewPair(Sender, c)
	r, rst, sst := exchange(t, s, "r1", c)
	if !rst.Ready || !sst.Ready || !r.Ready("s") || !s.Ready("r1") || r.Session("s") == nil || s.Session("r1") == nil {
		t.Fatalf("receiver %+v, sender %+v", rst, sst)
	}
	// A bind is handed over once ready; the confirmed receiver leaving ends nothing more.
	b, _ := r.Session("s").Bind(PathDTLS, []byte("a"), []byte("b"))
	raw, _ := json.Marshal(b)
	if st := s.Message("r1", raw); st.Bind == nil || st.Bind.Path != PathDTLS {
		t.Fatalf("bind: %+v", st)
	}
	if st := s.Left("r1"); st.Err != nil || st.Report != "" || s.Ready("r1") {
		t.Fatalf("left: %+v", st)
	}
	// The receiver's confirmed sender leaving: lost.
	if st := r.Left("s"); !errors.Is(st.Lost, ErrSenderLeft) {
		t.Fatalf("receiver, sender left: %+v", st)
	}
	if st := r.Message("s", []byte(`{"hello":1}`)); st != (Step{}) {
		t.Fatalf("a message not of the exchange: %+v", st)
	}
}

func TestPairCountsWrongCodes(t *testing.T) {
	c, _ := NewCode()
	w := c
	w.Words = append([]string(nil), c.Words...)
	w.Words[0] = evenWords[(wordIndex[c.Words[0]].value+1)%255]
	s := NewPair(Sender, c)
	for i := 1; i <= MaxWrongCodes; i++ {
		id := "r" + string(rune('0'+i))
		_, rst, sst := exchange(t, s, id, w)
		if !errors.Is(rst.Lost, ErrWrongCode) || rst.Reply == nil || rst.Reply.Kind != KindRefused {
			t.Fatalf("receiver %d: %+v", i, rst)
		}
		if !errors.Is(sst.Err, ErrWrongCode) || !strings.HasPrefix(sst.Report, "someone tried a wrong code (") || sst.GaveUp != (i == MaxWrongCodes) {
			t.Fatalf("sender, attempt %d: %+v", i, sst)
		}
	}
	if s.WrongCodes() != MaxWrongCodes {
		t.Fatalf("%d wrong codes", s.WrongCodes())
	}
	// No answer beyond the guesses left.
	r := NewPair(Receiver, c)
	x, _ := r.Add("s")
	s.Add("r9")
	if st := s.Message("r9", wire(t, x)); !errors.Is(st.Err, ErrBusy) || st.Reply != nil || st.Report != "" {
		t.Fatalf("a guess beyond the limit: %+v", st)
	}
}

// TestPairUnconfirmedAttempts: an answered x counts from the answer, and settles as a wrong
// code when its peer leaves or is slow; answers in flight bound the answers given.
func TestPairUnconfirmedAttempts(t *testing.T) {
	c, _ := NewCode()
	s := NewPair(Sender, c)
	var ids []string
	for i := range MaxWrongCodes + 1 {
		id := string(rune('a' + i))
		r := NewPair(Receiver, c)
		x, _ := r.Add("s")
		s.Add(id)
		st := s.Message(id, wire(t, x))
		if i < MaxWrongCodes && (st.Reply == nil || st.Reply.Kind != KindY) {
			t.Fatalf("x %d not answered: %+v", i, st)
		}
		if i == MaxWrongCodes && !errors.Is(st.Err, ErrBusy) {
			t.Fatalf("x beyond the attempts in flight answered: %+v", st)
		}
		ids = append(ids, id)
	}
	if st := s.Left(ids[0]); !errors.Is(st.Err, ErrLeft) || !strings.Contains(st.Report, "left without confirming") {
		t.Fatalf("left: %+v", st)
	}
	if st := s.Fail(ids[1], ErrSlow); !strings.Contains(st.Report, "in time") || st.GaveUp {
		t.Fatalf("slow: %+v", st)
	}
	if st := s.Message(ids[2], []byte(`{"switchboard":"pake","pake":"confirm"}`)); !strings.Contains(st.Report, "malformed") || !st.GaveUp {
		t.Fatalf("malformed: %+v", st)
	}
	// A peer that never sent x: not an attempt.
	s2 := NewPair(Sender, c)
	s2.Add("idle")
	if st := s2.Fail("idle", ErrSlow); st.Report != "" || s2.WrongCodes() != 0 {
		t.Fatalf("idle peer: %+v", st)
	}
}

// TestPairReceiverAmongPosers: a receiver gives up only when no sender's exchange is left,
// and checks at most MaxWrongCodes failed answers.
func TestPairReceiverAmongPosers(t *testing.T) {
	c, _ := NewCode()
	r := NewPair(Receiver, c)
	r.Add("poser")
	r.Add("real")
	if st := r.Message("poser", []byte(`{"switchboard":"pake","pake":"y","body":"e30=","mac":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="}`)); st.Err == nil || st.Lost != nil {
		t.Fatalf("poser's bad y: %+v (must not end the receiver while the real sender may answer)", st)
	}
	if st := r.Left("real"); !errors.Is(st.Lost, ErrLeft) {
		t.Fatalf("last sender left: %+v", st)
	}
	if st := r.Left("real"); st != (Step{}) {
		t.Fatalf("lost twice: %+v", st)
	}

	// MaxPeers.
	r2 := NewPair(Receiver, c)
	for i := range MaxPeers {
		if _, ok := r2.Add(string(rune('a' + i))); !ok {
			t.Fatalf("peer %d refused", i)
		}
	}
	if _, ok := r2.Add("z"); ok {
		t.Fatal("a peer beyond MaxPeers added")
	}
}
