package hub

import "time"

// bucket is a per-connection token bucket with a second bucket of strikes: each rejected
// message spends a strike, strikes refill at a tenth of their capacity per second, and a
// connection out of strikes is closed. Time is passed in, so tests control it.
type bucket struct {
	tokens  float64
	strikes float64
	last    int64 // unix nanoseconds
}

func (b *bucket) init(burst, strikes float64, now time.Time) {
	b.tokens = burst
	b.strikes = strikes
	b.last = now.UnixNano()
}

// take spends one token. ok is false when none is left; kick is true when the strikes are
// spent too.
func (b *bucket) take(rate, burst, strikes float64, now time.Time) (ok, kick bool) {
	n := now.UnixNano()
	if dt := float64(n-b.last) / 1e9; dt > 0 {
		b.tokens = min(burst, b.tokens+dt*rate)
		b.strikes = min(strikes, b.strikes+dt*strikes/10)
		b.last = n
	}
	if b.tokens >= 1 {
		b.tokens--
		return true, false
	}
	b.strikes--
	return false, b.strikes < 0
}
