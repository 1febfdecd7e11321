package hub

// Review of issue 14: handing a presence over to the node it resumes on, and replaying what
// was handed over. Run: go test -race -count=1 -run Review14 ./internal/hub/

import (
	"fmt"
	"testing"
	"time"

	"github.com/switchboard-rtc/switchboard/protocol"
)

// TestReview14JoinedPresenceHandsOverItsOutbox: only presences re-created from a token got a
// bus.Member.Handover; one that joined the ordinary way had none, so a cluster node asked to
// hand it over (natsbus handOver: "a member that cannot be handed over") answered nothing and
// the node it resumed on restored it with a gap: every event it had not read was lost.
func TestReview14JoinedPresenceHandsOverItsOutbox(t *testing.T) {
	h, err := New(Config{Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	sa, _ := reviewJoin(t, h, `{"type":"join","room":"r"}`)
	sb, _ := reviewJoin(t, h, `{"type":"join","room":"r"}`)
	for i := 1; i <= 3; i++ {
		f := fmt.Sprintf(`{"type":"message","target":%q,"data":%d}`, sa.Peer(), i)
		if err := sb.HandleFrame([]byte(f), time.Now()); err != nil {
			t.Fatal(err)
		}
	}
	m := sa.cur()
	if m.Handover == nil {
		t.Fatal("a joined presence has no Handover: another node cannot take it over with its events")
	}
	// A's events: peer-joined B (seq 1), then the messages 1, 2, 3 (seq 2, 3, 4).
	ho := m.Handover(2)
	if ho == nil || ho.Gap || ho.Seq != 4 || len(ho.Events) != 2 || string(ho.Events[0].Data) != "2" || ho.Events[1].Seq != 4 {
		t.Fatalf("handover after seq 2 = %+v, want messages 2 and 3 (seq 3, 4), no gap", ho)
	}
	if sa.cur() != nil {
		t.Fatal("the session still holds the presence it handed over")
	}
}

// TestReview14ReplayBeyondOutbox: a handover may carry more events than the outbox bound
// (natsbus appends the relays it held for the member after the outbox's own). The restore's
// replay kept the first ResumeHoldEvents and silently dropped the rest, the newest, with a
// welcome that claimed no gap.
func TestReview14ReplayBeyondOutbox(t *testing.T) {
	r := newTestOutbox(nil, 4, 1<<20)
	r.seq = 2
	sink := &recorder{}
	var evs []*protocol.Event
	for i := 3; i <= 8; i++ {
		evs = append(evs, &protocol.Event{Type: protocol.TypeMessage, From: "b", Data: []byte(fmt.Sprint(i)), Seq: uint64(i)})
	}
	r.replay(sink, welcomeEvent(), evs, 2)
	if len(sink.got) != 1+len(evs) {
		t.Fatalf("replay delivered %d events after the welcome, want all %d handed over", len(sink.got)-1, len(evs))
	}
	for i, e := range sink.got[1:] {
		if e.Seq != uint64(i+3) {
			t.Fatalf("replayed event %d has seq %d, want %d (in order)", i, e.Seq, i+3)
		}
	}
	if r.counter() != 8 {
		t.Fatalf("counter after the replay = %d, want 8", r.counter())
	}
	// The outbox keeps its bound; a resume from before what it kept is told of a gap.
	r.mu.Lock()
	n, dropped := len(r.kept), r.dropped
	r.mu.Unlock()
	if n > 4 || dropped < 4 {
		t.Fatalf("after the replay the outbox keeps %d events (bound 4), dropped up to %d (want ≥ 4)", n, dropped)
	}
	next := &recorder{}
	w := welcomeEvent()
	if !r.attach(next, w, 2, 8) || !w.Welcome.Gap {
		t.Fatalf("a resume from seq 2 after the replay: gap %v, want true", w.Welcome.Gap)
	}
}
