package sioserver

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/switchboard-rtc/switchboard/internal/auth"
	"github.com/switchboard-rtc/switchboard/internal/hub"
	"github.com/switchboard-rtc/switchboard/protocol"
)

// The raw Socket.IO protocol with access tokens: CONNECT's auth payload, CONNECT_ERROR, the
// welcome after the CONNECT answer, no lobby, kicks. The official client's view is in
// auth_node_test.go.

var testKey = auth.Key{ID: "k1", Secret: []byte("0123456789abcdef0123456789abcdef")}

// startAuthServer starts a test server whose hub checks tokens signed with testKey, as
// `serve --api-keys` does (internal/server/access.go).
func startAuthServer(t *testing.T, hcfg hub.Config) *testServer {
	t.Helper()
	hcfg.Authorize = testAuthorizer(t, nil)
	return startServer(t, hcfg, nil)
}

// testAuthorizer checks tokens signed with testKey as internal/server/access.go does, at the
// hub's time, or at clock's when set.
func testAuthorizer(tb testing.TB, clock func() time.Time) hub.Authorizer {
	tb.Helper()
	v, err := auth.NewVerifier([]auth.Key{testKey})
	if err != nil {
		tb.Fatal(err)
	}
	return func(token, room string, now time.Time) (hub.Grant, *protocol.Error) {
		if clock != nil {
			now = clock()
		}
		c, aerr := v.Verify(token, now)
		if aerr != nil {
			return hub.Grant{}, aerr.Protocol()
		}
		r, aerr := c.RoomFor(room)
		if aerr != nil {
			return hub.Grant{}, aerr.Protocol()
		}
		return hub.Grant{Identity: c.Subject, Room: r, Name: c.Name, Meta: c.MetaObject(), TURN: c.TURN}, nil
	}
}

// mint returns a token for identity in room, valid for a minute, changed by mod.
func mint(t *testing.T, identity, room string, mod func(*auth.Claims)) string {
	t.Helper()
	c := auth.NewClaims(identity, room, time.Now(), time.Minute)
	if mod != nil {
		mod(c)
	}
	tok, err := auth.Mint(testKey, c)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func authPayload(token string) string { return `{"token":"` + token + `"}` }

// pollOpen opens a polling session and returns its request URL.
func pollOpen(t *testing.T, base string) string {
	t.Helper()
	st, body := httpDo(t, "GET", base+"socket.io/?EIO=4&transport=polling", "", nil)
	var o struct{ SID string }
	if st != 200 || !strings.HasPrefix(body, "0{") || json.Unmarshal([]byte(body[1:]), &o) != nil {
		t.Fatalf("handshake: %d %q", st, body)
	}
	return base + "socket.io/?EIO=4&transport=polling&sid=" + o.SID
}

// pollGet sends a polling GET and returns its status and packets, without the server's pings
// (which a slow test may get before anything else).
func pollGet(t *testing.T, u string) (int, []string) {
	t.Helper()
	st, body := httpDo(t, "GET", u, "", nil)
	var pkts []string
	for _, p := range strings.Split(body, "\x1e") {
		if p != "2" {
			pkts = append(pkts, p)
		}
	}
	return st, pkts
}

// connectError is CONNECT_ERROR's payload as socket.io-client reads it.
type connectError struct {
	Message string
	Data    struct{ Code string }
}

// parseConnectError checks that pkt is CONNECT_ERROR for the main namespace and returns it.
func parseConnectError(t *testing.T, pkt string) connectError {
	t.Helper()
	var ce connectError
	if !strings.HasPrefix(pkt, "44{") || json.Unmarshal([]byte(pkt[2:]), &ce) != nil {
		t.Fatalf("got %q, want CONNECT_ERROR 44{...}", pkt)
	}
	if ce.Message == "" || strings.ContainsAny(ce.Message, "\r\n") || ce.Data.Code == "" {
		t.Fatalf("CONNECT_ERROR %q: want a one-line message and data.code", pkt)
	}
	return ce
}

// closeStatus reads until the server closes the WebSocket and returns the close frame's code
// and reason.
func (c *wsClient) closeStatus() (websocket.StatusCode, string) {
	c.t.Helper()
	for {
		_, err := c.readErr(5 * time.Second)
		if err == nil {
			continue
		}
		var ce websocket.CloseError
		if !errors.As(err, &ce) {
			c.t.Fatalf("want a close frame, got %v", err)
		}
		return ce.Code, ce.Reason
	}
}

// TestConnectAuthPayloads: each CONNECT auth payload over polling and over WebSocket, with
// the answer the protocol gives: CONNECT + welcome, CONNECT_ERROR {message, data.code} then
// the session closed, or (a payload that is not an object) a protocol error.
func TestConnectAuthPayloads(t *testing.T) {
	// No recovery: the sockets Disconnect drops must be gone at once, not kept for one.
	ts := startAuthServer(t, hub.Config{ResumeGrace: -1})
	const valid = "VALID" // a fresh token per run, each for its own identity
	for _, tt := range []struct {
		name, pkt string
		code      string // CONNECT_ERROR's data.code; "" = connected; "!" = protocol error
	}{
		{"no payload", "40", "token-missing"},
		{"empty object", "40{}", "token-missing"},
		{"null token", `40{"token":null}`, "token-missing"},
		{"empty token", `40{"token":""}`, "token-missing"},
		{"number token", `40{"token":5}`, "token-invalid"},
		{"object token", `40{"token":{"a":1}}`, "token-invalid"},
		{"garbage token", `40{"token":"a.b.c"}`, "token-invalid"},
		{"room not a string", `40{"token":"` + valid + `","room":5}`, "bad-field"},
		{"bad room name", `40{"token":"` + valid + `","room":"a b"}`, "bad-field"},
		{"other room", `40{"token":"` + valid + `","room":"s"}`, "room-not-granted"},
		{"valid", "40" + authPayload(valid), ""},
		{"valid, its room named", `40{"token":"` + valid + `","room":"r"}`, ""},
		{"valid, empty room", `40{"token":"` + valid + `","room":""}`, ""},
		{"valid, other fields", `40{"x":[1],"token":"` + valid + `"}`, ""},
		{"string payload", `40"` + valid + `"`, "!"},
		{"array payload", `40["` + valid + `"]`, "!"},
		{"null payload", `40null`, "!"},
		{"truncated payload", `40{"token":`, "!"},
	} {
		t.Run("polling/"+tt.name, func(t *testing.T) {
			before := errorCount(ts, tt.code)
			u := pollOpen(t, ts.url)
			st, body := httpDo(t, "POST", u, strings.Replace(tt.pkt, valid, mint(t, t.Name(), "r", nil), 1), nil)
			if tt.code == "!" {
				if st != http.StatusBadRequest {
					t.Fatalf("POST: %d %q, want 400", st, body)
				}
				if st, _ := httpDo(t, "GET", u, "", nil); st != http.StatusBadRequest {
					t.Fatalf("GET after a protocol error: %d, want 400", st)
				}
				return
			}
			if st != 200 || body != "ok" {
				t.Fatalf("POST: %d %q", st, body)
			}
			st, pkts := pollGet(t, u)
			body = strings.Join(pkts, "\x1e")
			if st != 200 {
				t.Fatalf("GET: %d %q", st, body)
			}
			if tt.code != "" {
				ce := parseConnectError(t, pkts[0])
				if ce.Data.Code != tt.code || len(pkts) != 2 || pkts[1] != "1" {
					t.Fatalf("got %q, want CONNECT_ERROR %s then the close packet", body, tt.code)
				}
				if errorCount(ts, tt.code) <= before {
					t.Errorf("errors{code=%s} did not grow", tt.code)
				}
				if st, _ := httpDo(t, "GET", u, "", nil); st != http.StatusBadRequest {
					t.Fatalf("GET after the close: %d, want 400 (session gone)", st)
				}
				return
			}
			id := checkConnected(t, pkts, "r")
			if st, b := httpDo(t, "POST", u, "41", nil); st != 200 || b != "ok" {
				t.Fatalf("DISCONNECT: %d %q", st, b)
			}
			if ts.sio.Disconnect(protocol.PeerID(id)) != true {
				t.Fatal("session gone after the socket's DISCONNECT; want the Engine.IO session kept")
			}
		})
		t.Run("websocket/"+tt.name, func(t *testing.T) {
			c := dialSIO(t, ts.url, nil)
			c.write(strings.Replace(tt.pkt, valid, mint(t, t.Name(), "r", nil), 1))
			switch tt.code {
			case "!":
				if code, _ := c.closeStatus(); code != websocket.StatusPolicyViolation {
					t.Fatalf("closed with %v, want 1008", code)
				}
			case "":
				checkConnected(t, []string{c.read(), c.read()}, "r")
			default:
				if ce := parseConnectError(t, c.read()); ce.Data.Code != tt.code {
					t.Fatalf("code %q, want %q", ce.Data.Code, tt.code)
				}
				if code, reason := c.closeStatus(); code != websocket.StatusPolicyViolation || reason != tt.code {
					t.Fatalf("closed with %v %q, want 1008 %q", code, reason, tt.code)
				}
			}
		})
	}
	waitFor(t, 5*time.Second, "every socket to be gone", func() bool {
		rooms, _ := ts.hub.Rooms(context.Background())
		return len(rooms) == 0 && ts.hub.Stats().SocketIOSessions.Load() == 0
	})
	if n := ts.sio.lobbyLen(); n != 0 {
		t.Errorf("lobby has %d sockets; with tokens there is none", n)
	}
}

// checkConnected checks the CONNECT answer then the welcome event for room, and returns the
// socket id.
func checkConnected(t *testing.T, pkts []string, room string) string {
	t.Helper()
	var c struct{ SID string }
	if len(pkts) < 2 || !strings.HasPrefix(pkts[0], "40{") || json.Unmarshal([]byte(pkts[0][2:]), &c) != nil || c.SID == "" {
		t.Fatalf("got %q, want the CONNECT answer then the welcome", pkts)
	}
	var args []json.RawMessage
	var w struct {
		Type, Peer, Room string
		ICEServers       []json.RawMessage
	}
	if !strings.HasPrefix(pkts[1], "42[") || json.Unmarshal([]byte(pkts[1][2:]), &args) != nil || len(args) != 2 ||
		string(args[0]) != `"welcome"` || json.Unmarshal(args[1], &w) != nil {
		t.Fatalf("got %q, want a welcome event", pkts[1])
	}
	if w.Type != "welcome" || w.Peer != c.SID || w.Room != room || w.ICEServers == nil {
		t.Fatalf("welcome %s: want peer %s (the socket id) in room %s", args[1], c.SID, room)
	}
	return c.SID
}

// TestAuthNoLobbyJoinLeave: with tokens, join is refused (the socket is in its token's room),
// leave ends the socket, a second CONNECT answers the same socket id without a new welcome,
// and a socket reaches only its own room's peers.
func TestAuthNoLobbyJoinLeave(t *testing.T) {
	ts := startAuthServer(t, hub.Config{})
	a := dialSIO(t, ts.url, nil)
	a.write("40" + authPayload(mint(t, "alice", "r", nil)))
	aID := checkConnected(t, []string{a.read(), a.read()}, "r")
	b := dialSIO(t, ts.url, nil)
	b.write("40" + authPayload(mint(t, "bob", "r", nil)))
	bID := checkConnected(t, []string{b.read(), b.read()}, "r")
	if pj := a.expectEvent("42"); string(pj[0]) != `"peer-joined"` || !strings.Contains(string(pj[1]), `"identity":"bob"`) {
		t.Fatalf("a got %s, want peer-joined of bob", pj)
	}
	c := dialSIO(t, ts.url, nil)
	c.write("40" + authPayload(mint(t, "carol", "s", nil)))
	checkConnected(t, []string{c.read(), c.read()}, "s")

	c.write(`421["offer",{"target":"` + aID + `"}]`)
	if e := c.expectEvent("431"); !strings.Contains(string(e[0]), `"code":"unknown-target"`) {
		t.Fatalf("other room: %s", e[0])
	}
	b.write(`42["offer",{"target":"` + aID + `","sdp":"x"}]`)
	if e := a.expectEvent("42"); string(e[1]) != `{"target":"`+aID+`","sdp":"x","from":"`+bID+`"}` {
		t.Fatalf("same room: %s", e)
	}
	a.write(`422["join",{"room":"s"}]`)
	if e := a.expectEvent("432"); !strings.Contains(string(e[0]), `"code":"already-joined"`) {
		t.Fatalf("join: %s", e[0])
	}
	a.write(`40{"token":"nonsense"}`)
	if got := a.read(); !strings.HasPrefix(got, `40{"sid":"`+aID+`","pid":"`) {
		t.Fatalf("second CONNECT: %q, want the same socket id", got)
	}
	a.write(`423["leave"]`)
	if e := a.expectEvent("433"); string(e[0]) != `{"type":"ack","id":3}` {
		t.Fatalf("leave: %s", e[0])
	}
	if got := a.read(); got != "41" {
		t.Fatalf("after leave: %q, want DISCONNECT", got)
	}
	if code, reason := a.closeStatus(); code != websocket.StatusNormalClosure || reason != "left" {
		t.Fatalf("closed with %v %q, want 1000 left", code, reason)
	}
	if pl := b.expectEvent("42"); string(pl[0]) != `"peer-left"` || !strings.Contains(string(pl[1]), `"reason":"left"`) {
		t.Fatalf("b got %s, want peer-left", pl)
	}
	// The client's DISCONNECT leaves the room; the next CONNECT authenticates again.
	b.write("41")
	b.write("40" + authPayload(mint(t, "bob", "r", nil)))
	pkts := []string{b.read(), b.read()}
	if id := checkConnected(t, pkts, "r"); id == bID || !strings.Contains(pkts[1], `"peers":[]`) {
		t.Fatalf("CONNECT after DISCONNECT: %q; want a new socket id, alone in the room", pkts)
	}
	b.write("41")
	b.write("40")
	if ce := parseConnectError(t, b.read()); ce.Data.Code != "token-missing" {
		t.Fatalf("CONNECT without a token after DISCONNECT: %+v", ce)
	}
}

// TestAuthRoomFull: a join refused for a reason of its own (here the room is full) is a
// CONNECT_ERROR too.
func TestAuthRoomFull(t *testing.T) {
	ts := startAuthServer(t, hub.Config{MaxPeersPerRoom: 1})
	a := dialSIO(t, ts.url, nil)
	a.write("40" + authPayload(mint(t, "a", "small", nil)))
	checkConnected(t, []string{a.read(), a.read()}, "small")
	b := dialSIO(t, ts.url, nil)
	b.write("40" + authPayload(mint(t, "b", "small", nil)))
	if ce := parseConnectError(t, b.read()); ce.Data.Code != "room-full" {
		t.Fatalf("got %+v, want room-full", ce)
	}
	// The same identity takes its own place over, full room or not.
	c := dialSIO(t, ts.url, nil)
	c.write("40" + authPayload(mint(t, "a", "small", nil)))
	checkConnected(t, []string{c.read(), c.read()}, "small")
}

// TestAuthKicks: the hub ending a Socket.IO socket's presence — identity takeover, removal,
// room closed — sends the error event with the code, then DISCONNECT, then closes the
// Engine.IO session: a close frame on WebSocket, the close packet on polling.
func TestAuthKicks(t *testing.T) {
	ts := startAuthServer(t, hub.Config{})
	ctx := context.Background()
	// The kicked socket never hears its successor join: the bus leaves it out.
	wantKicked := func(t *testing.T, pkts []string, code string) {
		t.Helper()
		if len(pkts) > 0 && strings.HasPrefix(pkts[0], `42["peer-joined"`) {
			t.Fatalf("the replaced socket heard its successor join: %q", pkts)
		}
		if len(pkts) < 2 || !strings.HasPrefix(pkts[0], `42["error",{"type":"error","code":"`+code+`"`) || pkts[1] != "41" {
			t.Fatalf("got %q, want the %s error event then DISCONNECT", pkts, code)
		}
	}
	t.Run("takeover/websocket", func(t *testing.T) {
		old := dialSIO(t, ts.url, nil)
		old.write("40" + authPayload(mint(t, "dave", "t1", nil)))
		checkConnected(t, []string{old.read(), old.read()}, "t1")
		nu := dialSIO(t, ts.url, nil)
		nu.write("40" + authPayload(mint(t, "dave", "t1", nil)))
		nuID := checkConnected(t, []string{nu.read(), nu.read()}, "t1")
		wantKicked(t, []string{old.read(), old.read()}, "replaced")
		if code, reason := old.closeStatus(); code != websocket.StatusPolicyViolation || reason != "replaced" {
			t.Fatalf("closed with %v %q, want 1008 replaced", code, reason)
		}
		peers, _ := ts.hub.Peers(ctx, "t1")
		if len(peers) != 1 || string(peers[0].Info.ID) != nuID {
			t.Fatalf("room t1 holds %v, want the new socket alone", peers)
		}
	})
	t.Run("takeover/polling", func(t *testing.T) {
		u := pollOpen(t, ts.url)
		httpDo(t, "POST", u, "40"+authPayload(mint(t, "erin", "t2", nil)), nil)
		_, pkts := pollGet(t, u)
		checkConnected(t, pkts, "t2")
		nu := dialSIO(t, ts.url, nil)
		nu.write("40" + authPayload(mint(t, "erin", "t2", nil)))
		checkConnected(t, []string{nu.read(), nu.read()}, "t2")
		var got []string
		for len(got) == 0 || got[len(got)-1] != "1" {
			st, pkts := pollGet(t, u)
			if st != 200 {
				t.Fatalf("GET: %d %q after %q, want the close packet", st, pkts, got)
			}
			got = append(got, pkts...)
		}
		wantKicked(t, got, "replaced")
		if st, _ := httpDo(t, "GET", u, "", nil); st != http.StatusBadRequest {
			t.Fatalf("GET after the close packet: %d, want 400", st)
		}
	})
	t.Run("takeover by a native peer, and of one", func(t *testing.T) {
		s := dialSIO(t, ts.url, nil)
		s.write("40" + authPayload(mint(t, "hal", "t4", nil)))
		checkConnected(t, []string{s.read(), s.read()}, "t4")
		nat := dialNative(t, ts.url)
		nat.send(`{"type":"join","token":"` + mint(t, "hal", "t4", nil) + `"}`)
		if w := nat.read(); unquote(t, w["type"]) != "welcome" {
			t.Fatalf("native got %v, want welcome", w)
		}
		wantKicked(t, []string{s.read(), s.read()}, "replaced")
		s2 := dialSIO(t, ts.url, nil)
		s2.write("40" + authPayload(mint(t, "hal", "t4", nil)))
		checkConnected(t, []string{s2.read(), s2.read()}, "t4")
		for {
			m := nat.read()
			if unquote(t, m["type"]) == "error" {
				if unquote(t, m["code"]) != "replaced" {
					t.Fatalf("native got %v, want error replaced", m)
				}
				break
			}
		}
	})
	t.Run("removed and room-closed", func(t *testing.T) {
		a := dialSIO(t, ts.url, nil)
		a.write("40" + authPayload(mint(t, "fay", "t3", nil)))
		aID := checkConnected(t, []string{a.read(), a.read()}, "t3")
		b := dialSIO(t, ts.url, nil)
		b.write("40" + authPayload(mint(t, "gus", "t3", nil)))
		checkConnected(t, []string{b.read(), b.read()}, "t3")
		a.read() // peer-joined
		if err := ts.hub.Remove(ctx, "t3", protocol.PeerID(aID)); err != nil {
			t.Fatal(err)
		}
		wantKicked(t, []string{a.read(), a.read()}, "removed")
		if code, _ := a.closeStatus(); code != websocket.StatusPolicyViolation {
			t.Fatalf("closed with %v, want 1008", code)
		}
		if pl := b.expectEvent("42"); !strings.Contains(string(pl[1]), `"reason":"removed"`) {
			t.Fatalf("b got %s, want peer-left removed", pl)
		}
		if n, err := ts.hub.CloseRoom(ctx, "t3"); err != nil || n != 1 {
			t.Fatalf("CloseRoom: %d, %v", n, err)
		}
		wantKicked(t, []string{b.read(), b.read()}, "room-closed")
		if code, _ := b.closeStatus(); code != websocket.StatusPolicyViolation {
			t.Fatalf("closed with %v, want 1008", code)
		}
	})
}

// errorCount returns how many errors with code (by name) the server counted.
func errorCount(ts *testServer, code string) uint64 {
	for c := range protocol.Code(protocol.NumCodes) {
		if c.String() == code {
			return ts.hub.Stats().Errors[c].Load()
		}
	}
	return 0
}

// TestAuthPayloadIgnoredWithoutKeys: an open server ignores the auth payload; the socket is in
// the lobby as before.
func TestAuthPayloadIgnoredWithoutKeys(t *testing.T) {
	ts := startServer(t, hub.Config{}, nil)
	u := pollOpen(t, ts.url)
	httpDo(t, "POST", u, `40{"token":"whatever","room":5}`, nil)
	_, pkts := pollGet(t, u)
	body := strings.Join(pkts, "\x1e")
	var c struct{ SID string }
	if !strings.HasPrefix(body, "40{") || json.Unmarshal([]byte(body[2:]), &c) != nil {
		t.Fatalf("got %q, want the CONNECT answer alone", body)
	}
	if !ts.sio.inLobby(protocol.PeerID(c.SID)) {
		t.Fatal("socket not in the lobby")
	}
}
