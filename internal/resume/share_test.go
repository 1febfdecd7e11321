package resume

import (
	"context"
	"errors"
	"testing"
	"time"
)

// TestClientShare: one client that caused its share of ledger entries has its restores
// refused (ErrClientShare), while another client's go on; records of presences the server
// ended still count for it but are refused only when the ledger is full; entries leave the
// tally as their tokens expire.
func TestClientShare(t *testing.T) {
	tk, err := New(Config{Secrets: [][]byte{secretA}, MaxEntries: 8, ClientShare: 3})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	clock := now
	tk.tally.now = func() time.Time { return clock }
	tk.ledger.(*MemoryLedger).now = func() time.Time { return clock }
	ctx := context.Background()
	spend := func(client string, kind SpendKind, exp time.Time) error {
		_, c, err := tk.Mint(sample(), now)
		if err != nil {
			t.Fatal(err)
		}
		c.Expires = exp
		return tk.Spend(ctx, c, client, kind)
	}
	soon, later := now.Add(time.Minute), now.Add(time.Hour)
	for i := 0; i < 3; i++ {
		if err := spend("attacker", Restore, soon); err != nil {
			t.Fatalf("restore %d within the share: %v", i, err)
		}
	}
	if err := spend("attacker", Restore, later); !errors.Is(err, ErrClientShare) {
		t.Fatalf("a restore past the client's share = %v, want ErrClientShare", err)
	}
	if err := spend("attacker", Record, later); err != nil {
		t.Fatalf("a record past the client's share = %v, want it kept", err)
	}
	if err := spend("victim", Restore, later); err != nil {
		t.Fatalf("another client's restore = %v, want nil", err)
	}
	if n := tk.ClientEntries("attacker"); n != 4 {
		t.Fatalf("attacker's entries = %d, want 4", n)
	}
	for i := 0; i < 3; i++ {
		if err := spend("", Record, later); err != nil {
			t.Fatalf("record %d: %v", i, err)
		}
	}
	if err := spend("", Record, later); !errors.Is(err, ErrLedgerFull) {
		t.Fatalf("a record past the total = %v, want ErrLedgerFull", err)
	}
	if full, share := tk.LedgerRefused(); full != 1 || share != 1 {
		t.Fatalf("refused full=%d share=%d, want 1 and 1", full, share)
	}
	clock = soon.Add(time.Second) // the attacker's three restores expire
	if n := tk.LedgerEntries(); n != 5 {
		t.Fatalf("entries after the first expire = %d, want 5", n)
	}
	if err := spend("attacker", Restore, later); err != nil {
		t.Fatalf("a restore once the client's entries expired: %v", err)
	}
}

// TestSpendFailureGivesEntryBack: a spend the ledger refuses (spent already) takes no room in
// the tally.
func TestSpendFailureGivesEntryBack(t *testing.T) {
	tk, err := New(Config{Secrets: [][]byte{secretA}, MaxEntries: 4, ClientShare: 2})
	if err != nil {
		t.Fatal(err)
	}
	_, c, _ := tk.Mint(sample(), time.Now())
	ctx := context.Background()
	if err := tk.Spend(ctx, c, "x", Restore); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 5; i++ {
		if err := tk.Spend(ctx, c, "x", Restore); !errors.Is(err, ErrSpent) {
			t.Fatalf("spend %d of a spent token = %v, want ErrSpent", i, err)
		}
	}
	if n := tk.ClientEntries("x"); n != 1 {
		t.Fatalf("entries of x = %d, want 1", n)
	}
}
