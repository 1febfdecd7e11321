package hub

import (
	"testing"
	"time"
)

// rlClock is a controlled clock for bucket tests.
type rlClock struct{ t time.Time }

func (c *rlClock) now() time.Time          { return c.t }
func (c *rlClock) advance(d time.Duration) { c.t = c.t.Add(d) }

func newRLClock() *rlClock { return &rlClock{t: time.Unix(1_700_000_000, 0)} }

// rlTake is one take with the expected outcome.
func rlTake(t *testing.T, b *bucket, rate, burst, strikes float64, now time.Time, wantOK, wantKick bool, what string) {
	t.Helper()
	ok, kick := b.take(rate, burst, strikes, now)
	if ok != wantOK || kick != wantKick {
		t.Fatalf("%s: take = ok %v kick %v, want ok %v kick %v (bucket %+v)", what, ok, kick, wantOK, wantKick, *b)
	}
}

func TestBucketBurstThenReject(t *testing.T) {
	const rate, burst, strikes = 10, 5, 3
	clk := newRLClock()
	var b bucket
	b.init(burst, strikes, clk.now())
	for i := 0; i < burst; i++ {
		rlTake(t, &b, rate, burst, strikes, clk.now(), true, false, "within burst")
	}
	rlTake(t, &b, rate, burst, strikes, clk.now(), false, false, "burst spent")
}

func TestBucketRefill(t *testing.T) {
	const rate, burst, strikes = 10, 5, 100
	clk := newRLClock()
	var b bucket
	b.init(burst, strikes, clk.now())
	for i := 0; i < burst; i++ {
		rlTake(t, &b, rate, burst, strikes, clk.now(), true, false, "burst")
	}
	rlTake(t, &b, rate, burst, strikes, clk.now(), false, false, "empty")

	// Half a token's worth of time is not enough.
	clk.advance(50 * time.Millisecond)
	rlTake(t, &b, rate, burst, strikes, clk.now(), false, false, "after half a token")
	// The two halves add up: 100 ms at 10/s is one token.
	clk.advance(50 * time.Millisecond)
	rlTake(t, &b, rate, burst, strikes, clk.now(), true, false, "after one token")
	rlTake(t, &b, rate, burst, strikes, clk.now(), false, false, "spent again")

	// 300 ms more is three tokens.
	clk.advance(300 * time.Millisecond)
	for i := 0; i < 3; i++ {
		rlTake(t, &b, rate, burst, strikes, clk.now(), true, false, "refilled three")
	}
	rlTake(t, &b, rate, burst, strikes, clk.now(), false, false, "after three")

	// A long pause refills to the burst and no further.
	clk.advance(time.Hour)
	for i := 0; i < burst; i++ {
		rlTake(t, &b, rate, burst, strikes, clk.now(), true, false, "refilled to burst")
	}
	rlTake(t, &b, rate, burst, strikes, clk.now(), false, false, "capped at burst")
}

// TestBucketSustainedRate sends steadily just under and just over the rate after the burst is
// spent: under it nothing is rejected, over it rejections start once the burst is used up.
func TestBucketSustainedRate(t *testing.T) {
	const rate, burst, strikes = 200, 400, 100
	for _, tc := range []struct {
		perSec     float64
		wantReject bool
	}{{190, false}, {200 * 0.999, false}, {210, true}} {
		clk := newRLClock()
		var b bucket
		b.init(burst, strikes, clk.now())
		for i := 0; i < burst; i++ {
			rlTake(t, &b, rate, burst, strikes, clk.now(), true, false, "burst")
		}
		clk.advance(time.Second) // refill the bucket
		step := time.Duration(float64(time.Second) / tc.perSec)
		rejected := 0
		for i := 0; i < int(tc.perSec)*60; i++ { // a minute
			clk.advance(step)
			if ok, kick := b.take(rate, burst, strikes, clk.now()); !ok {
				rejected++
				if kick {
					break
				}
			}
		}
		if (rejected > 0) != tc.wantReject {
			t.Errorf("%v msg/s at a limit of %v/s: %d rejected, want rejections %v", tc.perSec, rate, rejected, tc.wantReject)
		}
	}
}

func TestBucketKickAfterStrikes(t *testing.T) {
	const rate, burst, strikes = 1, 2, 3
	clk := newRLClock()
	var b bucket
	b.init(burst, strikes, clk.now())
	rlTake(t, &b, rate, burst, strikes, clk.now(), true, false, "burst 1")
	rlTake(t, &b, rate, burst, strikes, clk.now(), true, false, "burst 2")
	// Each rejection spends a strike; `strikes` rejections are tolerated and the next kicks.
	for i := 0; i < strikes; i++ {
		rlTake(t, &b, rate, burst, strikes, clk.now(), false, false, "rejected, strikes left")
	}
	rlTake(t, &b, rate, burst, strikes, clk.now(), false, true, "out of strikes")
	// Still out: every further rejection kicks too.
	rlTake(t, &b, rate, burst, strikes, clk.now(), false, true, "still out of strikes")
}

func TestBucketStrikesRefill(t *testing.T) {
	// rate 0 isolates the strikes: no token ever comes back.
	const rate, burst, strikes = 0, 1, 10
	clk := newRLClock()
	var b bucket
	b.init(burst, strikes, clk.now())
	rlTake(t, &b, rate, burst, strikes, clk.now(), true, false, "the only token")
	for i := 0; i < strikes; i++ {
		rlTake(t, &b, rate, burst, strikes, clk.now(), false, false, "spending strikes")
	}
	// Strikes refill at a tenth of their capacity per second: 1/s here.
	clk.advance(time.Second)
	rlTake(t, &b, rate, burst, strikes, clk.now(), false, false, "one strike back")
	rlTake(t, &b, rate, burst, strikes, clk.now(), false, true, "spent it")

	// Ten seconds refill them all, and no more than all.
	b.init(burst, strikes, clk.now())
	rlTake(t, &b, rate, burst, strikes, clk.now(), true, false, "the only token")
	for i := 0; i < strikes; i++ {
		rlTake(t, &b, rate, burst, strikes, clk.now(), false, false, "spending strikes")
	}
	clk.advance(time.Hour)
	for i := 0; i < strikes; i++ {
		rlTake(t, &b, rate, burst, strikes, clk.now(), false, false, "refilled strikes")
	}
	rlTake(t, &b, rate, burst, strikes, clk.now(), false, true, "capped at capacity")
}

// TestBucketSlowDownAvoidsKick: a client that is rejected but then backs off to the allowed
// rate recovers without being closed.
func TestBucketSlowDownAvoidsKick(t *testing.T) {
	const rate, burst, strikes = 10, 10, 5
	clk := newRLClock()
	var b bucket
	b.init(burst, strikes, clk.now())
	for i := 0; i < burst; i++ {
		rlTake(t, &b, rate, burst, strikes, clk.now(), true, false, "burst")
	}
	for i := 0; i < strikes; i++ {
		rlTake(t, &b, rate, burst, strikes, clk.now(), false, false, "over the limit")
	}
	for i := 0; i < 100; i++ {
		clk.advance(200 * time.Millisecond) // 5/s, half the rate
		rlTake(t, &b, rate, burst, strikes, clk.now(), true, false, "backed off")
	}
}

func TestBucketClockGoingBackwards(t *testing.T) {
	const rate, burst, strikes = 10, 2, 3
	clk := newRLClock()
	var b bucket
	b.init(burst, strikes, clk.now())
	rlTake(t, &b, rate, burst, strikes, clk.now(), true, false, "1")
	rlTake(t, &b, rate, burst, strikes, clk.now(), true, false, "2")
	// An earlier time refills nothing and does not move the bucket's clock back.
	clk.advance(-time.Hour)
	rlTake(t, &b, rate, burst, strikes, clk.now(), false, false, "earlier time")
	clk.advance(time.Hour + 100*time.Millisecond)
	rlTake(t, &b, rate, burst, strikes, clk.now(), true, false, "100 ms after the last real take")
	rlTake(t, &b, rate, burst, strikes, clk.now(), false, false, "only one token came back")
}

func TestRateConfigDefaults(t *testing.T) {
	c := Config{RateLimit: 50}
	c.setDefaults()
	if c.RateBurst != 100 || c.RateStrikes != 100 {
		t.Errorf("RateLimit 50: burst %v strikes %v, want 100 and 100", c.RateBurst, c.RateStrikes)
	}
	c = Config{}
	c.setDefaults()
	if c.RateLimit != 200 || c.RateBurst != 400 {
		t.Errorf("zero config: rate %v burst %v, want 200 and 400", c.RateLimit, c.RateBurst)
	}
	for _, bad := range []Config{{RateLimit: -1}, {RateBurst: 0.5}, {RateStrikes: 0.5}} {
		bad.setDefaults()
		if err := bad.validate(); err == nil {
			t.Errorf("validate(%+v) = nil, want an error", bad)
		}
	}
}
