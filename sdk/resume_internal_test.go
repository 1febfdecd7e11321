package sdk

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"testing"
)

// offlineClient is a client whose signaling connection is down: relays only queue.
func offlineClient(t *testing.T) (*Client, *[]error) {
	t.Helper()
	var errs []error
	c := &Client{
		log:     slog.New(slog.NewTextHandler(io.Discard, nil)),
		peers:   map[string]*Peer{},
		pending: map[string]*pendingPeer{},
		opts:    Options{OnError: func(_ *Peer, err error) { errs = append(errs, err) }},
	}
	c.ctx, c.stop = context.WithCancel(context.Background())
	t.Cleanup(func() {
		c.stop()
		c.stopPending()
		c.wg.Wait()
	})
	return c, &errs
}

func queued(c *Client) []string {
	c.outMu.Lock()
	defer c.outMu.Unlock()
	var s []string
	for _, f := range c.out {
		s = append(s, f.target+":"+string(f.data))
	}
	return s
}

func id(n string) json.RawMessage { return json.RawMessage(`"` + n + `"`) }

// Acks take a relay and every one written before it out of the outbox (they join the recent
// ones); ids that are not relays', or not in the outbox, are left alone.
func TestOutboxAcks(t *testing.T) {
	c, _ := offlineClient(t)
	for _, d := range []string{"1", "2", "3", "4"} {
		if err := c.send("message", "p", json.RawMessage(d)); err != nil {
			t.Fatal(err)
		}
	}
	for _, bad := range []string{`"ice-servers"`, `"r"`, `"rx"`, `7`, `"r-1"`, `null`} {
		c.acked(json.RawMessage(bad))
	}
	if got := queued(c); len(got) != 4 {
		t.Fatalf("after foreign ids: %v", got)
	}
	c.acked(id("r2"))
	if got := queued(c); !slices.Equal(got, []string{"p:3", "p:4"}) {
		t.Fatalf("after acking r2: %v", got)
	}
	c.acked(id("r9"))
	if got := queued(c); len(got) != 2 {
		t.Fatalf("after acking r9, never sent: %v", got)
	}
	c.acked(id("r4"))
	if got := queued(c); len(got) != 0 || c.outBytes != 0 {
		t.Fatalf("after acking r4: %v, %d bytes", got, c.outBytes)
	}
	if n := len(c.recent); n != 4 {
		t.Fatalf("%d recent relays, want 4", n)
	}
}

// A peer restored where it is now (peer-joined resumed) gets the recent acked relays to it
// again, first, with their ids and as retries: its former server may not have written them.
// At most maxRecent are kept.
func TestOutboxRecentAgainForRestoredPeer(t *testing.T) {
	c, _ := offlineClient(t)
	c.peers["p"] = &Peer{c: c, id: "p"}
	for i := range maxRecent + 10 {
		target := "p"
		if i%2 == 1 {
			target = "q"
		}
		if err := c.send("message", target, i); err != nil {
			t.Fatal(err)
		}
	}
	c.acked(id(fmt.Sprintf("r%d", maxRecent+10)))
	if len(c.recent) != maxRecent {
		t.Fatalf("%d recent, want %d", len(c.recent), maxRecent)
	}
	if err := c.send("message", "p", json.RawMessage(`"new"`)); err != nil {
		t.Fatal(err)
	}
	c.peerBack(peerInfo{ID: "p"}, true)
	got := queued(c)
	if len(got) != 1+maxRecent/2 || got[0] != `p:"new"` {
		t.Fatalf("queued after p was restored: %v", got)
	}
	c.outMu.Lock()
	defer c.outMu.Unlock()
	for i, f := range c.out[1:] {
		if want := uint64(10 + 2*i + 1); f.n != want || !f.retry || f.target != "p" {
			t.Fatalf("again #%d: r%d retry %v to %s, want r%d retry to p", i, f.n, f.retry, f.target, want)
		}
	}
	if len(c.recent) != maxRecent/2 {
		t.Fatalf("%d recent left, want those to q", len(c.recent))
	}
}

// Relays to a peer a restored welcome left out are held here, and so are those sent before
// that met unknown-target; when the peer is back they all go, in the order first sent, with
// their ids, before later ones. A relay sent before the peer came back and refused after goes
// again once; for any other peer the error is reported.
func TestOutboxHoldsForPendingPeer(t *testing.T) {
	c, errs := offlineClient(t)
	c.peers["p"] = &Peer{c: c, id: "p"}
	c.resumeMs = 60_000
	if err := c.send("message", "p", json.RawMessage("1")); err != nil { // r1, in flight
		t.Fatal(err)
	}
	c.awaitPeer("p")
	for _, d := range []string{"2", "3"} { // r2, r3: held here
		if err := c.send("message", "p", json.RawMessage(d)); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.send("message", "q", json.RawMessage(`"x"`)); err != nil { // r4
		t.Fatal(err)
	}
	if got := queued(c); !slices.Equal(got, []string{"p:1", `q:"x"`}) {
		t.Fatalf("while p is away: %v", got)
	}
	unknown := &ServerError{Code: "unknown-target"}
	if !c.refused(id("r1"), unknown) {
		t.Fatal("r1 not ours")
	}
	if len(*errs) != 0 {
		t.Fatalf("reported while the peer is pending: %v", *errs)
	}
	if !c.peerBack(peerInfo{ID: "p", Name: "back"}, true) {
		t.Fatal("p not known")
	}
	if got := queued(c); !slices.Equal(got, []string{`q:"x"`, "p:1", "p:2", "p:3"}) {
		t.Fatalf("after p is back: %v", got)
	}
	c.outMu.Lock()
	for i, f := range c.out[1:] {
		if f.n != uint64(i+1) {
			t.Errorf("relay %d went again as r%d", i+1, f.n)
		}
	}
	c.outMu.Unlock()
	if c.Peer("p").Name() != "back" {
		t.Fatal("peer-joined for a known peer did not update it")
	}
	if err := c.send("message", "p", json.RawMessage("5")); err != nil { // r5, after
		t.Fatal(err)
	}
	// r4 to q is a plain error.
	c.refused(id("r4"), unknown)
	if len(*errs) != 1 {
		t.Fatalf("errors %v, want the one for q", *errs)
	}
	// r1 went again already: refused again now that p is back, reported; so is r5.
	c.refused(id("r1"), unknown)
	c.refused(id("r5"), unknown)
	if len(*errs) != 3 {
		t.Fatalf("errors %v, want three", *errs)
	}
}

// A full outbox refuses relays instead of growing.
func TestOutboxBounded(t *testing.T) {
	c, _ := offlineClient(t)
	for i := range maxOutFrames {
		if err := c.send("ice-candidate", "p", i); err != nil {
			t.Fatalf("relay %d: %v", i, err)
		}
	}
	if err := c.send("ice-candidate", "p", 0); !errors.Is(err, ErrSendQueueFull) {
		t.Fatalf("relay over the bound: %v", err)
	}
}
