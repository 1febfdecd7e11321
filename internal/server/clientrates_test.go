package server_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/switchboard-rtc/switchboard/internal/config"
	"github.com/switchboard-rtc/switchboard/protocol"
)

// dialAs opens a native WebSocket from the loopback address src with the extra request
// headers hdr (a proxy's forwarding headers), as a test client.
func dialAs(t *testing.T, ts *testServer, src string, hdr http.Header) *client {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	c, resp, err := websocket.Dial(ctx, ts.ws, &websocket.DialOptions{HTTPClient: fromAddr(t, src), HTTPHeader: hdr})
	if err != nil {
		status := 0
		if resp != nil {
			status = resp.StatusCode
		}
		t.Fatalf("dial from %s (%v): %v (status %d)", src, hdr, err, status)
	}
	c.SetReadLimit(1 << 20)
	cl := &client{t: t, c: c, msgs: make(chan msg, 1024), errc: make(chan error, 1)}
	go cl.readLoop()
	t.Cleanup(func() { c.CloseNow() })
	return cl
}

// joinOrRefused sends a join with id and returns the welcome, or the rate-limited error.
func (c *client) joinOrRefused(room, id string) (welcome msg, refused bool) {
	c.t.Helper()
	c.send(map[string]any{"type": "join", "room": room, "id": id})
	m := c.next()
	switch {
	case m.Type == "welcome":
		c.id = m.peerID()
		return m, false
	case m.Type == "error" && m.Code == "rate-limited" && string(m.ID) == `"`+id+`"` && m.Message != "":
		return m, true
	}
	c.t.Fatalf("join %s: %s, want a welcome or rate-limited under its id", id, m.Raw)
	return msg{}, false
}

func (c *client) leave() {
	c.t.Helper()
	c.send(map[string]any{"type": "leave", "id": "bye"})
	c.expect("ack")
}

// retryJoin joins room again and again, a client's backoff of 100 ms between attempts,
// until it is welcomed, and returns how many attempts were refused; it fails the test after
// waitFor.
func (c *client) retryJoin(room string) int {
	c.t.Helper()
	deadline := time.Now().Add(waitFor)
	for i := 0; ; i++ {
		if _, refused := c.joinOrRefused(room, fmt.Sprint("retry-", i)); !refused {
			return i
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("still refused after %v", waitFor)
		}
		<-time.After(100 * time.Millisecond)
	}
}

// TestJoinsPerClient: on a real server one address (native WebSocket, then Socket.IO) joins
// faster than --joins-per-client and gets rate-limited under the join's id while its
// connection stays open, and joins once it has waited; meanwhile two clients of another
// address connect, join and relay; the refusals show in /metrics.
func TestJoinsPerClient(t *testing.T) {
	ts := startServer(t, func(c *config.Config) {
		c.JoinsPerClient = 1
		c.JoinBurstPerClient = 3
	})
	hog := dialAs(t, ts, "127.0.0.2", nil)
	refusals := 0
	for i := 0; refusals == 0; i++ {
		if i == 20 {
			t.Fatal("20 joins in a row from one address, none refused at 1/s, burst 3")
		}
		if _, refused := hog.joinOrRefused("a", fmt.Sprint("j", i)); refused {
			refusals++
			continue
		}
		hog.leave()
	}
	// The connection is still open and answers.
	hog.sendRaw(`{"type":"ice-servers","id":"open?"}`)
	if m := hog.expectError("not-joined"); string(m.ID) != `"open?"` {
		t.Fatalf("after the refusal: %s", m.Raw)
	}

	// Another address is served meanwhile: two peers join and signal.
	a := dialAs(t, ts, "127.0.0.3", nil)
	b := dialAs(t, ts, "127.0.0.3", nil)
	a.join("b", nil)
	b.join("b", nil)
	a.expect("peer-joined")
	a.send(map[string]any{"type": "offer", "target": b.id, "data": map[string]string{"sdp": "x"}})
	if m := b.expect("offer"); m.From != a.id {
		t.Fatalf("offer from %q, want %q", m.From, a.id)
	}

	// The hog's retries get in once a token is back.
	refusals += hog.retryJoin("a")

	// Socket.IO from a third address: its joins are charged the same way.
	sio := sioFrom(t, ts, "127.0.0.4")
	sioRefused := false
	for i := 0; !sioRefused; i++ {
		if i == 20 {
			t.Fatal("20 Socket.IO joins in a row, none refused")
		}
		sio.write(fmt.Sprintf(`42%d["join",{"room":"s"}]`, i))
		ack := sio.read()
		switch {
		case strings.HasPrefix(ack, fmt.Sprintf(`43%d[{"type":"welcome"`, i)):
			sio.write(`42["leave"]`)
		case strings.HasPrefix(ack, fmt.Sprintf(`43%d[{"type":"error"`, i)) && strings.Contains(ack, `"code":"rate-limited"`):
			sioRefused = true
		default:
			t.Fatalf("join ack %q", ack)
		}
	}
	refusals++

	for _, name := range []string{`switchboard_joins_refused_total{reason="rate"}`, `switchboard_errors_total{code="rate-limited"}`} {
		if got := metricValue(t, ts, name); got != fmt.Sprint(refusals) {
			t.Errorf("%s = %s, want %d", name, got, refusals)
		}
	}
	if v := metricValue(t, ts, `switchboard_client_table_entries{table="joins"}`); v != "3" {
		t.Errorf(`switchboard_client_table_entries{table="joins"} = %s, want 3 (three addresses)`, v)
	}
}

// sioFrom opens a Socket.IO WebSocket session from the loopback address src and CONNECTs it
// to the main namespace (the lobby, on an open server).
func sioFrom(t *testing.T, ts *testServer, src string) *sioConn {
	t.Helper()
	s := sioOpen(t, ts, src)
	s.write("40")
	if got := s.read(); !strings.HasPrefix(got, "40{") {
		t.Fatalf("CONNECT reply %q", got)
	}
	return s
}

// sioOpen opens a Socket.IO WebSocket session from src, not yet connected.
func sioOpen(t *testing.T, ts *testServer, src string) *sioConn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	url := "ws" + strings.TrimPrefix(ts.base, "http") + "/socket.io/?EIO=4&transport=websocket"
	c, _, err := websocket.Dial(ctx, url, &websocket.DialOptions{HTTPClient: fromAddr(t, src)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.CloseNow() })
	s := &sioConn{t: t, c: c}
	if open := s.read(); !strings.HasPrefix(open, "0{") {
		t.Fatalf("open packet %q", open)
	}
	return s
}

// TestSocketIOConnectRateLimited: with access tokens a Socket.IO CONNECT is a join; over its
// client's rate it gets CONNECT_ERROR rate-limited and its session stays open, so the same
// session CONNECTs once a token is back.
func TestSocketIOConnectRateLimited(t *testing.T) {
	ts := startAuthServer(t, func(c *config.Config) {
		c.JoinsPerClient = 0.5
		c.JoinBurstPerClient = 1
	})
	connect := func(s *sioConn, who string) string {
		s.write(`40{"token":"` + token(t, key1, who, "sales", nil) + `"}`)
		return s.read()
	}
	first := sioOpen(t, ts, "127.0.0.2")
	if got := connect(first, "alice"); !strings.HasPrefix(got, "40{") {
		t.Fatalf("first CONNECT: %q", got)
	}
	second := sioOpen(t, ts, "127.0.0.2")
	got := connect(second, "bob")
	var ce struct {
		Data struct{ Code string } `json:"data"`
	}
	if err := json.Unmarshal([]byte(got[2:]), &ce); err != nil || ce.Data.Code != "rate-limited" {
		t.Fatalf("CONNECT_ERROR %q, want code rate-limited", got)
	}
	deadline := time.Now().Add(waitFor)
	for {
		<-time.After(100 * time.Millisecond) // a client's backoff
		got = connect(second, "bob")
		if strings.HasPrefix(got, "40{") {
			break
		}
		if !strings.HasPrefix(got, "44{") || time.Now().After(deadline) {
			t.Fatalf("CONNECT again on the same session: %q", got)
		}
	}
	// Both sockets are peers of the room: bob's welcome reached him, alice heard of him.
	if w := second.read(); !strings.Contains(w, `"type":"welcome"`) {
		t.Fatalf("bob's welcome: %q", w)
	}
	for i := 0; ; i++ {
		p := first.read() // alice's own welcome, then bob's arrival
		if strings.Contains(p, `"peer-joined"`) {
			break
		}
		if i == 2 {
			t.Fatalf("alice: %q, want peer-joined", p)
		}
	}
}

// iceOf returns the ICE servers of a welcome or ice-servers frame, and whether they carry
// TURN credentials.
func iceOf(t *testing.T, raw string) ([]protocol.ICEServer, bool) {
	t.Helper()
	var v struct {
		ICEServers []protocol.ICEServer `json:"iceServers"`
	}
	if err := json.Unmarshal([]byte(raw), &v); err != nil {
		t.Fatalf("iceServers of %s: %v", raw, err)
	}
	for _, s := range v.ICEServers {
		if s.Username != "" || s.Credential != "" {
			return v.ICEServers, true
		}
		for _, u := range s.URLs {
			if strings.HasPrefix(u, "turn") {
				return v.ICEServers, true
			}
		}
	}
	return v.ICEServers, false
}

// TestTURNCredentialsPerClient: past --turn-credentials-per-client an address's welcomes and
// ice-servers answers carry STUN only (counted), while another address still gets credentials
// and allocates a relay on the embedded TURN server with them (a real pion/turn client).
func TestTURNCredentialsPerClient(t *testing.T) {
	ts := startServer(t, func(c *config.Config) {
		c.TURN = true
		c.TURNSecret = "shared"
		c.TURNCredentialsPerClient = 2
	})
	hog := dialAs(t, ts, "127.0.0.2", nil)
	if _, ok := iceOf(t, hog.join("r", nil).Raw); !ok {
		t.Fatal("first welcome without TURN credentials")
	}
	hog.sendRaw(`{"type":"ice-servers","id":"1"}`)
	if _, ok := iceOf(t, hog.expect("ice-servers").Raw); !ok {
		t.Fatal("first refresh without TURN credentials")
	}
	hog.sendRaw(`{"type":"ice-servers","id":"2"}`)
	servers, ok := iceOf(t, hog.expect("ice-servers").Raw)
	if ok || len(servers) != 1 || !strings.HasPrefix(servers[0].URLs[0], "stun:") {
		t.Fatalf("refresh past the cap: %+v, want the STUN server only", servers)
	}
	again := dialAs(t, ts, "127.0.0.2", nil)
	if _, ok := iceOf(t, again.join("r", nil).Raw); ok {
		t.Fatal("a new connection of the same address got credentials past the cap")
	}

	other := dialAs(t, ts, "127.0.0.3", nil)
	servers, ok = iceOf(t, other.join("r", nil).Raw)
	if !ok {
		t.Fatal("another address got no TURN credentials")
	}
	var user, pass string
	for _, s := range servers {
		if s.Username != "" {
			user, pass = s.Username, s.Credential
		}
	}
	if err := turnAllocate(t, ts, user, pass); err != nil {
		t.Fatalf("the other address's credentials do not allocate: %v", err)
	}
	if v := metricValue(t, ts, `switchboard_turn_refused_total{reason="credentials"}`); v != "2" {
		t.Errorf(`switchboard_turn_refused_total{reason="credentials"} = %q, want 2`, v)
	}
	if v := metricValue(t, ts, `switchboard_client_table_entries{table="turn-credentials"}`); v != "2" {
		t.Errorf(`switchboard_client_table_entries{table="turn-credentials"} = %q, want 2`, v)
	}
}
