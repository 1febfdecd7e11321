package membudget

import (
	"context"
	"sync"
	"testing"
	"time"
)

func TestChargesRefusedPastTheLimit(t *testing.T) {
	b := New(1000)
	a := b.NewAccount(WSQueue, func() {})
	if !a.Add(600) || !a.Add(400) {
		t.Fatal("charges within the limit refused")
	}
	if a.Add(1) {
		t.Fatal("a charge past the limit was accepted")
	}
	if b.Used() != 1000 || a.Held() != 1000 || b.Refused() != 1 {
		t.Fatalf("used %d held %d refused %d, want 1000 1000 1", b.Used(), a.Held(), b.Refused())
	}
	if !b.Full() {
		t.Fatal("a budget held to its limit is not full")
	}
	a.Add(-500)
	if b.Full() || b.Used() != 500 {
		t.Fatalf("after giving back: full %v used %d", b.Full(), b.Used())
	}
	a.Release()
	if b.Used() != 0 || a.Held() != 0 || len(b.holders) != 0 {
		t.Fatalf("after release: used %d held %d holders %d", b.Used(), a.Held(), len(b.holders))
	}
	if b.Peak() != 1000 {
		t.Fatalf("peak %d, want 1000", b.Peak())
	}
}

func TestNilIsUnlimited(t *testing.T) {
	var b *Budget
	a := b.NewAccount(PollQueue, nil)
	if !a.Add(1<<40) || a.Held() != 0 || b.Full() || b.Limit() != 0 {
		t.Fatal("a nil budget limits")
	}
	a.Release()
	b.Run(context.Background()) // returns at once
}

// TestReclaimDropsTheBiggest: past nine tenths the reclaimer drops the biggest holders, and
// only as many as bring the total to three quarters; the small holders stay.
func TestReclaimDropsTheBiggest(t *testing.T) {
	b := New(10_000)
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); b.Run(ctx) }()
	defer func() { cancel(); wg.Wait() }()

	dropped := make(chan int, 16)
	var accounts []*Account
	charge := func(sizes ...int64) {
		for _, size := range sizes {
			i := len(accounts)
			a := b.NewAccount(PollQueue, func() { dropped <- i })
			accounts = append(accounts, a)
			if !a.Add(size) {
				t.Fatalf("charge %d refused", i)
			}
		}
	}
	expect := func(want ...int) {
		t.Helper()
		got := map[int]bool{}
		deadline := time.After(5 * time.Second)
		for len(got) < len(want) {
			select {
			case i := <-dropped:
				got[i] = true
				accounts[i].Release() // what the holder does when it ends
			case <-deadline:
				t.Fatalf("dropped %v, want %v", got, want)
			}
		}
		for _, i := range want {
			if !got[i] {
				t.Fatalf("dropped %v, want %v", got, want)
			}
		}
	}
	// 9,100 held > 9,000: the biggest (4,000) brings it to 5,100 ≤ 7,500.
	charge(100, 4000, 200, 3000, 300, 1500)
	expect(1)
	// The other big ones end on their own: 600 held. Then 8,500 more in holders of 1,000 or
	// less: 1,600 must go, so the two biggest (1,000 and 990), never the small ones.
	accounts[3].Release()
	accounts[5].Release()
	charge(1000, 990, 980, 970, 960, 950, 940, 930, 780)
	expect(6, 7)
	if b.Dropped(PollQueue) != 3 || b.Dropped(WSQueue) != 0 {
		t.Fatalf("dropped counters %d/%d", b.Dropped(PollQueue), b.Dropped(WSQueue))
	}
	// Nothing else goes: the next charge below the line wakes no drop.
	if !accounts[0].Add(10) {
		t.Fatal("charge refused")
	}
	select {
	case i := <-dropped:
		t.Fatalf("holder %d dropped below the line", i)
	case <-time.After(50 * time.Millisecond): // nothing is expected: a short look
	}
	if b.Used() != 7120 || b.Reclaims() < 2 {
		t.Fatalf("used %d (want 7120), %d reclaims", b.Used(), b.Reclaims())
	}
}

// TestConcurrentAccounting: many goroutines charging and giving back leave the books exact.
func TestConcurrentAccounting(t *testing.T) {
	b := New(1 << 30)
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			a := b.NewAccount(WSPartial, func() {})
			for i := 0; i < 2000; i++ {
				a.Add(int64(i % 97))
				if i%3 == 0 {
					a.Add(-int64(i % 97))
				}
			}
			a.Release()
		}()
	}
	wg.Wait()
	if b.Used() != 0 || len(b.holders) != 0 {
		t.Fatalf("used %d, %d holders after every account was released", b.Used(), len(b.holders))
	}
}

func TestSystemMemory(t *testing.T) {
	if m := SystemMemory(); m <= 0 {
		t.Fatalf("system memory %d", m)
	}
	if DefaultLimit() <= 0 || DefaultLimit() > SystemMemory() {
		t.Fatalf("default %d of %d", DefaultLimit(), SystemMemory())
	}
	if readLimit("/nonexistent") != 0 {
		t.Fatal("missing file has a limit")
	}
}
