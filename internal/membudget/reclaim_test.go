package membudget

import "testing"

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
