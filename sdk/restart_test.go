package sdk_test

import (
	"strings"
	"testing"
	"time"

	"github.com/switchboard-rtc/switchboard/internal/config"
	"github.com/switchboard-rtc/switchboard/internal/server"
	"github.com/switchboard-rtc/switchboard/internal/testserver"
)

const restartSecret = "sdk-restart-test-secret-0123456789abcdef"

// runServer runs a server with a fixed resume secret on addr ("127.0.0.1:0" for any port) and
// returns it with a function that stops it (also run when the test ends).
func runServer(t *testing.T, addr string) (*server.Server, func()) {
	t.Helper()
	return testserver.RunStoppable(t, func(c *config.Config) {
		c.Listen = addr
		c.ShutdownTimeout = time.Second
		c.ResumeSecret = restartSecret
	})
}

// The server dies under a call (its connections go silent, then it stops) and a new one with
// the same resume secret starts on the same address. Both SDK peers come back restored from
// their tokens, one before the other: the first keeps the second as a peer while it is away
// (no leave), holds its relays to it and sends them when it is back; the pairs renegotiate
// (the welcome says events may be lost). Ids stay, the data channel never closes, and every
// numbered message, relayed or on the data channel, arrives once and in order.
func TestRestartRestoresFromTokens(t *testing.T) {
	srv1, stop1 := runServer(t, "127.0.0.1:0")
	addr := srv1.Addr().String()
	a, b := newSide("a"), newSide("b")
	a.proxy, b.proxy = testserver.NewCutter(t, addr), testserver.NewCutter(t, addr)
	a.client = dial(t, "http://"+a.proxy.Addr(), "restart", a.options(t, false))
	b.client = dial(t, "http://"+b.proxy.Addr(), "restart", b.options(t, true))
	idA, idB := a.client.ID(), b.client.ID()
	dcA, dcB := waitChan(t, a.dc, "a's channel open"), waitChan(t, b.dc, "b's channel open")
	pa, pb := connectedPeer(t, a.client, idB), connectedPeer(t, b.client, idA)
	tr := startTraffic(pa, pb, dcA, dcB)
	b.relayed.waitFor(t, 3)

	// The network path dies, then the server: nothing it says reaches the peers.
	a.proxy.Sever()
	b.proxy.Sever()
	stop1()
	runServer(t, addr)
	// a notices first and comes back alone; b a moment later.
	a.proxy.Cut()
	if !waitChan(t, a.reconnect, "a back") {
		t.Fatal("a joined anew instead of being restored")
	}
	// Let a relay to b while b is away: 300 ms of a's data channel, which runs on.
	mark := tr.sentNow("a→b relay")
	a.channel.waitFor(t, tr.sentNow("b→a channel")+6)
	if tr.sentNow("a→b relay") <= mark {
		t.Fatal("a relayed nothing while b was away")
	}
	b.proxy.Cut()
	if !waitChan(t, b.reconnect, "b back") {
		t.Fatal("b joined anew instead of being restored")
	}
	b.relayed.waitFor(t, mark+3) // a's relays while b was away, then live ones
	a.relayed.waitFor(t, tr.sentNow("b→a relay")+2)
	tr.check(t, a, b)
	if a.client.ID() != idA || b.client.ID() != idB {
		t.Fatalf("ids changed: a %s→%s, b %s→%s", idA, a.client.ID(), idB, b.client.ID())
	}
	for _, s := range []*side{a, b} {
		select {
		case l := <-s.left:
			t.Fatal(l)
		case c := <-s.dcClosed:
			t.Fatal(c)
		default:
		}
	}
	if a.client.Peer(idB) != pa || b.client.Peer(idA) != pb {
		t.Fatal("a peer object was replaced")
	}
	if !strings.HasPrefix(pa.PeerConnection().ConnectionState().String(), "connected") {
		t.Fatalf("a's connection to b is %s", pa.PeerConnection().ConnectionState())
	}
}
