package clientaddr

import (
	"net/netip"
	"sync"
	"sync/atomic"
	"time"
)

// DefaultMaxClients is the default bound on a Limiter's entries.
const DefaultMaxClients = 65536

// LimiterConfig configures a Limiter.
type LimiterConfig struct {
	// Rate is how many tokens a client gets back per second; Burst how many it can hold
	// (at least 1). A new client starts with Burst.
	Rate  float64
	Burst float64
	// MaxClients bounds the entries (default DefaultMaxClients).
	MaxClients int
	// Entries, when set, is kept equal to the number of entries (a gauge); Evictions, when
	// set, counts entries pushed out of a full table before they were idle.
	Entries   *atomic.Int64
	Evictions *atomic.Uint64
}

// Limiter is a token bucket per client: how often each client may do something (join, get
// TURN credentials). A client whose bucket has filled up again is the same as one never
// seen, so its entry can go; entries are dropped when idle that long, and the table never
// holds more than MaxClients: when it is full, idle entries go first, then the fullest (each
// eviction only hands that client a full bucket again), so an attacker with many addresses
// cannot grow it, and the clients it limits are the last to be pushed out.
// It is safe for concurrent use.
type Limiter struct {
	cfg LimiterConfig
	// idleNanos is how long an empty bucket takes to fill up; sweepNanos how often idle
	// entries are dropped (that, at least 10 s).
	idleNanos  int64
	sweepNanos int64

	mu        sync.Mutex
	m         map[netip.Prefix]bucketState
	lastSweep int64 // unix nanoseconds
}

type bucketState struct {
	tokens float64
	last   int64 // unix nanoseconds of the last update
}

// NewLimiter returns a Limiter for cfg.
func NewLimiter(cfg LimiterConfig) *Limiter {
	if cfg.MaxClients <= 0 {
		cfg.MaxClients = DefaultMaxClients
	}
	cfg.Burst = max(cfg.Burst, 1)
	idle := int64(1<<62 - 1)
	if cfg.Rate > 0 {
		idle = int64(cfg.Burst/cfg.Rate*1e9) + 1
	}
	return &Limiter{cfg: cfg, idleNanos: idle, sweepNanos: max(idle, int64(10*time.Second)), m: make(map[netip.Prefix]bucketState)}
}

// Allow spends one of key's tokens at now and reports true, or reports false when key has
// none left.
func (l *Limiter) Allow(key netip.Prefix, now time.Time) bool {
	n := now.UnixNano()
	l.mu.Lock()
	defer l.mu.Unlock()
	if n-l.lastSweep > l.sweepNanos || n < l.lastSweep {
		l.sweep(n)
	}
	b, ok := l.m[key]
	if ok {
		b = l.refill(b, n)
	} else {
		if len(l.m) >= l.cfg.MaxClients {
			l.makeRoom(n)
		}
		b = bucketState{tokens: l.cfg.Burst, last: n}
	}
	allowed := b.tokens >= 1
	if allowed {
		b.tokens--
	}
	l.m[key] = b
	l.count()
	return allowed
}

func (l *Limiter) refill(b bucketState, n int64) bucketState {
	if dt := n - b.last; dt > 0 {
		b.tokens = min(l.cfg.Burst, b.tokens+float64(dt)/1e9*l.cfg.Rate)
		b.last = n
	}
	return b
}

// idle reports whether b is full again at n: dropping it changes nothing.
func (l *Limiter) idle(b bucketState, n int64) bool {
	return l.refill(b, n).tokens >= l.cfg.Burst
}

// sweep drops the idle entries. It runs every sweepNanos (and when the table is full), so its
// cost is spread over the calls between.
func (l *Limiter) sweep(n int64) {
	l.lastSweep = n
	for k, b := range l.m {
		if l.idle(b, n) {
			delete(l.m, k)
		}
	}
}

// makeRoom frees an eighth of a full table, counting as evictions the entries that were not
// idle: idle ones first, then those with at least half their burst left, then any. A client
// being limited (its bucket nearly empty) is the last to be handed a fresh bucket. Until the
// table fills again (an eighth of MaxClients new clients later) no call pays for this.
func (l *Limiter) makeRoom(n int64) {
	l.sweep(n)
	target := l.cfg.MaxClients - max(1, l.cfg.MaxClients/8)
	for _, least := range []float64{l.cfg.Burst / 2, -1} {
		for k, b := range l.m {
			if len(l.m) <= target {
				return
			}
			if l.refill(b, n).tokens >= least {
				delete(l.m, k)
				if l.cfg.Evictions != nil {
					l.cfg.Evictions.Add(1)
				}
			}
		}
	}
}

func (l *Limiter) count() {
	if l.cfg.Entries != nil {
		l.cfg.Entries.Store(int64(len(l.m)))
	}
}

// Clients returns how many clients have an entry.
func (l *Limiter) Clients() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.m)
}
