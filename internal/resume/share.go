package resume

import (
	"container/heap"
	"sync"
	"sync/atomic"
	"time"
)

// The ledger is shared by every client: one that could fill it would lock every other client
// out of restores. So this node keeps a tally of the entries it put into the ledger, each
// attributed to the client whose action caused it (a restore it asked for, or a presence of
// its ended by the server) until the token expires: past its share (Config.ClientShare) the
// client's restores are refused and it starts over as a new presence; past the total
// (Config.MaxEntries) every restore is. The tally is per node: in a cluster each node bounds
// what its own clients put into the shared ledger.

// DefaultClientShare is how many ledger entries one client may cause by default: one per
// restore it asks for or per presence of its the server ended, within a token's TTL.
const DefaultClientShare = 4096

// SpendKind says why a token is spent.
type SpendKind int

const (
	// Restore is a client re-creating a presence from its token: refused past the client's
	// share (ErrClientShare) or when the ledger is full (ErrLedgerFull).
	Restore SpendKind = iota
	// Record is the server recording a token of a presence it ended (or handed over), so that
	// the token cannot re-create it: it counts in the client's share but is refused only when
	// the ledger is full.
	Record
)

// tally counts unexpired ledger entries per client.
type tally struct {
	max, share int
	now        func() time.Time
	full       atomic.Uint64 // spends refused: the ledger is full
	shares     atomic.Uint64 // restores refused: the client's share is used up

	mu     sync.Mutex
	total  int
	counts map[string]int
	exp    tallyHeap
}

// tallyEntry is one entry of the tally; dead when the spend it was reserved for failed.
type tallyEntry struct {
	at     time.Time
	client string
	dead   bool
}

func newTally(max, share int) *tally {
	return &tally{max: max, share: share, now: time.Now, counts: make(map[string]int)}
}

// reserve counts one entry for client until exp, unless refused (ErrLedgerFull, or
// ErrClientShare for a Restore). "" is no client: only the total applies. The entry is
// cancelled (cancel) if the spend then fails.
func (t *tally) reserve(client string, exp time.Time, kind SpendKind) (*tallyEntry, error) {
	now := t.now()
	t.mu.Lock()
	defer t.mu.Unlock()
	t.pruneLocked(now)
	if t.total >= t.max {
		t.full.Add(1)
		return nil, ErrLedgerFull
	}
	if kind == Restore && client != "" && t.counts[client] >= t.share {
		t.shares.Add(1)
		return nil, ErrClientShare
	}
	e := &tallyEntry{at: exp, client: client}
	heap.Push(&t.exp, e)
	t.total++
	t.counts[client]++
	return e, nil
}

// cancel takes back a reserved entry whose spend failed.
func (t *tally) cancel(e *tallyEntry) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if !e.dead {
		e.dead = true
		t.dropLocked(e.client)
	}
}

func (t *tally) dropLocked(client string) {
	t.total--
	if t.counts[client]--; t.counts[client] <= 0 {
		delete(t.counts, client)
	}
}

func (t *tally) pruneLocked(now time.Time) {
	for len(t.exp) > 0 && !t.exp[0].at.After(now) {
		e := heap.Pop(&t.exp).(*tallyEntry)
		if !e.dead {
			e.dead = true
			t.dropLocked(e.client)
		}
	}
}

// entries returns how many unexpired entries the tally counts.
func (t *tally) entries() int {
	now := t.now()
	t.mu.Lock()
	defer t.mu.Unlock()
	t.pruneLocked(now)
	return t.total
}

// of returns how many unexpired entries client caused.
func (t *tally) of(client string) int {
	now := t.now()
	t.mu.Lock()
	defer t.mu.Unlock()
	t.pruneLocked(now)
	return t.counts[client]
}

// tallyHeap is a min-heap of entries by expiry.
type tallyHeap []*tallyEntry

func (h tallyHeap) Len() int           { return len(h) }
func (h tallyHeap) Less(i, j int) bool { return h[i].at.Before(h[j].at) }
func (h tallyHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *tallyHeap) Push(x any)        { *h = append(*h, x.(*tallyEntry)) }
func (h *tallyHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	return x
}
