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

// RateLimiter is a connection's share of the hub's rate limit for a transport that has no
// Session yet (an adopted WebSocket before its protocol connects), with the same rate, burst
// and strikes. It is not safe for concurrent use: one per connection, on its goroutine.
type RateLimiter struct {
	h *Hub
	b bucket
}

// NewRateLimiter returns a full budget that starts at now.
func (h *Hub) NewRateLimiter(now time.Time) *RateLimiter {
	r := &RateLimiter{h: h}
	r.b.init(h.cfg.RateBurst, h.cfg.RateStrikes, now)
	return r
}

// Allow charges one frame received at now. It reports false when the frame is over the limit;
// the error is a *CloseError (1008) once the connection has been over it too often.
func (r *RateLimiter) Allow(now time.Time) (bool, error) {
	c := &r.h.cfg
	if ok, kick := r.b.take(c.RateLimit, c.RateBurst, c.RateStrikes, now); !ok {
		if kick {
			r.h.stats.Kicks.Add(1)
			return false, &CloseError{Code: ClosePolicyViolation, Reason: "rate limit exceeded", LeaveReason: "kicked"}
		}
		return false, nil
	}
	return true, nil
}
