package natsbus

import (
	"bytes"
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	natsserver "github.com/nats-io/nats-server/v2/server"
)

func startNATSJetStream(t *testing.T) *natsserver.Server {
	t.Helper()
	s, err := natsserver.NewServer(&natsserver.Options{
		Host: "127.0.0.1", Port: natsserver.RANDOM_PORT, NoLog: true, NoSigs: true,
		JetStream: true, StoreDir: t.TempDir(),
	})
	if err != nil {
		t.Fatal(err)
	}
	go s.Start()
	if !s.ReadyForConnections(waitFor) {
		t.Fatal("nats not ready")
	}
	return s
}

// Three nodes asking at once get the same 32-byte secret: the first creates it, the others
// read it.
func TestResumeSecretSharedByNodes(t *testing.T) {
	ns := startNATSJetStream(t)
	defer stopNATS(ns)
	bs := []*Bus{newBus(t, ns.ClientURL(), time.Minute), newBus(t, ns.ClientURL(), time.Minute), newBus(t, ns.ClientURL(), time.Minute)}
	for _, b := range bs {
		defer b.Close()
	}
	waitNodes(t, bs...)
	// JetStream's first bucket on a fresh server, asked by three nodes at once, has taken
	// more than 5 s on a loaded machine.
	ctx, cancel := context.WithTimeout(context.Background(), 4*waitFor)
	defer cancel()
	secrets := make([][]byte, len(bs))
	var wg sync.WaitGroup
	for i, b := range bs {
		wg.Go(func() {
			s, err := b.ResumeSecret(ctx)
			if err != nil {
				t.Errorf("node %d: %v", i, err)
			}
			secrets[i] = s
		})
	}
	wg.Wait()
	if len(secrets[0]) != secretBytes {
		t.Fatalf("secret of %d bytes", len(secrets[0]))
	}
	for i := range secrets {
		if !bytes.Equal(secrets[i], secrets[0]) {
			t.Fatalf("node %d has another secret", i)
		}
	}
	if again, err := bs[2].ResumeSecret(ctx); err != nil || !bytes.Equal(again, secrets[0]) {
		t.Fatalf("second read: %v", err)
	}
}

// A token id is spent once across the cluster, whatever node spends it, even concurrently.
func TestLedgerSingleUseAcrossNodes(t *testing.T) {
	ns := startNATSJetStream(t)
	defer stopNATS(ns)
	bs := []*Bus{newBus(t, ns.ClientURL(), time.Minute), newBus(t, ns.ClientURL(), time.Minute), newBus(t, ns.ClientURL(), time.Minute)}
	for _, b := range bs {
		defer b.Close()
	}
	waitNodes(t, bs...)
	ctx, cancel := context.WithTimeout(context.Background(), 4*waitFor) // JetStream on a loaded machine: see above
	defer cancel()
	ledgers := make([]*Ledger, len(bs))
	for i, b := range bs {
		l, err := b.Ledger(ctx)
		if err != nil {
			t.Fatal(err)
		}
		ledgers[i] = l
	}
	exp := time.Now().Add(time.Minute)
	for _, jti := range []string{"AbC-_0123456789xyzXYZ", "not/a key:char", ""} {
		var won atomic.Int32
		var wg sync.WaitGroup
		for i := range 9 {
			wg.Go(func() {
				ok, err := ledgers[i%3].Spend(ctx, jti, exp)
				if err != nil {
					t.Errorf("spend %q: %v", jti, err)
				}
				if ok {
					won.Add(1)
				}
			})
		}
		wg.Wait()
		if n := won.Load(); n != 1 {
			t.Fatalf("token %q spent %d times, want once", jti, n)
		}
	}
	if ok, err := ledgers[0].Spend(ctx, "expired", time.Now().Add(-time.Second)); ok || err != nil {
		t.Fatalf("spend of an expired token: %v %v", ok, err)
	}
}

// Without JetStream both say so, in an error a server can show.
func TestKVWithoutJetStream(t *testing.T) {
	ns := startNATS(t)
	defer stopNATS(ns)
	b := newBus(t, ns.ClientURL(), time.Minute)
	defer b.Close()
	waitNodes(t, b)
	ctx, cancel := context.WithTimeout(context.Background(), 4*waitFor)
	defer cancel()
	if _, err := b.ResumeSecret(ctx); !errors.Is(err, ErrNoJetStream) {
		t.Fatalf("secret without JetStream: %v", err)
	}
	if _, err := b.Ledger(ctx); !errors.Is(err, ErrNoJetStream) {
		t.Fatalf("ledger without JetStream: %v", err)
	}
}

func TestLedgerKey(t *testing.T) {
	if k := ledgerKey("abc_-9"); k != "t.abc_-9" {
		t.Fatalf("key %q", k)
	}
	if a, b := ledgerKey("a.b"), ledgerKey("a/b"); a == b || len(a) != 66 {
		t.Fatalf("hashed keys %q %q", a, b)
	}
}

// A spent token's mark goes with its expiry (per-key TTL): the ledger does not grow forever.
func TestLedgerMarkExpires(t *testing.T) {
	ns := startNATSJetStream(t)
	defer stopNATS(ns)
	b := newBus(t, ns.ClientURL(), time.Minute)
	defer b.Close()
	waitNodes(t, b)
	ctx, cancel := context.WithTimeout(context.Background(), 4*waitFor)
	defer cancel()
	l, err := b.Ledger(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if ok, err := l.Spend(ctx, "short", time.Now().Add(500*time.Millisecond)); !ok || err != nil {
		t.Fatalf("first spend: %v %v", ok, err)
	}
	if ok, _ := l.Spend(ctx, "short", time.Now().Add(time.Minute)); ok {
		t.Fatal("spent twice")
	}
	waitUntil(t, "the mark to expire", func() bool {
		_, err := l.kv.Get(ctx, ledgerKey("short"))
		return err != nil
	})
}
