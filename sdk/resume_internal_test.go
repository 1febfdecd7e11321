package sdk

import (
	"context"
	"encoding/json"
	"errors"
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

// Acks take a relay and every earlier one out of the outbox; ids that are not relays' are
// left alone.
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
	if got := queued(c); len(got) != 0 || c.outBytes != 0 {
		t.Fatalf("after acking r9: %v, %d bytes", got, c.outBytes)
	}
}

// unknown-target for a peer a restored welcome left out holds the relay; when the peer is
// back, the held relays go again in order, before later ones; a relay sent before the peer
// came back and refused after goes again too; for any other peer the error is reported.
func TestOutboxHoldsForPendingPeer(t *testing.T) {
	c, errs := offlineClient(t)
	c.peers["p"] = &Peer{c: c, id: "p"}
	c.resumeMs = 60_000
	c.awaitPeer("p")
	for _, d := range []string{"1", "2", "3"} {
		if err := c.send("message", "p", json.RawMessage(d)); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.send("message", "q", json.RawMessage(`"x"`)); err != nil {
		t.Fatal(err)
	}
	unknown := &ServerError{Code: "unknown-target"}
	for _, n := range []string{"r1", "r2"} {
		if !c.refused(id(n), unknown) {
			t.Fatalf("%s not ours", n)
		}
	}
	if len(*errs) != 0 {
		t.Fatalf("reported while the peer is pending: %v", *errs)
	}
	if !c.peerBack(peerInfo{ID: "p", Name: "back"}, true) {
		t.Fatal("p not known")
	}
	if got := queued(c); !slices.Equal(got, []string{"p:3", `q:"x"`, "p:1", "p:2"}) {
		t.Fatalf("after p is back: %v", got)
	}
	if c.Peer("p").Name() != "back" {
		t.Fatal("peer-joined for a known peer did not update it")
	}
	// r3 was sent before p was back: it goes again. r4 to q is a plain error.
	c.refused(id("r3"), unknown)
	c.refused(id("r4"), unknown)
	if got := queued(c); !slices.Equal(got, []string{"p:1", "p:2", "p:3"}) {
		t.Fatalf("after r3 and r4 were refused: %v", got)
	}
	if len(*errs) != 1 {
		t.Fatalf("errors %v, want the one for q", *errs)
	}
	// Refused again now that p is back (and sent after): reported.
	c.refused(id("r5"), unknown)
	if len(*errs) != 2 {
		t.Fatalf("errors %v, want a second", *errs)
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
