package clientaddr

import (
	"net/netip"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestLimiter: a client spends its burst, gets tokens back at the rate, and never more than
// the burst; another client has a bucket of its own.
func TestLimiter(t *testing.T) {
	l := NewLimiter(LimiterConfig{Rate: 2, Burst: 3})
	a := netip.MustParsePrefix("192.0.2.1/32")
	b := netip.MustParsePrefix("2001:db8::/64")
	t0 := time.Unix(1000, 0)
	for i := range 3 {
		if !l.Allow(a, t0) {
			t.Fatalf("token %d of the burst refused", i+1)
		}
	}
	if l.Allow(a, t0) {
		t.Fatal("allowed past the burst")
	}
	if !l.Allow(b, t0) {
		t.Fatal("another client refused")
	}
	if l.Allow(a, t0.Add(400*time.Millisecond)) {
		t.Fatal("allowed before a token came back (0.8 of one at 2/s)")
	}
	if !l.Allow(a, t0.Add(600*time.Millisecond)) || l.Allow(a, t0.Add(600*time.Millisecond)) {
		t.Fatal("want exactly one token back after 600 ms at 2/s")
	}
	// An hour later: the burst again, not 7,200 tokens.
	later := t0.Add(time.Hour)
	n := 0
	for l.Allow(a, later) {
		n++
	}
	if n != 3 {
		t.Fatalf("%d tokens after an hour, want the burst, 3", n)
	}
}

// TestLimiterBounded: a flood of distinct clients never takes more than MaxClients entries;
// what is pushed out is counted; idle entries are dropped first, and by the periodic sweep.
func TestLimiterBounded(t *testing.T) {
	var entries atomic.Int64
	var evictions atomic.Uint64
	l := NewLimiter(LimiterConfig{Rate: 1, Burst: 2, MaxClients: 64, Entries: &entries, Evictions: &evictions})
	t0 := time.Unix(1000, 0)
	key := func(i int) netip.Prefix {
		return netip.PrefixFrom(netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)}), 32)
	}
	for i := range 10000 {
		l.Allow(key(i), t0)
		if n := l.Clients(); n > 64 {
			t.Fatalf("%d entries after %d clients, bound 64", n, i+1)
		}
	}
	if entries.Load() != int64(l.Clients()) {
		t.Errorf("Entries gauge %d, table %d", entries.Load(), l.Clients())
	}
	if evictions.Load() < 10000-64 {
		t.Errorf("%d evictions for 10,000 clients through 64 entries", evictions.Load())
	}
	// Idle entries make room before anything is evicted: everyone has refilled 3 s later.
	before := evictions.Load()
	for i := range 64 {
		l.Allow(key(20000+i), t0.Add(3*time.Second))
	}
	if evictions.Load() != before {
		t.Errorf("%d entries evicted though idle ones could go", evictions.Load()-before)
	}
	// The periodic sweep: a minute later one call leaves one entry.
	l.Allow(key(1), t0.Add(time.Minute))
	if n := l.Clients(); n != 1 {
		t.Errorf("%d entries after the sweep, want 1", n)
	}
}

// TestLimiterConcurrent: under a concurrent flood of other clients through a small table, a
// client that spent its burst stays limited: the full buckets of the flood are pushed out,
// not its empty one.
func TestLimiterConcurrent(t *testing.T) {
	l := NewLimiter(LimiterConfig{Rate: 0.001, Burst: 50, MaxClients: 16})
	key := netip.MustParsePrefix("198.51.100.0/24")
	now := time.Now()
	for l.Allow(key, now) {
	}
	var allowed atomic.Int64
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 500 {
				if l.Allow(key, now) {
					allowed.Add(1)
				}
				l.Allow(netip.PrefixFrom(netip.AddrFrom4([4]byte{10, byte(w), byte(i >> 8), byte(i)}), 32), now)
			}
		}()
	}
	wg.Wait()
	if n := allowed.Load(); n != 0 {
		t.Fatalf("%d of 4,000 calls allowed to a client that had spent its burst", n)
	}
	if n := l.Clients(); n > 16 {
		t.Fatalf("%d entries, bound 16", n)
	}
}
