package clientaddr

import (
	"net/netip"
	"sync"
)

// Counter counts what each client holds open (sessions, connections) against a cap per
// client. Only clients holding something have an entry: an entry is removed when its count
// returns to zero, so the memory it takes is bounded by what is open, not by how many
// clients ever came. It is safe for concurrent use.
type Counter struct {
	max int
	mu  sync.Mutex
	n   map[netip.Prefix]int
}

// NewCounter returns a Counter that lets each client hold at most max things (max < 1: no cap).
func NewCounter(max int) *Counter {
	return &Counter{max: max, n: make(map[netip.Prefix]int)}
}

// Acquire counts one more thing for key and reports true, or reports false (and counts
// nothing) when key already holds the cap. Every true must be matched by one Release.
func (c *Counter) Acquire(key netip.Prefix) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := c.n[key]
	if c.max > 0 && n >= c.max {
		return false
	}
	c.n[key] = n + 1
	return true
}

// Release counts one thing of key's less, removing key's entry at zero.
func (c *Counter) Release(key netip.Prefix) {
	c.mu.Lock()
	defer c.mu.Unlock()
	switch n := c.n[key]; {
	case n > 1:
		c.n[key] = n - 1
	case n == 1:
		delete(c.n, key)
	}
}

// Count returns what key holds.
func (c *Counter) Count(key netip.Prefix) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n[key]
}

// Clients returns how many clients hold something (the entries of the counter).
func (c *Counter) Clients() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.n)
}
