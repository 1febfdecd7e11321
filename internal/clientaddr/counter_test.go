package clientaddr

import (
	"net/netip"
	"sync"
	"testing"
)

func TestCounter(t *testing.T) {
	c := NewCounter(2)
	a := netip.MustParsePrefix("192.0.2.1/32")
	b := netip.MustParsePrefix("2001:db8::/64")
	if !c.Acquire(a) || !c.Acquire(a) {
		t.Fatal("a refused under its cap")
	}
	if c.Acquire(a) {
		t.Fatal("a acquired past its cap")
	}
	if !c.Acquire(b) {
		t.Fatal("b refused because of a")
	}
	if got := c.Count(a); got != 2 {
		t.Fatalf("Count(a) = %d, want 2", got)
	}
	c.Release(a)
	if !c.Acquire(a) {
		t.Fatal("a refused after a release")
	}
	c.Release(a)
	c.Release(a)
	c.Release(b)
	c.Release(b) // an extra release must not go negative nor leave an entry
	if n := c.Clients(); n != 0 {
		t.Fatalf("%d entries left after every release, want 0", n)
	}
	if c.Count(a) != 0 || c.Count(b) != 0 {
		t.Fatalf("counts %d, %d after every release", c.Count(a), c.Count(b))
	}
}

func TestCounterConcurrent(t *testing.T) {
	const limit, workers = 10, 8
	c := NewCounter(limit)
	key := netip.MustParsePrefix("198.51.100.0/24")
	var wg sync.WaitGroup
	var mu sync.Mutex
	peak := 0
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 1000 {
				if !c.Acquire(key) {
					continue
				}
				mu.Lock()
				if n := c.Count(key); n > peak {
					peak = n
				}
				mu.Unlock()
				c.Release(key)
			}
		}()
	}
	wg.Wait()
	if peak > limit {
		t.Fatalf("count reached %d, cap %d", peak, limit)
	}
	if c.Clients() != 0 {
		t.Fatalf("%d entries left", c.Clients())
	}
}
