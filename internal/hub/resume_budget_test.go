package hub

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/switchboard-rtc/switchboard/internal/membudget"
	"github.com/switchboard-rtc/switchboard/protocol"
)

func newTestOutbox(b *membudget.Budget, maxEvents, maxBytes int) *resumeSink {
	r := &resumeSink{cur: &recorder{}, maxEvents: maxEvents, maxBytes: maxBytes}
	if b != nil {
		r.acct = b.NewAccount(membudget.HeldEvents, r.reclaimed)
	}
	return r
}

func welcomeEvent() *protocol.Event {
	return &protocol.Event{Type: protocol.TypeWelcome, Welcome: &protocol.Welcome{}}
}

// TestResumeSinkCharged: kept events are charged to the memory budget, connected or parked,
// and given back when read, when the presence ends or overflows; a parked outbox the budget
// cannot take overflows; the reclaimer may drop a big one, which then overflows.
func TestResumeSinkCharged(t *testing.T) {
	b := membudget.New(1 << 20)
	overs := 0
	r := newTestOutbox(b, 1000, 900<<10)
	for range 3 {
		if !r.Send(msg(strings.Repeat("x", 1000))) {
			t.Fatal("event refused")
		}
	}
	if b.Used() < int64(r.keptBytes) || r.keptBytes < 3000 {
		t.Fatalf("budget holds %d for %d kept bytes", b.Used(), r.keptBytes)
	}
	r.markRead(3)
	if b.Used() != 0 || len(r.kept) != 0 {
		t.Fatalf("after every event was read the budget holds %d (%d kept)", b.Used(), len(r.kept))
	}
	r.park(func() { overs++ })
	r.Send(msg(strings.Repeat("x", 1000)))
	if !r.attach(&recorder{}, welcomeEvent(), 4, 0) || b.Used() != 0 {
		t.Fatalf("after a resume past every event the budget holds %d", b.Used())
	}

	// Parked again, with the rest of the budget taken: the next event overflows the outbox.
	r.park(func() { overs++ })
	other := b.NewAccount(membudget.WSQueue, func() {})
	other.Add(b.Limit() - chargeChunk - 2000)
	r.Send(msg(strings.Repeat("y", 1000)))
	if r.Send(msg(strings.Repeat("z", 100<<10))) || overs != 1 || b.Used() != other.Held() {
		t.Fatalf("over the budget: overs %d, used %d (other %d)", overs, b.Used(), other.Held())
	}
	other.Release()

	// A fresh presence, parked and the biggest holder when the budget runs short: dropped.
	r = newTestOutbox(b, 1000, 900<<10)
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); b.Run(ctx) }()
	defer func() { cancel(); wg.Wait() }()
	dropped := make(chan struct{})
	r.park(func() { close(dropped) })
	for range 700 {
		r.Send(msg(strings.Repeat("w", 1000)))
	}
	small := b.NewAccount(membudget.WSQueue, func() { t.Error("the small holder was dropped") })
	small.Add(b.Limit() - b.Limit()/10 - b.Used() + 1) // just past nine tenths
	select {
	case <-dropped:
	case <-time.After(5 * time.Second):
		t.Fatalf("the big outbox was not dropped; used %d", b.Used())
	}
	if b.Used() != small.Held() || b.Dropped(membudget.HeldEvents) != 1 {
		t.Fatalf("after the drop: used %d, small %d, dropped %d", b.Used(), small.Held(), b.Dropped(membudget.HeldEvents))
	}
	r.forget()
}

// TestOutboxConnectedDropsOldest: connected, a full outbox drops its oldest events (they were
// written, not known read) and a resume from before them is told about the gap; one from
// after them is not.
func TestOutboxConnectedDropsOldest(t *testing.T) {
	live := &recorder{}
	r := &resumeSink{cur: live, maxEvents: 4, maxBytes: 1 << 20}
	for i := range 10 {
		if !r.Send(msg(strings.Repeat("x", i+1))) {
			t.Fatal("Send refused while connected")
		}
	}
	if len(live.got) != 10 || len(r.kept) != 4 || r.kept[0].ev.Seq != 7 || r.dropped != 6 {
		t.Fatalf("written %d, kept %d from seq %d, dropped up to %d", len(live.got), len(r.kept), r.kept[0].ev.Seq, r.dropped)
	}
	r.park(func() { t.Error("overflow") })
	next := &recorder{}
	w := welcomeEvent()
	if !r.attach(next, w, 5, 0) || !w.Welcome.Gap || w.Welcome.Seq != 10 || len(next.got) != 5 {
		t.Fatalf("resume after 5: gap %v seq %d, %d frames", w.Welcome.Gap, w.Welcome.Seq, len(next.got))
	}
	r.park(func() { t.Error("overflow") })
	next = &recorder{}
	w = welcomeEvent()
	if !r.attach(next, w, 8, 0) || w.Welcome.Gap || len(next.got) != 3 || next.got[1].Seq != 9 {
		t.Fatalf("resume after 8: gap %v, %d frames", w.Welcome.Gap, len(next.got))
	}
}

// TestOutboxMarkNow: the sink is asked for a mark once the unread events reach half the
// bound, once until the next mark.
func TestOutboxMarkNow(t *testing.T) {
	m := &markRecorder{}
	r := &resumeSink{cur: m, mark: m, maxEvents: 8, maxBytes: 1 << 20}
	for range 3 {
		r.Send(msg("x"))
	}
	if m.marks != 0 {
		t.Fatalf("marked at 3 of 8")
	}
	for range 3 {
		r.Send(msg("x"))
	}
	if m.marks != 1 {
		t.Fatalf("MarkNow called %d times at 6 of 8, want once", m.marks)
	}
	r.markRead(6)
	r.Send(msg("x"))
	if len(r.kept) != 1 || r.kept[0].ev.Seq != 7 {
		t.Fatalf("after the mark: %d kept", len(r.kept))
	}
	for range 3 {
		r.Send(msg("x"))
	}
	if m.marks != 2 {
		t.Fatalf("MarkNow called %d times after a mark and 4 more, want 2", m.marks)
	}
}

type markRecorder struct {
	recorder
	marks int
}

func (m *markRecorder) MarkNow() { m.marks++ }

// TestApplyMembership: a resumed welcome's peers follow the membership events after the
// snapshot's counter.
func TestApplyMembership(t *testing.T) {
	a, b, c := protocol.PeerInfo{ID: "a"}, protocol.PeerInfo{ID: "b"}, protocol.PeerInfo{ID: "c"}
	ks := []kept{
		{ev: protocol.Event{Type: protocol.TypePeerJoined, Peer: &b, Seq: 3}}, // before since: ignored
		{ev: protocol.Event{Type: protocol.TypePeerJoined, Peer: &c, Seq: 5}},
		{ev: protocol.Event{Type: protocol.TypePeerLeft, Peer: &a, Seq: 6}},
		{ev: protocol.Event{Type: protocol.TypePeerJoined, Peer: &c, Seq: 7}}, // seen already
	}
	got := applyMembership([]protocol.PeerInfo{a}, ks, 4, "me")
	if len(got) != 1 || got[0].ID != "c" {
		t.Fatalf("peers = %v, want [c]", got)
	}
}
