package hub

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/switchboard-rtc/switchboard/internal/membudget"
)

// TestResumeSinkCharged: events held for a parked presence are charged to the memory budget
// and given back when the presence is taken back, expires or overflows; a hold the budget
// cannot take overflows; the reclaimer may drop a big hold, which then overflows.
func TestResumeSinkCharged(t *testing.T) {
	b := membudget.New(1 << 20)
	overs := 0
	r := &resumeSink{cur: &recorder{}, maxEvents: 1000, maxBytes: 900 << 10}
	r.park(b, func() { overs++ })
	for range 3 {
		if !r.Send(msg(strings.Repeat("x", 1000))) {
			t.Fatal("held event refused")
		}
	}
	if b.Used() != int64(r.heldBytes) || b.Used() < 3000 {
		t.Fatalf("budget holds %d for %d held bytes", b.Used(), r.heldBytes)
	}
	if !r.attach(&recorder{}, msg("welcome")) || b.Used() != 0 {
		t.Fatalf("after resume the budget holds %d", b.Used())
	}

	// Parked again, with the rest of the budget taken: the next event overflows the hold.
	r.park(b, func() { overs++ })
	other := b.NewAccount(membudget.WSQueue, func() {})
	other.Add(b.Limit() - 2000)
	r.Send(msg(strings.Repeat("y", 1000)))
	if r.Send(msg(strings.Repeat("z", 1000))) || overs != 1 || b.Used() != other.Held() {
		t.Fatalf("over the budget: overs %d, used %d (other %d)", overs, b.Used(), other.Held())
	}
	other.Release()

	// Parked again and the biggest holder when the budget runs short: the reclaimer drops it.
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); b.Run(ctx) }()
	defer func() { cancel(); wg.Wait() }()
	dropped := make(chan struct{})
	r.park(b, func() { close(dropped) })
	for range 700 {
		r.Send(msg(strings.Repeat("w", 1000)))
	}
	small := b.NewAccount(membudget.WSQueue, func() { t.Error("the small holder was dropped") })
	small.Add(b.Limit() - b.Limit()/10 - b.Used() + 1) // just past nine tenths
	select {
	case <-dropped:
	case <-time.After(5 * time.Second):
		t.Fatalf("the big hold was not dropped; used %d", b.Used())
	}
	if b.Used() != small.Held() || b.Dropped(membudget.HeldEvents) != 1 {
		t.Fatalf("after the drop: used %d, small %d, dropped %d", b.Used(), small.Held(), b.Dropped(membudget.HeldEvents))
	}
	r.forget()
}

// TestStaleDropAfterResume: a drop the reclaimer chose for an earlier park does not give up
// the hold of a later one (the presence resumed and was parked again meanwhile).
func TestStaleDropAfterResume(t *testing.T) {
	b := membudget.New(1 << 20)
	overs := 0
	r := &resumeSink{cur: &recorder{}, maxEvents: 100, maxBytes: 64 << 10}
	r.park(b, func() { overs++ })
	first := r.acct
	r.Send(msg("held"))
	if !r.attach(&recorder{}, msg("welcome")) {
		t.Fatal("resume refused")
	}
	r.park(b, func() { overs++ })
	r.Send(msg("held again"))
	r.dropHeld(first) // the reclaimer's choice from before the resume
	if overs != 0 || r.overflowed() || len(r.held) != 1 {
		t.Fatalf("a stale drop gave up the new hold: overs %d, held %d", overs, len(r.held))
	}
	r.dropHeld(r.acct)
	if overs != 1 || !r.overflowed() || b.Used() != 0 {
		t.Fatalf("the current drop: overs %d, used %d", overs, b.Used())
	}
}
