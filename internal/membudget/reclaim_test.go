package membudget

import "testing"

// TestReclaimCountsPendingDrops: a holder the reclaimer dropped may give its bytes back only
// later (its connection closes on its own loop, a session lingers for its last packet). A
// reclaim meanwhile must count those bytes as on their way out, not drop further holders
// for them.
func TestReclaimCountsPendingDrops(t *testing.T) {
	b := New(10_000) // reclaims past 9,000 down to 7,500
	var dropped []string
	holder := func(name string, size int64) *Account {
		a := b.NewAccount(WSPartial, func() { dropped = append(dropped, name) }) // ends later
		if !a.Add(size) {
			t.Fatalf("%s refused", name)
		}
		return a
	}
	holder("big", 5000)
	holder("mid", 2000)
	holder("small", 2500)
	b.reclaim()
	b.reclaim() // woken again before the big one has ended
	if len(dropped) != 1 || dropped[0] != "big" {
		t.Fatalf("dropped %v, want only the big holder", dropped)
	}
}

// TestForcePastNineTenthsWakesTheReclaimer: a forced charge (a close frame) that takes the
// budget past nine tenths wakes the reclaimer like any other charge: nothing else may come
// to wake it while new connections are refused.
func TestForcePastNineTenthsWakesTheReclaimer(t *testing.T) {
	b := New(10_000)
	a := b.NewAccount(WSQueue, func() {})
	if !a.Add(8_500) {
		t.Fatal("refused")
	}
	a.Force(1_000)
	if !b.Full() {
		t.Fatal("not full past nine tenths")
	}
	select {
	case <-b.kick:
	default:
		t.Fatal("the reclaimer was not woken")
	}
}
