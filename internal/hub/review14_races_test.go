package hub

// Review of issue 14: races between a resume from a token and the end of its presence, and
// what a client can make the shared ledger hold. Run:
// go test -race -count=1 -run Review14 ./internal/hub/

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/switchboard-rtc/switchboard/internal/resume"
	"github.com/switchboard-rtc/switchboard/protocol"
)

// hookLedger is a MemoryLedger that runs after, once, when jti is spent.
type hookLedger struct {
	*resume.MemoryLedger
	mu    sync.Mutex
	jti   string
	after func()
}

func (l *hookLedger) Spend(ctx context.Context, jti string, exp time.Time) (bool, error) {
	ok, err := l.MemoryLedger.Spend(ctx, jti, exp)
	l.mu.Lock()
	f := l.after
	if jti != l.jti || !ok {
		f = nil
	}
	if f != nil {
		l.after = nil
	}
	l.mu.Unlock()
	if f != nil {
		f()
	}
	return ok, err
}

// TestReview14RemovedWhileResumeSpends: the server API removes a presence while its client
// resumes it. It was pinned between the resume's spend of the token and its take of the
// presence: the removal's spend failed, take found nothing, and the fallback restore
// re-created the removed presence. A resume of a presence this node holds no longer spends
// its token in the ledger (it is crossed off the presence's own list, in the same step as the
// take), so the window left is a restore while the removal's record of the token is under
// way: pinned here in the removal's spend of the token, then once the ledger has it.
func TestReview14RemovedWhileResumeSpends(t *testing.T) {
	led := &hookLedger{MemoryLedger: resume.NewMemoryLedger(0)}
	toks, err := resume.New(resume.Config{Ledger: led})
	if err != nil {
		t.Fatal(err)
	}
	h, err := New(Config{Logger: quietLogger(), Resume: toks})
	if err != nil {
		t.Fatal(err)
	}
	sa, sinkA := reviewJoin(t, h, `{"type":"join","room":"r"}`)
	_, sinkB := reviewJoin(t, h, `{"type":"join","room":"r"}`)
	peer := sa.Peer()
	tok := sinkA.welcome(t).Resume
	c, err := toks.Verify(tok, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	sa.Drop("lost")
	inSpend, release := make(chan struct{}), make(chan struct{})
	led.mu.Lock()
	led.jti, led.after = c.ID, func() {
		close(inSpend)
		<-release
	}
	led.mu.Unlock()
	if err := h.Remove(context.Background(), "r", peer); err != nil {
		t.Fatal(err)
	}
	select {
	case <-inSpend:
	case <-time.After(10 * time.Second):
		t.Fatal("the removal did not record the presence's token: the test did not pin the race")
	}
	_, during := reviewJoin(t, h, `{"type":"join","room":"r","resume":"`+tok+`"}`)
	close(release)
	h.bg.Wait()
	_, after := reviewJoin(t, h, `{"type":"join","room":"r","resume":"`+tok+`"}`)
	removed := false
	for _, e := range sinkB.events() {
		if e.Type == protocol.TypePeerLeft && e.Peer.ID == peer && e.Reason == "removed" {
			removed = true
		}
	}
	if !removed {
		t.Fatal("no peer-left removed for the presence")
	}
	for when, sink := range map[string]*syncSink{"while the removal recorded its token": during, "after": after} {
		if w := sink.welcome(t); w.Self == peer {
			ps, _ := h.Peers(context.Background(), "r")
			t.Fatalf("presence %s, removed by the server, is back from a resume %s (welcome resumed=%v restored=%v; room has %d members)", peer, when, w.Resumed, w.Restored, len(ps))
		}
	}
}

// TestReview14LedgerFilledByChurn: every presence that ends spends its tokens in the ledger,
// which keeps each entry until the token expires (--resume-token-ttl, 1 h) and, full, refuses
// every spend: every client's resume then fails. One client joining and leaving within its
// join rate (20/s: 72,000 entries an hour from one address; IPv6 /64s are cheap) fills the
// default 2^20 entries from a handful of addresses. Here with a ledger of 64 entries: one
// client's churn locks another client out of its resume. Not a local fix (the ledger is
// shared across clients and nodes; a per-client share, or entries that need no spend for a
// presence that left normally, is a design change). MemoryLedger.Refused is not exposed as a
// metric either (only the generic resumes-refused counter moves).
func TestReview14LedgerFilledByChurn(t *testing.T) {
	led := resume.NewMemoryLedger(64)
	toks, err := resume.New(resume.Config{Ledger: led})
	if err != nil {
		t.Fatal(err)
	}
	h, err := New(Config{Logger: quietLogger(), Resume: toks, RateLimit: 1e6, RateBurst: 1e6})
	if err != nil {
		t.Fatal(err)
	}
	victim, sinkV := reviewJoin(t, h, `{"type":"join","room":"r"}`)
	peer := victim.Peer()
	tok := sinkV.welcome(t).Resume
	s, _ := reviewJoin(t, h, `{"type":"join","room":"x"}`)
	for i := 0; i < 64; i++ {
		if err := s.HandleFrame([]byte(`{"type":"leave"}`), time.Now()); err != nil {
			t.Fatal(err)
		}
		if err := s.HandleFrame([]byte(fmt.Sprintf(`{"type":"join","room":"x","id":%d}`, i)), time.Now()); err != nil {
			t.Fatal(err)
		}
		h.bg.Wait()
	}
	victim.Drop("lost")
	_, sink2 := reviewJoin(t, h, `{"type":"join","room":"r","resume":"`+tok+`"}`)
	if w := sink2.welcome(t); !w.Resumed || w.Self != peer {
		t.Fatalf("after another client's churn, a lost presence cannot be resumed (welcome resumed=%v; spends refused by the full ledger: %d)", w.Resumed, led.Refused())
	}
}
