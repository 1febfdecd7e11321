package server_test

import (
	"encoding/json"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/switchboard-rtc/switchboard/internal/config"
	"github.com/switchboard-rtc/switchboard/internal/turnserver"
	"github.com/switchboard-rtc/switchboard/protocol"
)

// TestWelcomeCarriesMintedTURNCredentials: with the embedded TURN on, each welcome lists the
// configured servers first, then the embedded server's stun: and turn: URLs with TURN REST
// credentials minted for that peer under the configured secret and TTL.
func TestWelcomeCarriesMintedTURNCredentials(t *testing.T) {
	ts := startServer(t, func(c *config.Config) {
		c.ICEServers = []protocol.ICEServer{{URLs: []string{"stun:stun.test:3478"}}}
		c.TURN = true
		c.TURNSecret = "shared"
		c.TURNTTL = 5 * time.Minute
		c.TURNPublicIP = "192.0.2.10"
		c.TURNMaxAllocations = 50 // below the default per-user and per-IP quotas: they are capped
	})
	port := ts.TURN().Addr().Port
	if v := metricValue(t, ts, "switchboard_turn_allocations"); v != "0" {
		t.Errorf("switchboard_turn_allocations = %q, want 0", v)
	}
	if v := metricValue(t, ts, "switchboard_turn_denied_total"); v != "0" {
		t.Errorf("switchboard_turn_denied_total = %q, want 0", v)
	}
	itoa := strconv.Itoa
	for range 2 {
		a := dial(t, ts)
		w := a.join("r", nil)
		var full struct {
			Peer       string               `json:"peer"`
			ICEServers []protocol.ICEServer `json:"iceServers"`
		}
		if err := json.Unmarshal([]byte(w.Raw), &full); err != nil || len(full.ICEServers) != 3 {
			t.Fatalf("iceServers: %s (%v)", w.Raw, err)
		}
		host := "192.0.2.10:" + itoa(port)
		if full.ICEServers[0].URLs[0] != "stun:stun.test:3478" || full.ICEServers[1].URLs[0] != "stun:"+host ||
			strings.Join(full.ICEServers[2].URLs, " ") != "turn:"+host+"?transport=udp turn:"+host+"?transport=tcp" {
			t.Fatalf("iceServers: %s", w.Raw)
		}
		turn := full.ICEServers[2]
		exp, user, err := turnserver.ParseUsername(turn.Username)
		if err != nil || user != full.Peer {
			t.Fatalf("username %q: user %q, %v; want the peer id %q", turn.Username, user, err, full.Peer)
		}
		if ttl := time.Until(exp); ttl < 4*time.Minute || ttl > 5*time.Minute+time.Second {
			t.Errorf("credentials expire in %v, want about 5m", ttl)
		}
		if turn.Credential != turnserver.Password([]byte("shared"), turn.Username) {
			t.Error("credential is not HMAC-SHA1(secret, username)")
		}
	}
}

// TestWelcomeMintsForExternalTURN: with the embedded server off and turn-urls set (a coturn
// with use-auth-secret), the welcome carries those URLs with credentials under the shared
// secret.
func TestWelcomeMintsForExternalTURN(t *testing.T) {
	ts := startServer(t, func(c *config.Config) {
		c.TURN = false
		c.TURNSecret = "coturn-secret"
		c.TURNURLs = []string{"turn:turn.example.org:3478?transport=udp", "turns:turn.example.org:5349?transport=tcp"}
	})
	if ts.TURN() != nil {
		t.Fatal("embedded TURN runs with turn=false")
	}
	if v := metricValue(t, ts, "switchboard_turn_allocations"); v != "" {
		t.Errorf("TURN metrics without a TURN server: %q", v)
	}
	a := dial(t, ts)
	w := a.join("r", nil)
	var full struct {
		Peer       string               `json:"peer"`
		ICEServers []protocol.ICEServer `json:"iceServers"`
	}
	if err := json.Unmarshal([]byte(w.Raw), &full); err != nil || len(full.ICEServers) != 1 || len(full.ICEServers[0].URLs) != 2 {
		t.Fatalf("iceServers: %s (%v)", w.Raw, err)
	}
	s := full.ICEServers[0]
	if _, user, err := turnserver.ParseUsername(s.Username); err != nil || user != full.Peer ||
		s.Credential != turnserver.Password([]byte("coturn-secret"), s.Username) {
		t.Fatalf("credentials %q / %q for peer %s", s.Username, s.Credential, full.Peer)
	}
}

// TestICEServersRequest: a joined client asks for fresh ICE servers and gets the same list a
// welcome would carry now, with credentials for its own peer id, under its request id; before
// a join the request is refused.
func TestICEServersRequest(t *testing.T) {
	ts := startServer(t, func(c *config.Config) {
		c.TURN = true
		c.TURNSecret = "shared"
		c.ICEServers = []protocol.ICEServer{{URLs: []string{"stun:stun.test:3478"}}}
	})
	a := dial(t, ts)
	a.sendRaw(`{"type":"ice-servers","id":"early"}`)
	a.expectError("not-joined")
	w := a.join("r", nil)
	a.sendRaw(`{"type":"ice-servers","id":"fresh"}`)
	m := a.expect("ice-servers")
	var got struct {
		ID         string               `json:"id"`
		ICEServers []protocol.ICEServer `json:"iceServers"`
	}
	if err := json.Unmarshal([]byte(m.Raw), &got); err != nil || got.ID != "fresh" || len(got.ICEServers) != 3 {
		t.Fatalf("ice-servers: %s (%v)", m.Raw, err)
	}
	if got.ICEServers[0].URLs[0] != "stun:stun.test:3478" {
		t.Errorf("static server missing: %s", m.Raw)
	}
	turn := got.ICEServers[2]
	if _, user, err := turnserver.ParseUsername(turn.Username); err != nil || user != w.peerID() ||
		turn.Credential != turnserver.Password([]byte("shared"), turn.Username) {
		t.Errorf("credentials %q / %q for peer %s", turn.Username, turn.Credential, w.peerID())
	}
}

// TURN credentials minted by one node authenticate at every node that shares the secret: a
// peer welcomed on node a allocates a relay on node b's embedded TURN (a real pion/turn
// client), and one minted under another secret is refused there.
func TestClusterTURNCredentialsWorkOnEveryNode(t *testing.T) {
	n := startNATS(t)
	turnOn := func(secret string) func(*config.Config) {
		return func(c *config.Config) { c.TURN, c.TURNSecret = true, secret }
	}
	a := startNode(t, n, turnOn("cluster-secret"))
	b := startNode(t, n, turnOn("cluster-secret"))
	other := startNode(t, n, turnOn("another-secret"))
	waitCluster(t, a, b, other)

	c := dial(t, a)
	w := c.join("r", nil)
	var full struct {
		ICEServers []protocol.ICEServer `json:"iceServers"`
	}
	if err := json.Unmarshal([]byte(w.Raw), &full); err != nil {
		t.Fatal(err)
	}
	var user, pass string
	for _, s := range full.ICEServers {
		if s.Username != "" {
			user, pass = s.Username, s.Credential
		}
	}
	if user == "" {
		t.Fatalf("no TURN credentials in %s", w.Raw)
	}
	allocate := func(ts *testServer) error { return turnAllocate(t, ts, user, pass) }
	if err := allocate(b); err != nil {
		t.Fatalf("node a's credentials refused by node b: %v", err)
	}
	if err := allocate(other); err == nil {
		t.Fatal("a node with another secret accepted the credentials")
	}
}
