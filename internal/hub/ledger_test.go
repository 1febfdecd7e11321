package hub

// The spent-token ledger under churn: what one client can make it hold, and what that costs
// the others. Run: go test -race -count=1 -run Ledger ./internal/hub/

import (
	"net/netip"
	"testing"
	"time"

	"github.com/switchboard-rtc/switchboard/internal/resume"
	"github.com/switchboard-rtc/switchboard/protocol"
)

// keyJoin joins with frame on a new session of client.
func keyJoin(t *testing.T, h *Hub, client, frame string) (*Session, *syncSink) {
	t.Helper()
	sink := &syncSink{}
	s := h.Connect(sink, time.Now())
	s.SetClient(netip.MustParsePrefix(client))
	if err := s.HandleFrame([]byte(frame), time.Now()); err != nil {
		t.Fatalf("join %s: %v", frame, err)
	}
	return s, sink
}

func resumeFrame(tok string) string {
	return `{"type":"join","room":"r","resume":"` + tok + `"}`
}

// TestLedgerChainedRestoresLockOutOnlyTheirClient: one client chains restores (leave, then
// re-create the presence from its token, again and again): each spends a ledger entry. Past
// its share its restores are refused (it starts over as a new presence); another client's
// restore and resume go on, and the ledger holds no more than the share from the first.
func TestLedgerChainedRestoresLockOutOnlyTheirClient(t *testing.T) {
	const share = 8
	toks, err := resume.New(resume.Config{MaxEntries: 64, ClientShare: share})
	if err != nil {
		t.Fatal(err)
	}
	h, err := New(Config{Logger: quietLogger(), Resume: toks, RateLimit: 1e6, RateBurst: 1e6,
		Clients: ClientLimits{JoinRate: -1}})
	if err != nil {
		t.Fatal(err)
	}
	const attacker, victim = "203.0.113.7/32", "198.51.100.9/32"
	keyJoin(t, h, victim, `{"type":"join","room":"r"}`) // someone to keep the room open
	s, sink := keyJoin(t, h, attacker, `{"type":"join","room":"r"}`)
	restored := 0
	for i := 0; i < 4*share; i++ {
		tok := lastToken(t, sink)
		s.Leave("left")
		s, sink = keyJoin(t, h, attacker, resumeFrame(tok))
		if sink.welcome(t).Restored {
			restored++
		}
	}
	if restored != share {
		t.Fatalf("one client restored %d times; want its share, %d", restored, share)
	}
	if n := toks.ClientEntries(attacker); n != share {
		t.Fatalf("the attacker's ledger entries = %d, want %d", n, share)
	}
	if _, refused := toks.LedgerRefused(); refused != 3*share {
		t.Fatalf("restores refused for the client's share = %d, want %d", refused, 3*share)
	}

	// The victim: a resume of its parked presence, then a restore after it left.
	sv, sinkV := keyJoin(t, h, victim, `{"type":"join","room":"r"}`)
	peer := sv.Peer()
	sv.Drop("lost")
	sv, sinkV = keyJoin(t, h, victim, resumeFrame(lastToken(t, sinkV)))
	if w := sinkV.welcome(t); !w.Resumed || w.Restored || w.Self != peer {
		t.Fatalf("the victim's resume after the churn: %+v", w)
	}
	sv.Leave("closed")
	_, sinkV = keyJoin(t, h, victim, resumeFrame(lastToken(t, sinkV)))
	if w := sinkV.welcome(t); !w.Restored || w.Self != peer {
		t.Fatalf("the victim's restore after another client's churn: resumed=%v restored=%v self=%s, want %s", w.Resumed, w.Restored, w.Self, peer)
	}
}

// TestLedgerFullStillResumes: with the ledger full, restores are refused (counted as full),
// but a resume of a presence this node holds needs no entry and goes on.
func TestLedgerFullStillResumes(t *testing.T) {
	toks, err := resume.New(resume.Config{MaxEntries: 4, ClientShare: 4})
	if err != nil {
		t.Fatal(err)
	}
	h, err := New(Config{Logger: quietLogger(), Resume: toks, Clients: ClientLimits{JoinRate: -1}})
	if err != nil {
		t.Fatal(err)
	}
	sv, sinkV := keyJoin(t, h, "198.51.100.9/32", `{"type":"join","room":"r"}`)
	peer := sv.Peer()
	s, sink := keyJoin(t, h, "203.0.113.7/32", `{"type":"join","room":"r"}`)
	for i := 0; i < 5; i++ {
		tok := lastToken(t, sink)
		s.Leave("left")
		s, sink = keyJoin(t, h, "203.0.113.7/32", resumeFrame(tok))
	}
	if n := toks.LedgerEntries(); n != 4 {
		t.Fatalf("ledger entries = %d, want 4 (full)", n)
	}
	if full, _ := toks.LedgerRefused(); full != 1 {
		t.Fatalf("spends refused as full = %d, want 1", full)
	}
	for i := 0; i < 3; i++ {
		sv.Drop("lost")
		sv, sinkV = keyJoin(t, h, "198.51.100.9/32", resumeFrame(lastToken(t, sinkV)))
		if w := sinkV.welcome(t); !w.Resumed || w.Self != peer {
			t.Fatalf("resume %d with the ledger full: resumed=%v self=%s", i, w.Resumed, w.Self)
		}
	}
}

// TestRestoreCountsAsJoin: a restore creates a presence, so it counts against the client's
// join rate like a join: over it the join is refused rate-limited, not restored for free.
// Two presences of one client on a node that restarted (another hub, the same secret) come
// back on a node whose join rate for the client allows one.
func TestRestoreCountsAsJoin(t *testing.T) {
	toks, err := resume.New(resume.Config{Secrets: [][]byte{resume.RandomSecret()}})
	if err != nil {
		t.Fatal(err)
	}
	before, err := New(Config{Logger: quietLogger(), Resume: toks})
	if err != nil {
		t.Fatal(err)
	}
	h, err := New(Config{Logger: quietLogger(), Resume: toks, Clients: ClientLimits{JoinRate: 0.001, JoinBurst: 1}})
	if err != nil {
		t.Fatal(err)
	}
	const c = "203.0.113.7/32"
	_, sink1 := keyJoin(t, before, c, `{"type":"join","room":"r"}`)
	_, sink2 := keyJoin(t, before, c, `{"type":"join","room":"r"}`)
	_, sink := keyJoin(t, h, c, resumeFrame(lastToken(t, sink1)))
	if !sink.welcome(t).Restored {
		t.Fatal("the first restore was refused")
	}
	_, sink = keyJoin(t, h, c, `{"type":"join","id":7,"room":"r","resume":"`+lastToken(t, sink2)+`"}`)
	for _, e := range sink.events() {
		if e.Type == protocol.TypeWelcome {
			t.Fatalf("a restore over the client's join rate was welcomed (restored=%v)", e.Welcome.Restored)
		}
	}
	evs := sink.events()
	if len(evs) != 1 || evs[0].Type != protocol.TypeError || evs[0].Err.Code != protocol.CodeRateLimited {
		t.Fatalf("a restore over the client's join rate got %+v, want one rate-limited error", evs)
	}
}
