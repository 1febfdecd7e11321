package sdk_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/pion/webrtc/v4"

	"github.com/switchboard-rtc/switchboard/internal/auth"
	"github.com/switchboard-rtc/switchboard/internal/config"
	"github.com/switchboard-rtc/switchboard/internal/testserver"
	"github.com/switchboard-rtc/switchboard/internal/turnserver"
	"github.com/switchboard-rtc/switchboard/sdk"
)

// TestRelayOnlyThroughEmbeddedTURN: two peers that may only use relay candidates connect
// through the server's embedded TURN with the credentials from their welcomes, move data, and
// the selected candidate pair is relay on both ends.
func TestRelayOnlyThroughEmbeddedTURN(t *testing.T) {
	t.Run("open server", func(t *testing.T) { relayOnly(t, nil) })
	// With API keys, tokens that carry the turn grant get the credentials (without it the
	// relay refuses: internal/server TestTURNGrant).
	t.Run("tokens with turn", func(t *testing.T) {
		key := auth.NewKey()
		relayOnly(t, &key)
	})
}

func relayOnly(t *testing.T, key *auth.Key) {
	url := testserver.Start(t, func(c *config.Config) {
		c.TURN = true
		c.TURNAllowPeers = []string{"127.0.0.0/8"} // every relay address is 127.0.0.1 here
		if key != nil {
			c.APIKeys = []string{key.Spec()}
		}
	})
	tokenFor := func(identity string) string {
		if key == nil {
			return ""
		}
		tok, err := auth.Mint(*key, auth.NewClaims(identity, "relay", time.Now(), time.Hour))
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	const n = 200
	relay := webrtc.ICETransportPolicyRelay
	a := dial(t, url, "relay", sdk.Options{Name: "a", Token: tokenFor("a"), ICETransportPolicy: relay, OnPeer: echoOnChannels})
	got := make(chan string, n)
	b := dial(t, url, "relay", sdk.Options{Name: "b", Token: tokenFor("b"), ICETransportPolicy: relay, OnPeer: func(p *sdk.Peer) {
		dc, err := p.CreateDataChannel("bulk", nil)
		if err != nil {
			t.Error(err)
			return
		}
		dc.OnOpen(func() {
			for i := range n {
				_ = dc.SendText(fmt.Sprintf("%04d%01000d", i, 0))
			}
		})
		dc.OnMessage(func(m webrtc.DataChannelMessage) { got <- string(m.Data) })
	}})
	for i := range n {
		if msg := waitChan(t, got, "echo"); msg != fmt.Sprintf("echo:%04d%01000d", i, 0) {
			t.Fatalf("echo %d: got %.20q", i, msg)
		}
	}
	for _, c := range []*sdk.Client{a, b} {
		var other string
		if c == a {
			other = b.ID()
		} else {
			other = a.ID()
		}
		p := c.Peer(other)
		waitChan(t, p.Connected(), "connected")
		pair, err := p.PeerConnection().SCTP().Transport().ICETransport().GetSelectedCandidatePair()
		if err != nil || pair == nil {
			t.Fatalf("selected pair: %v", err)
		}
		t.Logf("%s selected pair: local %s %s:%d, remote %s %s:%d", c.ID(), pair.Local.Typ, pair.Local.Address, pair.Local.Port,
			pair.Remote.Typ, pair.Remote.Address, pair.Remote.Port)
		if pair.Local.Typ != webrtc.ICECandidateTypeRelay || pair.Remote.Typ != webrtc.ICECandidateTypeRelay {
			t.Errorf("selected pair %s ↔ %s, want relay ↔ relay", pair.Local.Typ, pair.Remote.Typ)
		}
	}
}

// TestRelayAfterCredentialsExpire: a relay-only peer stays in the room past the TTL of the
// credentials in its welcome; it refreshes them (ice-servers request), so when a second
// relay-only peer joins later, both allocate relays and connect.
func TestRelayAfterCredentialsExpire(t *testing.T) {
	url := testserver.Start(t, func(c *config.Config) {
		c.TURN = true
		c.TURNTTL = 3 * time.Second // whole seconds on the wire: 1 s would leave no margin
		c.TURNAllowPeers = []string{"127.0.0.0/8"}
	})
	relay := webrtc.ICETransportPolicyRelay
	a := dial(t, url, "late", sdk.Options{Name: "a", ICETransportPolicy: relay, OnPeer: echoOnChannels})
	first := a.ICEServers()
	exp, ok := turnExpiry(first)
	if !ok {
		t.Fatalf("welcome has no TURN credentials: %+v", first)
	}
	// Let the welcome's credentials expire: this test is about the passage of time.
	time.Sleep(time.Until(exp) + 1100*time.Millisecond)
	if now, _ := turnExpiry(a.ICEServers()); !now.After(exp) {
		t.Fatalf("credentials not refreshed: expiry %v, the welcome's %v", now, exp)
	}
	got := make(chan string, 1)
	dial(t, url, "late", sdk.Options{Name: "b", ICETransportPolicy: relay, OnPeer: func(p *sdk.Peer) {
		dc, err := p.CreateDataChannel("late", nil)
		if err != nil {
			t.Error(err)
			return
		}
		dc.OnOpen(func() { _ = dc.SendText("hi") })
		dc.OnMessage(func(m webrtc.DataChannelMessage) { got <- string(m.Data) })
	}})
	if msg := waitChan(t, got, "echo over the relay"); msg != "echo:hi" {
		t.Fatalf("got %q", msg)
	}
}

func turnExpiry(servers []webrtc.ICEServer) (time.Time, bool) {
	for _, s := range servers {
		if s.Username != "" {
			exp, _, err := turnserver.ParseUsername(s.Username)
			return exp, err == nil
		}
	}
	return time.Time{}, false
}
