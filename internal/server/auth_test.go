package server_test

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/golang-jwt/jwt/v5"
	"github.com/pion/turn/v5"

	"github.com/switchboard-rtc/switchboard/internal/auth"
	"github.com/switchboard-rtc/switchboard/internal/config"
	"github.com/switchboard-rtc/switchboard/internal/server"
	"github.com/switchboard-rtc/switchboard/internal/testenv"
	"github.com/switchboard-rtc/switchboard/protocol"
)

var (
	key1 = auth.Key{ID: "app1", Secret: []byte("secret-one-secret-one-secret-one-1")}
	key2 = auth.Key{ID: "app2", Secret: []byte("secret-two-secret-two-secret-two-2")}
)

// startAuthServer runs a server with two API keys (a rotation in progress).
func startAuthServer(t *testing.T, mod func(*config.Config)) *testServer {
	t.Helper()
	return startServer(t, func(c *config.Config) {
		c.APIKeys = []string{key1.Spec(), key2.Spec()}
		if mod != nil {
			mod(c)
		}
	})
}

// token mints a token with key for claims changed by mod from a one-hour join grant.
func token(t testing.TB, key auth.Key, identity, room string, mod func(*auth.Claims)) string {
	t.Helper()
	c := auth.NewClaims(identity, room, time.Now(), time.Hour)
	if mod != nil {
		mod(c)
	}
	s, err := auth.Mint(key, c)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func b64url(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }

// TestTokenMatrixNative: every way a token can be wrong is refused with its own code, then the
// connection is closed (1008, the code as reason); the refusals are counted by code.
func TestTokenMatrixNative(t *testing.T) {
	ts := startAuthServer(t, nil)
	valid := token(t, key1, "alice", "sales", nil)
	parts := strings.Split(valid, ".")
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	rs := jwt.NewWithClaims(jwt.SigningMethodRS256, auth.NewClaims("alice", "sales", time.Now(), time.Hour))
	rs.Header["kid"] = key1.ID
	rs256, err := rs.SignedString(rsaKey)
	if err != nil {
		t.Fatal(err)
	}
	payload, _ := base64.RawURLEncoding.DecodeString(parts[1])
	tampered := parts[0] + "." + b64url(strings.Replace(string(payload), `"sales"`, `"board"`, 1)) + "." + parts[2]
	cases := []struct {
		name  string
		room  string
		token string // "" sends none
		code  string
	}{
		{"missing", "sales", "", "token-missing"},
		{"expired", "sales", token(t, key1, "alice", "sales", func(c *auth.Claims) {
			c.ExpiresAt = jwt.NewNumericDate(time.Now().Add(-time.Minute))
		}), "token-expired"},
		{"not yet valid", "sales", token(t, key1, "alice", "sales", func(c *auth.Claims) {
			c.NotBefore = jwt.NewNumericDate(time.Now().Add(time.Hour))
		}), "token-not-yet-valid"},
		{"wrong key", "sales", token(t, auth.Key{ID: key1.ID, Secret: key2.Secret}, "alice", "sales", nil), "token-invalid"},
		{"unknown kid", "sales", token(t, auth.Key{ID: "gone", Secret: key1.Secret}, "alice", "sales", nil), "token-invalid"},
		{"alg none", "sales", b64url(`{"alg":"none","kid":"app1"}`) + "." + parts[1] + ".", "token-invalid"},
		{"RS256", "sales", rs256, "token-invalid"},
		{"tampered payload", "board", tampered, "token-invalid"},
		{"another room", "board", valid, "room-not-granted"},
		{"prefix grant, wrong room", "sales", token(t, key1, "alice", "team-*", nil), "room-not-granted"},
		{"no join grant", "sales", token(t, key1, "alice", "sales", func(c *auth.Claims) { c.Join = false }), "join-not-granted"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := dial(t, ts)
			req := map[string]any{"type": "join", "room": tc.room, "id": 1, "name": "Mallory"}
			if tc.token != "" {
				req["token"] = tc.token
			}
			c.send(req)
			m := c.expectError(tc.code)
			if string(m.ID) != "1" {
				t.Errorf("error does not echo the join id: %s", m.Raw)
			}
			for _, k := range []auth.Key{key1, key2} {
				if strings.Contains(m.Raw, string(k.Secret)) {
					t.Fatalf("error frame holds a secret: %s", m.Raw)
				}
			}
			c.expectClose(websocket.StatusPolicyViolation)
		})
	}
	for _, code := range []string{"token-missing", "token-expired", "token-not-yet-valid", "token-invalid", "room-not-granted", "join-not-granted"} {
		if v := metricValue(t, ts, `switchboard_errors_total{code="`+code+`"}`); v == "" || v == "0" {
			t.Errorf("errors_total{code=%q} = %q", code, v)
		}
	}
}

type joinedPeer struct {
	ID       string          `json:"id"`
	Identity string          `json:"identity"`
	Name     string          `json:"name"`
	Meta     json.RawMessage `json:"meta"`
}

// TestTokenGrants: the room, name, meta and identity come from the token, not from the
// client; a prefix grant takes the room the client names; the second key works as well
// (rotation); the token may come in the URL.
func TestTokenGrants(t *testing.T) {
	ts := startAuthServer(t, nil)
	a := dial(t, ts)
	a.send(map[string]any{"type": "join", "id": 1, "name": "Fake", "meta": map[string]any{"admin": true},
		"token": token(t, key1, "user-1", "sales", func(c *auth.Claims) {
			c.Name = "Alice"
			c.Meta = json.RawMessage(`{"role":"host"}`)
		})})
	w := a.expect("welcome")
	if w.Room != "sales" {
		t.Fatalf("room %q, want the token's: %s", w.Room, w.Raw)
	}
	b := dial(t, ts)
	bw := b.join("sales", map[string]any{"token": token(t, key2, "user-2", "sales", nil)}).Raw
	var seen struct {
		Peers []joinedPeer `json:"peers"`
	}
	_ = json.Unmarshal([]byte(bw), &seen)
	if len(seen.Peers) != 1 || seen.Peers[0].Identity != "user-1" || seen.Peers[0].Name != "Alice" || string(seen.Peers[0].Meta) != `{"role":"host"}` {
		t.Fatalf("welcome peers %s: want the token's identity, name and meta", bw)
	}
	pj := a.expect("peer-joined")
	var p joinedPeer
	_ = json.Unmarshal(pj.Peer, &p)
	if p.Identity != "user-2" {
		t.Fatalf("peer-joined %s: no identity", pj.Raw)
	}
	// A prefix grant: the client names the room.
	c := dial(t, ts)
	if m := c.join("team-red", map[string]any{"token": token(t, key1, "user-3", "team-*", nil)}); m.Room != "team-red" {
		t.Fatalf("prefix grant joined %q", m.Room)
	}
	// The token in the URL.
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	conn, _, err := websocket.Dial(ctx, ts.ws+"?access_token="+token(t, key1, "user-4", "sales", nil), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.CloseNow()
	if err := conn.Write(ctx, websocket.MessageText, []byte(`{"type":"join","id":7}`)); err != nil {
		t.Fatal(err)
	}
	_, frame, err := conn.Read(ctx)
	if err != nil || !strings.Contains(string(frame), `"type":"welcome"`) || !strings.Contains(string(frame), `"room":"sales"`) {
		t.Fatalf("join with the URL's token: %s %v", frame, err)
	}
}

// TestIdentityTakeover: a second join with the same identity takes over; the first connection
// gets "replaced" and a close, the room sees the old id leave with reason replaced, and the
// old resume token is dead.
func TestIdentityTakeover(t *testing.T) {
	ts := startAuthServer(t, func(c *config.Config) { c.MaxPeers = 2 })
	other := dial(t, ts)
	other.join("sales", map[string]any{"token": token(t, key1, "bob", "sales", nil)})
	first := dial(t, ts)
	w1 := first.join("sales", map[string]any{"token": token(t, key1, "alice", "sales", nil)})
	other.expect("peer-joined")
	// The room is full (max 2): the takeover is admitted anyway.
	second := dial(t, ts)
	w2 := second.join("sales", map[string]any{"token": token(t, key1, "alice", "sales", nil)})
	if w2.peerID() == w1.peerID() {
		t.Fatal("the takeover got the old id")
	}
	first.expectError("replaced")
	first.expectClose(websocket.StatusPolicyViolation)
	joined := other.expect("peer-joined")
	left := other.expect("peer-left")
	if joined.peerID() != w2.peerID() || left.peerID() != w1.peerID() || left.Reason != "replaced" {
		t.Fatalf("room saw %s then %s", joined.Raw, left.Raw)
	}
	// The old presence cannot be resumed (bob makes room for the attempt first).
	other.sendRaw(`{"type":"leave","id":"bye"}`)
	other.expect("ack")
	again := dial(t, ts)
	m := again.join("sales", map[string]any{"resume": w1.Resume, "token": token(t, key1, "carol", "sales", nil)})
	if m.Resumed || m.peerID() == w1.peerID() {
		t.Fatalf("the replaced presence was resumed: %s", m.Raw)
	}
}

// TestTURNGrant: the welcome of a token without the turn grant has no TURN credentials, on
// join and on refresh; with it, both have them.
func TestTURNGrant(t *testing.T) {
	ts := startAuthServer(t, func(c *config.Config) {
		c.TURN = true
		c.TURNSecret = "shared-turn-secret"
	})
	hasTURN := func(raw string) bool {
		var v struct {
			ICEServers []protocol.ICEServer `json:"iceServers"`
		}
		if err := json.Unmarshal([]byte(raw), &v); err != nil || len(v.ICEServers) == 0 {
			t.Fatalf("iceServers: %s (%v)", raw, err)
		}
		for _, s := range v.ICEServers {
			for _, u := range s.URLs {
				if strings.HasPrefix(u, "turn") {
					return true
				}
			}
			if s.Username != "" || s.Credential != "" {
				return true
			}
		}
		return false
	}
	for _, grant := range []bool{true, false} {
		c := dial(t, ts)
		w := c.join("sales", map[string]any{"token": token(t, key1, fmt.Sprint("u-", grant), "sales", func(c *auth.Claims) { c.TURN = grant })})
		if hasTURN(w.Raw) != grant {
			t.Errorf("turn grant %v: welcome %s", grant, w.Raw)
		}
		// With the grant the welcome's credentials allocate; without, the best a client can
		// do is guess a password for its own peer id, and the relay refuses it.
		user, pass := fmt.Sprintf("%d:%s", time.Now().Add(time.Hour).Unix(), w.peerID()), "guessed"
		var v struct {
			ICEServers []protocol.ICEServer `json:"iceServers"`
		}
		_ = json.Unmarshal([]byte(w.Raw), &v)
		for _, s := range v.ICEServers {
			if s.Username != "" {
				user, pass = s.Username, s.Credential
			}
		}
		if err := turnAllocate(t, ts, user, pass); (err == nil) != grant {
			t.Errorf("turn grant %v: allocation error %v", grant, err)
		}
		c.sendRaw(`{"type":"ice-servers","id":"r"}`)
		if m := c.expect("ice-servers"); hasTURN(m.Raw) != grant {
			t.Errorf("turn grant %v: refresh %s", grant, m.Raw)
		}
	}
}

// TestResumeNeedsNoToken: a lost connection's presence is taken back with its resume token
// alone, even after the access token expired.
func TestResumeNeedsNoToken(t *testing.T) {
	ts := startAuthServer(t, nil)
	b := dial(t, ts)
	b.join("sales", map[string]any{"token": token(t, key1, "bob", "sales", nil)})
	a := dial(t, ts)
	w := a.join("sales", map[string]any{"token": token(t, key1, "alice", "sales", nil)})
	b.expect("peer-joined")
	a.c.CloseNow() // no close frame: resumable
	c := dial(t, ts)
	c.send(map[string]any{"type": "join", "room": "sales", "id": "r", "resume": w.Resume})
	m := c.expect("welcome")
	if !m.Resumed || m.peerID() != w.peerID() {
		t.Fatalf("resume without a token: %s", m.Raw)
	}
	b.expectNothing(200 * time.Millisecond)
}

// turnAllocate allocates a relay on ts's embedded TURN server with a real pion/turn client and
// the given long-term credentials.
func turnAllocate(t *testing.T, ts *testServer, user, pass string) error {
	t.Helper()
	conn, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	addr := ts.TURN().Addr().String()
	cl, err := turn.NewClient(&turn.ClientConfig{
		STUNServerAddr: addr, TURNServerAddr: addr, Username: user, Password: pass,
		Conn: conn, RTO: 200 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	if err := cl.Listen(); err != nil {
		t.Fatal(err)
	}
	relay, err := cl.Allocate()
	if err != nil {
		return err
	}
	return relay.Close()
}

// TestSecretsNeverLeak: with debug logs on, refused and accepted joins, a takeover and a
// configuration error print no API secret in logs, metrics, error frames or error messages.
func TestSecretsNeverLeak(t *testing.T) {
	var logs testenv.Buffer
	cfg := config.Default()
	cfg.Listen, cfg.TURN = "127.0.0.1:0", false
	cfg.APIKeys = []string{key1.Spec(), key2.Spec()}
	srv, err := server.New(cfg, slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug})))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx) }()
	ts := &testServer{Server: srv, base: "http://" + srv.Addr().String(), ws: "ws://" + srv.Addr().String() + "/ws"}
	var frames []string
	for _, tok := range []string{
		token(t, key1, "alice", "sales", nil),
		token(t, key1, "alice", "sales", nil), // takes over
		token(t, auth.Key{ID: key1.ID, Secret: key2.Secret}, "eve", "sales", nil),
		token(t, key2, "eve", "sales", func(c *auth.Claims) { c.ExpiresAt = jwt.NewNumericDate(time.Now().Add(-time.Hour)) }),
	} {
		c := dial(t, ts)
		c.send(map[string]any{"type": "join", "room": "sales", "token": tok})
		frames = append(frames, c.next().Raw)
	}
	resp, err := http.Get(ts.base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	metrics, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	bad := config.Default()
	bad.APIKeys = []string{"id:" + string(key1.Secret[:20])} // too short: an error naming the key
	verr := bad.Validate()
	if verr == nil {
		t.Fatal("a 20-character secret was accepted")
	}
	everything := logs.String() + string(metrics) + strings.Join(frames, "\n") + verr.Error()
	for _, k := range []auth.Key{key1, key2} {
		if strings.Contains(everything, string(k.Secret[:16])) {
			t.Fatalf("a secret of %s leaked", k)
		}
	}
	if !strings.Contains(logs.String(), "peer removed by the server") {
		t.Fatalf("the takeover was not logged; the check saw no such line:\n%s", logs.String())
	}
}
