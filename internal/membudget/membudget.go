// Package membudget bounds the memory the server holds for its clients: every buffer a client
// can make the server keep (send queues of both transports, events held for a parked presence,
// partial frames, the kernel send buffer of a backed-up socket) is charged to one Budget for
// the whole process.
//
// A Budget has a limit. Past nine tenths of it, new connections are refused (Full) and a
// reclaimer drops the biggest holders — each one's drop function ends its connection the way
// its own queue overflowing would (`slow`) — until what is held falls to three quarters. A
// charge that would take the total past the limit itself is refused: the caller treats it as
// its queue overflowing. So what clients make the server hold never exceeds the limit, and an
// attacker that fills the budget loses its own connections first.
//
// A nil *Budget and a nil *Account are valid and unlimited, so code paths need no checks.
package membudget

import (
	"context"
	"slices"
	"sync"
	"sync/atomic"
)

// Kind names what an Account holds, for the metric of what was dropped.
type Kind uint8

// The kinds of holders.
const (
	WSQueue    Kind = iota // a WebSocket's send queue and, while it is backed up, its kernel send buffer
	WSPartial              // a WebSocket's incomplete frame or fragmented message
	PollQueue              // a long-polling Socket.IO session's queued packets
	HeldEvents             // events held for a parked (resumable) presence
	PostBody               // a long-polling POST's body being read
	numKinds
)

// Kinds lists every Kind, for exposing counters.
var Kinds = [...]Kind{WSQueue, WSPartial, PollQueue, HeldEvents, PostBody}

func (k Kind) String() string {
	switch k {
	case WSQueue:
		return "ws-queue"
	case WSPartial:
		return "ws-partial"
	case PollQueue:
		return "poll-queue"
	case HeldEvents:
		return "held-events"
	case PostBody:
		return "poll-body"
	}
	return "unknown"
}

// Budget is the process's memory budget for client-held buffers. It is safe for concurrent use.
type Budget struct {
	limit, high, low int64

	used atomic.Int64

	mu      sync.Mutex
	holders map[*Account]struct{} // accounts that have held something and are not released

	kick chan struct{} // cap 1: wakes the reclaimer

	dropped  [numKinds]atomic.Uint64
	refused  atomic.Uint64 // charges refused at the limit
	peak     atomic.Int64
	reclaims atomic.Uint64
}

// New returns a Budget of limit bytes (> 0). Run its reclaimer with Run.
func New(limit int64) *Budget {
	return &Budget{
		limit:   limit,
		high:    limit - limit/10,
		low:     limit - limit/4,
		holders: make(map[*Account]struct{}),
		kick:    make(chan struct{}, 1),
	}
}

// Limit returns the budget in bytes (0 for a nil Budget: unlimited).
func (b *Budget) Limit() int64 {
	if b == nil {
		return 0
	}
	return b.limit
}

// Used returns the bytes held now.
func (b *Budget) Used() int64 {
	if b == nil {
		return 0
	}
	return b.used.Load()
}

// Peak returns the most bytes held at once.
func (b *Budget) Peak() int64 {
	if b == nil {
		return 0
	}
	return b.peak.Load()
}

// Full reports whether new connections should be refused: nine tenths of the budget are held.
func (b *Budget) Full() bool { return b != nil && b.used.Load() >= b.high }

// Dropped returns how many holders of kind k the reclaimer dropped.
func (b *Budget) Dropped(k Kind) uint64 {
	if b == nil || k >= numKinds {
		return 0
	}
	return b.dropped[k].Load()
}

// Refused returns how many charges were refused because they would pass the limit.
func (b *Budget) Refused() uint64 {
	if b == nil {
		return 0
	}
	return b.refused.Load()
}

// Reclaims returns how many times the reclaimer ran.
func (b *Budget) Reclaims() uint64 {
	if b == nil {
		return 0
	}
	return b.reclaims.Load()
}

// NewAccount returns an account for one holder. drop ends the holder (it is called at most
// once, from the reclaimer's goroutine, and must not block); the holder must Release the
// account when it ends, however it ends.
func (b *Budget) NewAccount(k Kind, drop func()) *Account {
	if b == nil {
		return nil
	}
	return &Account{b: b, kind: k, drop: drop}
}

// Run reclaims until ctx ends: when more than nine tenths of the budget are held, the biggest
// holders are dropped until three quarters would be.
func (b *Budget) Run(ctx context.Context) {
	if b == nil {
		return
	}
	for {
		select {
		case <-ctx.Done():
			return
		case <-b.kick:
		}
		b.reclaim()
	}
}

type holding struct {
	a    *Account
	held int64
}

func (b *Budget) reclaim() {
	over := b.used.Load() - b.low
	if over <= 0 {
		return
	}
	b.reclaims.Add(1)
	b.mu.Lock()
	list := make([]holding, 0, len(b.holders))
	for a := range b.holders {
		switch h := a.held.Load(); {
		case h <= 0:
		case a.dropped.Load():
			over -= h // dropped already and on its way out: no one else is dropped for it
		default:
			list = append(list, holding{a, h})
		}
	}
	b.mu.Unlock()
	if over <= 0 {
		return
	}
	slices.SortFunc(list, func(x, y holding) int {
		switch {
		case x.held > y.held:
			return -1
		case x.held < y.held:
			return 1
		}
		return 0
	})
	for _, h := range list {
		if over <= 0 {
			break
		}
		if h.a.dropped.CompareAndSwap(false, true) {
			b.dropped[h.a.kind].Add(1)
			over -= h.held
			h.a.drop()
		}
	}
}

func (b *Budget) wake() {
	select {
	case b.kick <- struct{}{}:
	default:
	}
}

// Account is what one holder (a connection's queue, a parked presence) has charged. Its
// methods may be called from several goroutines.
type Account struct {
	b       *Budget
	kind    Kind
	drop    func()
	held    atomic.Int64
	listed  atomic.Bool // in b.holders (set once, under b.mu)
	dropped atomic.Bool // the reclaimer chose it
}

// Add charges delta bytes (a negative delta gives bytes back). A charge that would take the
// budget past its limit is refused (nothing is charged) and Add reports false: the holder
// must drop what it was about to keep, as if its own queue had overflowed.
func (a *Account) Add(delta int64) bool {
	if a == nil || delta == 0 {
		return true
	}
	b := a.b
	if delta < 0 {
		a.held.Add(delta)
		b.used.Add(delta)
		return true
	}
	used := b.used.Add(delta)
	if used > b.limit {
		b.used.Add(-delta)
		b.refused.Add(1)
		b.wake()
		return false
	}
	a.charged(delta, used)
	return true
}

// Force charges delta bytes even past the limit: for the few bytes a holder must keep to end
// properly (a close frame), which the limit's headroom over the reclaim line covers.
func (a *Account) Force(delta int64) {
	if a == nil || delta == 0 {
		return
	}
	a.charged(delta, a.b.used.Add(delta))
}

// charged books delta (> 0 but for Force) on the account once the budget's total, now used,
// took it: the account joins the reclaimer's list, the peak moves, and from nine tenths on the
// reclaimer is woken (new connections are refused until it reclaims).
func (a *Account) charged(delta, used int64) {
	b := a.b
	a.held.Add(delta)
	if delta > 0 && !a.listed.Load() {
		b.mu.Lock()
		if !a.listed.Load() {
			b.holders[a] = struct{}{}
			a.listed.Store(true)
		}
		b.mu.Unlock()
	}
	for peak := b.peak.Load(); used > peak && !b.peak.CompareAndSwap(peak, used); peak = b.peak.Load() {
	}
	if used >= b.high {
		b.wake()
	}
}

// Held returns the bytes the account holds.
func (a *Account) Held() int64 {
	if a == nil {
		return 0
	}
	return a.held.Load()
}

// Release gives back everything the account holds and forgets it. The holder calls it once,
// when it ends; Add after Release charges again and must be released again.
func (a *Account) Release() {
	if a == nil {
		return
	}
	if h := a.held.Swap(0); h != 0 {
		a.b.used.Add(-h)
	}
	if a.listed.Load() {
		a.b.mu.Lock()
		delete(a.b.holders, a)
		a.listed.Store(false)
		a.b.mu.Unlock()
	}
}
