package resume

import (
	"container/heap"
	"context"
	"sync"
	"sync/atomic"
	"time"
)

// Ledger remembers which tokens were spent, each until it expires.
type Ledger interface {
	// Spend records jti as spent until exp. It reports false when jti was spent already.
	Spend(ctx context.Context, jti string, exp time.Time) (bool, error)
}

// DefaultLedgerSize is how many unexpired spent tokens a MemoryLedger remembers by default:
// one resume per entry, each costing about 100 bytes.
const DefaultLedgerSize = 1 << 20

// MemoryLedger is a Ledger in this process's memory: bounded, entries dropped as their tokens
// expire. When full of unexpired entries it refuses spends (ErrLedgerFull) rather than forget
// one that could then be replayed.
type MemoryLedger struct {
	max     int
	now     func() time.Time
	refused atomic.Uint64

	mu    sync.Mutex
	spent map[string]time.Time
	exp   expiries
}

// NewMemoryLedger returns a ledger of at most max entries (DefaultLedgerSize when max ≤ 0).
func NewMemoryLedger(max int) *MemoryLedger {
	if max <= 0 {
		max = DefaultLedgerSize
	}
	return &MemoryLedger{max: max, now: time.Now, spent: make(map[string]time.Time)}
}

// Spend implements Ledger.
func (l *MemoryLedger) Spend(ctx context.Context, jti string, exp time.Time) (bool, error) {
	if err := ctx.Err(); err != nil {
		return false, err
	}
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	for len(l.exp) > 0 && !l.exp[0].at.After(now) {
		e := heap.Pop(&l.exp).(expiry)
		delete(l.spent, e.jti)
	}
	if _, ok := l.spent[jti]; ok {
		return false, nil
	}
	if !exp.After(now) {
		return false, nil // expired: no use to anyone
	}
	if len(l.spent) >= l.max {
		l.refused.Add(1)
		return false, ErrLedgerFull
	}
	l.spent[jti] = exp
	heap.Push(&l.exp, expiry{at: exp, jti: jti})
	return true, nil
}

// Len returns how many spent tokens the ledger remembers.
func (l *MemoryLedger) Len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.spent)
}

// Refused returns how many spends were refused because the ledger was full.
func (l *MemoryLedger) Refused() uint64 { return l.refused.Load() }

type expiry struct {
	at  time.Time
	jti string
}

// expiries is a min-heap by expiry time.
type expiries []expiry

func (e expiries) Len() int           { return len(e) }
func (e expiries) Less(i, j int) bool { return e[i].at.Before(e[j].at) }
func (e expiries) Swap(i, j int)      { e[i], e[j] = e[j], e[i] }
func (e *expiries) Push(x any)        { *e = append(*e, x.(expiry)) }
func (e *expiries) Pop() any {
	old := *e
	x := old[len(old)-1]
	*e = old[:len(old)-1]
	return x
}
