package sioserver_test

import (
	"bufio"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/switchboard-rtc/switchboard/internal/auth"
	"github.com/switchboard-rtc/switchboard/internal/config"
	"github.com/switchboard-rtc/switchboard/internal/sioserver"
	"github.com/switchboard-rtc/switchboard/internal/testserver"
)

// The official socket.io-client against the whole server (`serve --api-keys` with the
// embedded TURN on): the token matrix over polling and over WebSocket, identity takeover,
// and the seed's flow between token-authenticated sockets.

var nodeKey = auth.Key{ID: "sio-test", Secret: []byte("sio-test-secret-0123456789abcdef")}

func startKeyedServer(t *testing.T) string {
	t.Helper()
	return testserver.Start(t, func(c *config.Config) {
		c.APIKeys = []string{nodeKey.Spec()}
		c.TURN = true
	})
}

func mintWith(t *testing.T, k auth.Key, c *auth.Claims) string {
	t.Helper()
	tok, err := auth.Mint(k, c)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func claims(identity, room string, mod func(*auth.Claims)) *auth.Claims {
	c := auth.NewClaims(identity, room, time.Now(), time.Hour)
	if mod != nil {
		mod(c)
	}
	return c
}

// authCase is one client of the auth-matrix scenario.
type authCase struct {
	Name       string         `json:"name"`
	Auth       map[string]any `json:"auth"`
	Transports []string       `json:"transports"`
	code       string         // the connect_error's data.code; "" = connected
	room       string         // connected: the welcome's room
	turn       bool           // connected: the welcome has turn: URLs
}

// authResult is one line of the auth-matrix scenario.
type authResult struct {
	Name      string
	OK        bool
	Message   string
	Data      struct{ Code string }
	Opens     int
	Attempts  int
	Active    bool
	ID        string
	Transport string
	Welcome   struct {
		Type, Peer, Room string
		ICEServers       []struct{ URLs []string }
	}
}

// TestNodeClientTokenMatrix: every kind of token the issue lists, over polling and over
// WebSocket, as socket.io-client 4.8 reports it: connect and the welcome event, or a
// connect_error whose message and data.code say why, after which the client does not try
// again. The refusals are counted by code in the errors metric.
func TestNodeClientTokenMatrix(t *testing.T) {
	url := startKeyedServer(t)
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	rs := jwt.NewWithClaims(jwt.SigningMethodRS256, claims("u-rs", "room1", nil))
	rs.Header["kid"] = nodeKey.ID
	rs256, err := rs.SignedString(rsaKey)
	if err != nil {
		t.Fatal(err)
	}
	b64 := base64.RawURLEncoding.EncodeToString
	payload, _ := json.Marshal(claims("u-none", "room1", nil))
	algNone := b64([]byte(`{"alg":"none","typ":"JWT","kid":"`+nodeKey.ID+`"}`)) + "." + b64(payload) + "."
	parts := strings.Split(mintWith(t, nodeKey, claims("u-tamper", "room1", nil)), ".")
	body, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	tampered := parts[0] + "." + b64([]byte(strings.Replace(string(body), `"room":"room1"`, `"room":"room2"`, 1))) + "." + parts[2]
	if tampered == strings.Join(parts, ".") {
		t.Fatal("the tampered token is the original")
	}

	var cases []authCase
	tok := func(k auth.Key, room string, mod func(*auth.Claims)) func(string) map[string]any {
		return func(id string) map[string]any {
			return map[string]any{"token": mintWith(t, k, claims(id, room, mod))}
		}
	}
	fixed := func(token string) func(string) map[string]any {
		return func(string) map[string]any { return map[string]any{"token": token} }
	}
	withRoom := func(mk func(string) map[string]any, room string) func(string) map[string]any {
		return func(id string) map[string]any {
			a := mk(id)
			a["room"] = room
			return a
		}
	}
	otherKey := auth.Key{ID: nodeKey.ID, Secret: []byte("another-secret-0123456789abcdefgh")}
	for _, tr := range []string{"polling", "websocket"} {
		for _, c := range []struct {
			name string
			auth func(id string) map[string]any // the auth payload for a client of identity id
			code string                         // the connect_error's data.code; "" = connected
			room string                         // connected: the welcome's room
			turn bool                           // connected: the welcome has turn: URLs
		}{
			{"valid", tok(nodeKey, "room1", nil), "", "room1", true},
			{"missing", func(string) map[string]any { return map[string]any{} }, "token-missing", "", false},
			{"expired", tok(nodeKey, "room1", func(c *auth.Claims) {
				c.IssuedAt = jwt.NewNumericDate(time.Now().Add(-2 * time.Hour))
				c.ExpiresAt = jwt.NewNumericDate(time.Now().Add(-time.Hour))
			}), "token-expired", "", false},
			{"not yet valid", tok(nodeKey, "room1", func(c *auth.Claims) {
				c.NotBefore = jwt.NewNumericDate(time.Now().Add(time.Hour))
			}), "token-not-yet-valid", "", false},
			{"wrong key", tok(otherKey, "room1", nil), "token-invalid", "", false},
			{"unknown kid", tok(auth.Key{ID: "nobody", Secret: nodeKey.Secret}, "room1", nil), "token-invalid", "", false},
			{"alg none", fixed(algNone), "token-invalid", "", false},
			{"RS256", fixed(rs256), "token-invalid", "", false},
			{"tampered payload", fixed(tampered), "token-invalid", "", false},
			{"another room", withRoom(tok(nodeKey, "room1", nil), "room2"), "room-not-granted", "", false},
			{"prefix grant", withRoom(tok(nodeKey, "team-*", nil), "team-"+tr), "", "team-" + tr, true},
			{"prefix grant, no room named", tok(nodeKey, "team-*", nil), "room-not-granted", "", false},
			{"no join grant", tok(nodeKey, "room1", func(c *auth.Claims) { c.Join = false }), "join-not-granted", "", false},
			{"no turn grant", tok(nodeKey, "room1", func(c *auth.Claims) { c.TURN = false }), "", "room1", false},
		} {
			name := tr + "/" + c.name
			cases = append(cases, authCase{Name: name, Auth: c.auth(name), Transports: []string{tr}, code: c.code, room: c.room, turn: c.turn})
		}
	}
	spec, _ := json.Marshal(map[string]any{"cases": cases})
	lines := sioserver.NodeScenarioSpec(t, url, "auth-matrix", string(spec), nil)
	for _, l := range lines {
		t.Logf("%s", l)
	}
	got := map[string]authResult{}
	for _, l := range lines {
		var r authResult
		if err := json.Unmarshal(l, &r); err != nil {
			t.Fatalf("%q: %v", l, err)
		}
		got[r.Name] = r
	}
	refused := map[string]int{}
	for _, c := range cases {
		r, ok := got[c.Name]
		switch {
		case !ok:
			t.Errorf("%s: no result", c.Name)
		case c.code != "":
			refused[c.code]++
			if r.OK || r.Data.Code != c.code || r.Message == "" || strings.Contains(r.Message, "\n") {
				t.Errorf("%s: ok=%v connect_error %q (data.code %q); want data.code %q and a one-line message", c.Name, r.OK, r.Message, r.Data.Code, c.code)
			}
			if r.Attempts != 0 || r.Opens != 1 || r.Active {
				t.Errorf("%s: after the refusal %d reconnect attempts, %d opens, active=%v; want none, 1, false", c.Name, r.Attempts, r.Opens, r.Active)
			}
		default:
			if !r.OK || r.Welcome.Type != "welcome" || r.Welcome.Peer != r.ID || r.Welcome.Room != c.room || r.Transport != c.Transports[0] {
				t.Errorf("%s: %+v; want connected over %s, welcome for socket.id in room %s", c.Name, r, c.Transports[0], c.room)
			}
			var turn, stun bool
			for _, s := range r.Welcome.ICEServers {
				for _, u := range s.URLs {
					turn = turn || strings.HasPrefix(u, "turn:")
					stun = stun || strings.HasPrefix(u, "stun:")
				}
			}
			if turn != c.turn || !stun {
				t.Errorf("%s: welcome ICE servers %+v: turn URLs %v (want %v), stun %v (want true)", c.Name, r.Welcome.ICEServers, turn, c.turn, stun)
			}
		}
	}
	metrics := scrape(t, url)
	for code, n := range refused {
		if m := metrics[`switchboard_errors_total{code="`+code+`"}`]; m != n {
			t.Errorf("errors_total{code=%q} = %d, want %d", code, m, n)
		}
	}
}

// scrape returns the server's metrics without labels or with labels, as "name{labels}" → value.
func scrape(t *testing.T, url string) map[string]int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", url+"/metrics", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	out := map[string]int{}
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		name, val, ok := strings.Cut(sc.Text(), " ")
		if !ok || strings.HasPrefix(name, "#") {
			continue
		}
		if f, err := strconv.ParseFloat(val, 64); err == nil {
			out[name] = int(f)
		}
	}
	return out
}

// TestNodeClientIdentityTakeover: a second socket with the same identity takes the room
// over; the first hears the error event "replaced", then disconnect "io server disconnect",
// and does not reconnect. Each transport for the first socket.
func TestNodeClientIdentityTakeover(t *testing.T) {
	url := startKeyedServer(t)
	for _, tr := range []string{"polling", "websocket"} {
		t.Run(tr, func(t *testing.T) {
			id := "takeover-" + tr
			spec, _ := json.Marshal(map[string]any{
				"first":  map[string]any{"auth": map[string]any{"token": mintWith(t, nodeKey, claims(id, "takeover", nil))}, "transports": []string{tr}},
				"second": map[string]any{"auth": map[string]any{"token": mintWith(t, nodeKey, claims(id, "takeover", nil))}},
			})
			lines := sioserver.NodeScenarioSpec(t, url, "auth-takeover", string(spec), nil)
			var r struct {
				First, Second, Code, Message, Reason string
				Attempts, Opens                      int
				Active, SecondConnected              bool
			}
			if err := json.Unmarshal(lines[len(lines)-1], &r); err != nil {
				t.Fatal(err)
			}
			if r.Code != "replaced" || r.Message == "" || r.Reason != "io server disconnect" || r.Attempts != 0 || r.Opens != 0 || r.Active || !r.SecondConnected {
				t.Errorf("first socket: %+v; want error replaced, disconnect io server disconnect, no reconnection, the second connected", r)
			}
		})
	}
}

// TestNodeClientSeedFlowWithTokens: the seed's code, which never joins, works between two
// sockets whose tokens grant the same room (polling+upgrade and WebSocket); a socket of
// another room (polling) reaches neither (unknown-target).
func TestNodeClientSeedFlowWithTokens(t *testing.T) {
	url := startKeyedServer(t)
	tok := func(id, room string) map[string]any {
		return map[string]any{"token": mintWith(t, nodeKey, claims(id, room, nil))}
	}
	spec, _ := json.Marshal(map[string]any{"a": tok("a", "seed"), "b": tok("b", "seed"), "c": tok("c", "elsewhere")})
	sioserver.NodeScenarioSpec(t, url, "auth-seed", string(spec), nil)
	m := scrape(t, url)
	if n := m[`switchboard_messages_relayed_total{type="ice-candidate"}`]; n != 40 {
		t.Errorf("relayed ice-candidates %d, want 40", n)
	}
}
