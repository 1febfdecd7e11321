package server_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/switchboard-rtc/switchboard/internal/auth"
	"github.com/switchboard-rtc/switchboard/internal/config"
	"github.com/switchboard-rtc/switchboard/sdk/serverapi"
)

// The server API (/api/v1/) on real servers with real WebSocket peers; api_cluster_test.go runs
// the same operations across two cluster nodes.

// apiKeys adds a fresh API key to a server's config and returns it.
func apiKeys(key *auth.Key) func(*config.Config) {
	*key = auth.NewKey()
	return func(c *config.Config) { c.APIKeys = []string{key.Spec()} }
}

// grant describes a token to mint.
type grant struct {
	identity, room, name, meta string
	admin                      bool
	ttl                        time.Duration // default an hour; negative: expired
}

func mint(t *testing.T, key auth.Key, g grant) string {
	t.Helper()
	if g.ttl == 0 {
		g.ttl = time.Hour
	}
	c := auth.NewClaims(g.identity, g.room, time.Now(), g.ttl)
	c.Join = g.room != ""
	c.Name, c.Admin = g.name, g.admin
	if g.meta != "" {
		c.Meta = json.RawMessage(g.meta)
	}
	tok, err := auth.Mint(key, c)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func adminToken(t *testing.T, key auth.Key) string {
	return mint(t, key, grant{identity: "ops", admin: true})
}

// joinAs connects a WebSocket peer to ts and joins room with a token for identity.
func joinAs(t *testing.T, ts *testServer, key auth.Key, room, identity string) (*client, msg) {
	t.Helper()
	c := dial(t, ts)
	w := c.join(room, map[string]any{"token": mint(t, key, grant{identity: identity, room: room, name: strings.ToUpper(identity[:1]) + identity[1:]})})
	return c, w
}

// expectPeerJoined consumes a peer-joined for id.
func (c *client) expectPeerJoined(id string) {
	c.t.Helper()
	if m := c.expect("peer-joined"); m.peerID() != id {
		c.t.Fatalf("peer-joined for %s, want %s", m.Raw, id)
	}
}

// expectPeerLeft consumes a peer-left for id with reason.
func (c *client) expectPeerLeft(id, reason string) {
	c.t.Helper()
	if m := c.expect("peer-left"); m.peerID() != id || m.Reason != reason {
		c.t.Fatalf("got %s, want peer-left of %s with reason %s", m.Raw, id, reason)
	}
}

// expectRemoved checks c is sent the error code, skipping peer-left frames of others
// removed before it and peer-joined frames not consumed yet, and then closed with 1008 and
// reason code.
func (c *client) expectRemoved(code string) {
	c.t.Helper()
	for {
		m := c.next()
		if (m.Type == "peer-left" && m.Reason == code) || m.Type == "peer-joined" {
			continue
		}
		if m.Type != "error" || m.Code != code || m.Message == "" {
			c.t.Fatalf("got %s, want error %s", m.Raw, code)
		}
		break
	}
	c.expectClose(websocket.StatusPolicyViolation)
}

// expectServerMessage consumes a server-message and checks its data.
func (c *client) expectServerMessage(data string) {
	c.t.Helper()
	if m := c.expect("server-message"); string(m.Data) != data {
		c.t.Fatalf("server-message %s, want data %s", m.Raw, data)
	}
}

// expectPeerUpdated consumes a peer-updated for id and checks its meta (raw JSON, "" for none).
func (c *client) expectPeerUpdated(id, meta string) {
	c.t.Helper()
	m := c.expect("peer-updated")
	var p peerInfo
	if err := json.Unmarshal(m.Peer, &p); err != nil || p.ID != id || string(p.Meta) != meta {
		c.t.Fatalf("got %s, want peer-updated of %s with meta %s", m.Raw, id, meta)
	}
}

// apiError asserts err is a *serverapi.Error with status and code.
func apiError(t *testing.T, err error, status int, code string) {
	t.Helper()
	var e *serverapi.Error
	if !errors.As(err, &e) || e.Status != status || e.Code != code || e.Message == "" {
		t.Fatalf("got %v, want a serverapi.Error %d %s", err, status, code)
	}
}

// rawAPI is one raw HTTP request to the API: status, headers and the error code.
func rawAPI(t *testing.T, method, url, token, ctype, body string) (int, http.Header, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var eb struct {
		Error struct{ Code, Message string }
	}
	if resp.StatusCode >= 400 {
		if err := json.Unmarshal(b, &eb); err != nil || eb.Error.Message == "" || strings.Contains(eb.Error.Message, "\n") {
			t.Fatalf("%s %s: %d with %q, not a JSON error with a one-line message", method, url, resp.StatusCode, b)
		}
	}
	return resp.StatusCode, resp.Header, eb.Error.Code
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), waitFor)
	t.Cleanup(cancel)
	return c
}

func TestAPIRoomsPeersMessagesMeta(t *testing.T) {
	var key auth.Key
	ts := startServer(t, apiKeys(&key))
	api := serverapi.New(ts.base+"/", adminToken(t, key), nil)
	before := time.Now()

	a := dial(t, ts)
	a.join("sales", map[string]any{"token": mint(t, key, grant{identity: "alice", room: "sales", name: "Ada", meta: `{"avatar":"fox"}`})})
	b, _ := joinAs(t, ts, key, "sales", "bob")
	a.expectPeerJoined(b.id)
	d, _ := joinAs(t, ts, key, "support", "dave")

	rooms, err := api.Rooms(ctx(t))
	if err != nil || len(rooms) != 2 || rooms[0] != (serverapi.Room{Name: "sales", Peers: 2}) || rooms[1] != (serverapi.Room{Name: "support", Peers: 1}) {
		t.Fatalf("rooms: %+v, %v", rooms, err)
	}
	peers, err := api.Peers(ctx(t), "sales")
	if err != nil || len(peers) != 2 {
		t.Fatalf("peers: %+v, %v", peers, err)
	}
	pa := peers[0]
	if pa.ID != a.id || pa.Identity != "alice" || pa.Name != "Ada" || string(pa.Meta) != `{"avatar":"fox"}` || pa.Node != "" ||
		pa.JoinedAt.Before(before.Add(-time.Second)) || pa.JoinedAt.After(time.Now()) || peers[1].ID != b.id || peers[1].Identity != "bob" {
		t.Fatalf("peers: %+v", peers)
	}
	if p, err := api.Peer(ctx(t), "sales", b.id); err != nil || p.ID != b.id || p.Name != "Bob" || string(p.Meta) != "null" {
		t.Fatalf("peer: %+v, %v", p, err)
	}

	// A message to the room reaches its peers and no one else; one to a peer, that peer only
	// (the next frame each gets proves what it did not get).
	if err := api.SendMessage(ctx(t), "sales", "", map[string]any{"notice": "ends in 5 minutes"}); err != nil {
		t.Fatal(err)
	}
	a.expectServerMessage(`{"notice":"ends in 5 minutes"}`)
	b.expectServerMessage(`{"notice":"ends in 5 minutes"}`)
	if err := api.SendMessage(ctx(t), "support", d.id, json.RawMessage(`"for dave"`)); err != nil {
		t.Fatal(err)
	}
	d.expectServerMessage(`"for dave"`)
	if err := api.SendMessage(ctx(t), "sales", b.id, []int{1, 2}); err != nil {
		t.Fatal(err)
	}
	b.expectServerMessage(`[1,2]`)
	if err := api.SendMessage(ctx(t), "sales", "", nil); err != nil {
		t.Fatal(err)
	}
	a.expectServerMessage(`null`)
	b.expectServerMessage(`null`)

	// A meta update is seen by the whole room, the peer included, and in the API; nil clears.
	if err := api.UpdateMeta(ctx(t), "sales", b.id, map[string]string{"role": "host"}); err != nil {
		t.Fatal(err)
	}
	a.expectPeerUpdated(b.id, `{"role":"host"}`)
	b.expectPeerUpdated(b.id, `{"role":"host"}`)
	if p, err := api.Peer(ctx(t), "sales", b.id); err != nil || string(p.Meta) != `{"role":"host"}` {
		t.Fatalf("peer after the update: %+v, %v", p, err)
	}
	if err := api.UpdateMeta(ctx(t), "sales", a.id, nil); err != nil {
		t.Fatal(err)
	}
	a.expectPeerUpdated(a.id, "")
	b.expectPeerUpdated(a.id, "")
	// A peer that joins later sees the updated meta in its welcome.
	_, w := joinAs(t, ts, key, "sales", "carol")
	if len(w.Peers) != 2 || string(w.Peers[1].Meta) != `{"role":"host"}` || w.Peers[0].Meta != nil {
		t.Fatalf("welcome after the updates: %s", w.Raw)
	}

	// Not found, and refused input, through the client.
	_, err = api.Peers(ctx(t), "nobody-here")
	apiError(t, err, 404, serverapi.CodeRoomNotFound)
	if !serverapi.IsNotFound(err) {
		t.Fatalf("IsNotFound(%v) = false", err)
	}
	apiError(t, api.RemovePeer(ctx(t), "sales", "AAAAAAAAAAAAAAAAAAAAAA"), 404, serverapi.CodePeerNotFound)
	apiError(t, api.SendMessage(ctx(t), "support", b.id, 1), 404, serverapi.CodePeerNotFound)
	apiError(t, api.UpdateMeta(ctx(t), "sales", b.id, []int{1}), 400, serverapi.CodeBadField)
	apiError(t, api.UpdateMeta(ctx(t), "sales", b.id, map[string]string{"k": strings.Repeat("x", 2000)}), 400, serverapi.CodeMetaTooLarge)
	apiError(t, api.SendMessage(ctx(t), "sales", "", strings.Repeat("x", 70<<10)), 413, serverapi.CodeBodyTooLarge)
	apiError(t, api.SendMessage(ctx(t), "no/slash", "", 1), 400, serverapi.CodeBadRoom)
	apiError(t, api.RemovePeer(ctx(t), "sales", "not.an.id"), 400, serverapi.CodeBadPeer)
}

func TestAPIRemoveAndClose(t *testing.T) {
	var key auth.Key
	ts := startServer(t, apiKeys(&key))
	api := serverapi.New(ts.base, adminToken(t, key), nil)

	a, _ := joinAs(t, ts, key, "sales", "alice")
	b, _ := joinAs(t, ts, key, "sales", "bob")
	a.expectPeerJoined(b.id)
	carolToken := mint(t, key, grant{identity: "carol", room: "sales"})
	c := dial(t, ts)
	wc := c.join("sales", map[string]any{"token": carolToken})
	if wc.Resume == "" {
		t.Fatalf("welcome without a resume token: %s", wc.Raw)
	}
	a.expectPeerJoined(c.id)
	b.expectPeerJoined(c.id)

	// Removed: the peer gets the error and a 1008 close, the others peer-left "removed".
	if err := api.RemovePeer(ctx(t), "sales", c.id); err != nil {
		t.Fatal(err)
	}
	c.expectRemoved("removed")
	a.expectPeerLeft(c.id, "removed")
	b.expectPeerLeft(c.id, "removed")
	if peers, err := api.Peers(ctx(t), "sales"); err != nil || len(peers) != 2 {
		t.Fatalf("peers after the removal: %+v, %v", peers, err)
	}
	// Its resume token is dead: a join that offers it is a new presence with a new id.
	c2 := dial(t, ts)
	w2 := c2.join("sales", map[string]any{"token": carolToken, "resume": wc.Resume})
	if w2.Resumed || c2.id == c.id || len(w2.Peers) != 2 {
		t.Fatalf("a removed peer's resume token took its presence back: %s", w2.Raw)
	}
	a.expectPeerJoined(c2.id)
	b.expectPeerJoined(c2.id)

	// Closed: every peer is removed, the answer counts them, and the room is gone.
	n, err := api.CloseRoom(ctx(t), "sales")
	if err != nil || n != 3 {
		t.Fatalf("close: %d, %v", n, err)
	}
	for _, cl := range []*client{a, b, c2} {
		cl.expectRemoved("room-closed")
	}
	rooms, err := api.Rooms(ctx(t))
	if err != nil || len(rooms) != 0 {
		t.Fatalf("rooms after close: %+v, %v", rooms, err)
	}
	_, err = api.CloseRoom(ctx(t), "sales")
	apiError(t, err, 404, serverapi.CodeRoomNotFound)
}

func TestAPIAuthentication(t *testing.T) {
	var key auth.Key
	ts := startServer(t, apiKeys(&key))
	rooms := ts.base + "/api/v1/rooms"
	tests := []struct {
		name, token string
		status      int
		code        string
	}{
		{"no token", "", 401, serverapi.CodeTokenMissing},
		{"garbage", "x.y.z", 401, serverapi.CodeTokenInvalid},
		{"another key", mint(t, auth.NewKey(), grant{identity: "ops", admin: true}), 401, serverapi.CodeTokenInvalid},
		{"expired admin", mint(t, key, grant{identity: "ops", admin: true, ttl: -time.Minute}), 401, serverapi.CodeTokenExpired},
		{"join token", mint(t, key, grant{identity: "alice", room: "sales"}), 403, serverapi.CodeAdminNotGranted},
		{"admin", adminToken(t, key), 200, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, h, code := rawAPI(t, "GET", rooms, tt.token, "", "")
			if status != tt.status || code != tt.code {
				t.Fatalf("%d %s, want %d %s", status, code, tt.status, tt.code)
			}
			if status == 401 && !strings.HasPrefix(h.Get("WWW-Authenticate"), "Bearer") {
				t.Fatalf("401 with WWW-Authenticate %q", h.Get("WWW-Authenticate"))
			}
			_, err := serverapi.New(ts.base, tt.token, nil).Rooms(ctx(t))
			if tt.status == 200 {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			apiError(t, err, tt.status, tt.code)
			// Every route refuses it, even with a body that would be wrong.
			status, _, code = rawAPI(t, "DELETE", ts.base+"/api/v1/rooms/sales/peers/AAAA", tt.token, "", "")
			if status != tt.status || code != tt.code {
				t.Fatalf("DELETE: %d %s, want %d %s", status, code, tt.status, tt.code)
			}
		})
	}
}

func TestAPIOffWithoutKeys(t *testing.T) {
	ts := startServer(t, nil)
	someKey := auth.NewKey()
	for _, tok := range []string{"", adminToken(t, someKey)} {
		status, _, code := rawAPI(t, "GET", ts.base+"/api/v1/rooms", tok, "", "")
		if status != 404 || code != serverapi.CodeAPIOff {
			t.Fatalf("API on an open server: %d %s", status, code)
		}
	}
	_, err := serverapi.New(ts.base, "", nil).Rooms(ctx(t))
	apiError(t, err, 404, serverapi.CodeAPIOff)
	var e *serverapi.Error
	if errors.As(err, &e); !strings.Contains(e.Message, "--api-keys") {
		t.Fatalf("api-off message does not say how to turn it on: %q", e.Message)
	}
	// The rest of the server still runs open.
	c := dial(t, ts)
	c.join("sales", nil)
}

func TestAPIBadRequests(t *testing.T) {
	var key auth.Key
	ts := startServer(t, apiKeys(&key))
	tok := adminToken(t, key)
	a, _ := joinAs(t, ts, key, "sales", "alice")
	peer := ts.base + "/api/v1/rooms/sales/peers/" + a.id
	msgs := ts.base + "/api/v1/rooms/sales/messages"
	tests := []struct {
		name, method, url, ctype, body string
		status                         int
		code                           string
	}{
		{"not JSON", "PATCH", peer, "application/json", "{meta}", 400, "bad-body"},
		{"unknown field", "PATCH", peer, "application/json", `{"meta":null,"room":"x"}`, 400, "bad-body"},
		{"meta missing", "PATCH", peer, "application/json", `{}`, 400, "missing-field"},
		{"data missing", "POST", msgs, "application/json", `{"peer":"` + a.id + `"}`, 400, "missing-field"},
		{"form content type", "POST", msgs, "application/x-www-form-urlencoded", `data=1`, 415, "unsupported-media-type"},
		{"bad room", "GET", ts.base + "/api/v1/rooms/a%20b", "", "", 400, "bad-room"},
		{"unknown route", "GET", ts.base + "/api/v1/users", "", "", 404, "no-route"},
		{"wrong method", "PUT", peer, "application/json", `{}`, 405, "method-not-allowed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, _, code := rawAPI(t, tt.method, tt.url, tok, tt.ctype, tt.body)
			if status != tt.status || code != tt.code {
				t.Fatalf("%d %s, want %d %s", status, code, tt.status, tt.code)
			}
		})
	}
	// Nothing the refused requests carried reached the peer: its next frame is this one.
	if err := serverapi.New(ts.base, tok, nil).SendMessage(ctx(t), "sales", a.id, "only this"); err != nil {
		t.Fatal(err)
	}
	a.expectServerMessage(`"only this"`)
}
