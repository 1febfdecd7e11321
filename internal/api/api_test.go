package api_test

import (
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/switchboard-rtc/switchboard/internal/api"
	"github.com/switchboard-rtc/switchboard/internal/auth"
	"github.com/switchboard-rtc/switchboard/internal/bus"
	"github.com/switchboard-rtc/switchboard/internal/hub"
	"github.com/switchboard-rtc/switchboard/protocol"
)

// The handler runs here over a real hub on the in-memory bus, with real tokens; the tests in
// internal/server run it inside real servers with WebSocket peers and a cluster.

// sink is a bus.Sink that keeps copies of the events a peer is sent.
type sink struct {
	mu  sync.Mutex
	got []protocol.Event
}

func (s *sink) Send(e *protocol.Event) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	c := *e
	c.Data = append([]byte(nil), e.Data...)
	if e.Peer != nil {
		p := *e.Peer
		c.Peer = &p
	}
	s.got = append(s.got, c)
	return true
}

// take returns and forgets the events received so far.
func (s *sink) take() []protocol.Event {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := s.got
	s.got = nil
	return out
}

// fixture is a hub, the API over it, and a key to mint tokens with.
type fixture struct {
	hub   *hub.Hub
	api   *api.Handler
	key   auth.Key
	admin string // an admin token
}

func newFixture(tb testing.TB) *fixture {
	tb.Helper()
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	h, err := hub.New(hub.Config{Bus: bus.NewMemory(nil), Logger: quiet, ResumeGrace: -1})
	if err != nil {
		tb.Fatal(err)
	}
	key := auth.NewKey()
	v, err := auth.NewVerifier([]auth.Key{key})
	if err != nil {
		tb.Fatal(err)
	}
	a, err := api.New(api.Config{
		Backend: h,
		Verify: func(token string, now time.Time) (api.Caller, *protocol.Error) {
			c, err := v.Verify(token, now)
			if err != nil {
				return api.Caller{}, err.Protocol()
			}
			return api.Caller{Identity: c.Subject, Admin: c.Admin}, nil
		},
		MaxMetaBytes: 64,
		Logger:       quiet,
	})
	if err != nil {
		tb.Fatal(err)
	}
	f := &fixture{hub: h, api: a, key: key}
	f.admin = f.token(tb, true, time.Hour)
	return f
}

// token mints a token for "ops", admin or not, expiring after ttl (negative: already expired).
func (f *fixture) token(tb testing.TB, admin bool, ttl time.Duration) string {
	tb.Helper()
	c := auth.NewClaims("ops", "", time.Now(), ttl)
	c.Join, c.TURN, c.Admin = false, false, admin
	if !admin {
		c.Room, c.Join = "sales", true
	}
	tok, err := auth.Mint(f.key, c)
	if err != nil {
		tb.Fatal(err)
	}
	return tok
}

// join puts a peer in room (with id, when not "") and returns its id and sink.
func (f *fixture) join(tb testing.TB, room string, id protocol.PeerID, name string) (protocol.PeerID, *sink) {
	tb.Helper()
	sk := &sink{}
	s := f.hub.Connect(sk, time.Now())
	if id != "" {
		s.UsePeerID(id)
	}
	frame, _ := json.Marshal(map[string]any{"type": "join", "room": room, "name": name})
	if err := s.HandleFrame(frame, time.Now()); err != nil {
		tb.Fatalf("join: %v", err)
	}
	if ev := sk.take(); len(ev) != 1 || ev[0].Type != protocol.TypeWelcome {
		tb.Fatalf("join %s: got %v, want a welcome", room, ev)
	}
	return s.Peer(), sk
}

// answer is a recorded response.
type answer struct {
	status int
	header http.Header
	body   string
	err    struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	}
}

// do serves one request with the admin token (unless auth is set: "-" for none).
func (f *fixture) do(tb testing.TB, method, path, contentType, body, authz string) answer {
	tb.Helper()
	r := httptest.NewRequest(method, path, strings.NewReader(body))
	switch authz {
	case "":
		r.Header.Set("Authorization", "Bearer "+f.admin)
	case "-":
	default:
		r.Header.Set("Authorization", authz)
	}
	if contentType != "" {
		r.Header.Set("Content-Type", contentType)
	}
	w := httptest.NewRecorder()
	f.api.ServeHTTP(w, r)
	a := answer{status: w.Code, header: w.Header(), body: w.Body.String()}
	if w.Code >= 400 {
		var eb struct {
			Error *struct {
				Code    string `json:"code"`
				Message string `json:"message"`
			} `json:"error"`
		}
		if err := json.Unmarshal(w.Body.Bytes(), &eb); err != nil || eb.Error == nil {
			tb.Fatalf("%s %s: %d with a body that is not a JSON error: %q", method, path, w.Code, a.body)
		}
		a.err.Code, a.err.Message = eb.Error.Code, eb.Error.Message
		if a.err.Code == "" || a.err.Message == "" || strings.ContainsAny(a.err.Message, "\r\n") {
			tb.Fatalf("%s %s: error without a code or a one-line message: %q", method, path, a.body)
		}
	}
	if ct := w.Header().Get("Content-Type"); w.Code != http.StatusNoContent && ct != "application/json" {
		tb.Fatalf("%s %s: Content-Type %q", method, path, ct)
	}
	return a
}

func TestAPIAuthentication(t *testing.T) {
	f := newFixture(t)
	other, err := auth.Mint(auth.NewKey(), auth.NewClaims("ops", "", time.Now(), time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	early := auth.NewClaims("ops", "", time.Now(), 2*time.Hour)
	early.Admin = true
	early.NotBefore = early.ExpiresAt
	earlyTok, err := auth.Mint(f.key, early)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, authz string
		status      int
		code        string
	}{
		{"no header", "-", 401, api.CodeTokenMissing},
		{"empty bearer", "Bearer ", 401, api.CodeTokenMissing},
		{"basic scheme", "Basic b3BzOnNlY3JldA==", 401, api.CodeTokenMissing},
		{"garbage", "Bearer not.a.jwt", 401, api.CodeTokenInvalid},
		{"another server's key", "Bearer " + other, 401, api.CodeTokenInvalid},
		{"expired", "Bearer " + f.token(t, true, -time.Minute), 401, api.CodeTokenExpired},
		{"not yet valid", "Bearer " + earlyTok, 401, api.CodeTokenNotYetValid},
		{"valid without admin", "Bearer " + f.token(t, false, time.Hour), 403, api.CodeAdminNotGranted},
		{"admin", "Bearer " + f.admin, 200, ""},
		{"admin, scheme in lower case", "bearer " + f.admin, 200, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// Authentication comes before routing: an unknown path answers the same.
			for _, path := range []string{"/api/v1/rooms", "/api/v1/nothing"} {
				a := f.do(t, "GET", path, "", "", tt.authz)
				want := tt.status
				if want == 200 && path != "/api/v1/rooms" {
					want, tt.code = 404, api.CodeNoRoute
				}
				if a.status != want || a.err.Code != tt.code {
					t.Fatalf("GET %s: %d %s, want %d %s: %s", path, a.status, a.err.Code, want, tt.code, a.body)
				}
				wa := a.header.Get("WWW-Authenticate")
				switch {
				case want == 401 && !strings.HasPrefix(wa, "Bearer"):
					t.Fatalf("401 with WWW-Authenticate %q", wa)
				case want == 401 && tt.code != api.CodeTokenMissing && !strings.Contains(wa, `error="invalid_token"`):
					t.Fatalf("401 for a bad token with WWW-Authenticate %q", wa)
				case want == 403 && !strings.Contains(wa, "insufficient_scope"):
					t.Fatalf("403 with WWW-Authenticate %q", wa)
				case want < 400 && wa != "":
					t.Fatalf("%d with WWW-Authenticate %q", want, wa)
				}
			}
		})
	}
}

func TestAPIOffWithoutVerifier(t *testing.T) {
	h, err := hub.New(hub.Config{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	a, err := api.New(api.Config{Backend: h})
	if err != nil {
		t.Fatal(err)
	}
	for _, rt := range append(api.Routes(), api.Route{Method: "GET", Path: "/api/v1/nothing"}) {
		r := httptest.NewRequest(rt.Method, strings.NewReplacer("{room}", "sales", "{peer}", "p1").Replace(rt.Path), strings.NewReader("{}"))
		r.Header.Set("Authorization", "Bearer anything")
		w := httptest.NewRecorder()
		a.ServeHTTP(w, r)
		if w.Code != 404 || !strings.Contains(w.Body.String(), `"code":"api-off"`) || !strings.Contains(w.Body.String(), "--api-keys") {
			t.Fatalf("%s %s on a server without keys: %d %s", rt.Method, rt.Path, w.Code, w.Body)
		}
	}
	if _, err := api.New(api.Config{}); err == nil {
		t.Fatal("New without a backend succeeded")
	}
}

func TestAPIBadRequests(t *testing.T) {
	f := newFixture(t)
	const id = "AAAAAAAAAAAAAAAAAAAAAA"
	f.join(t, "sales", id, "Ada")
	const peer = "/api/v1/rooms/sales/peers/" + id
	const ctJSON = "application/json"
	tests := []struct {
		name, method, path, ctype, body string
		status                          int
		code                            string
	}{
		{"unknown route", "GET", "/api/v1/users", "", "", 404, api.CodeNoRoute},
		{"trailing slash", "GET", "/api/v1/rooms/", "", "", 404, api.CodeNoRoute},
		{"too deep", "GET", peer + "/x", "", "", 404, api.CodeNoRoute},
		{"wrong method", "PUT", "/api/v1/rooms/sales", ctJSON, "{}", 405, api.CodeMethodNotAllowed},
		{"room with a space", "GET", "/api/v1/rooms/a%20b", "", "", 400, api.CodeBadRoom},
		{"room with a slash", "GET", "/api/v1/rooms/a%2Fb", "", "", 400, api.CodeBadRoom},
		{"room too long", "DELETE", "/api/v1/rooms/" + strings.Repeat("r", protocol.MaxRoomLen+1), "", "", 400, api.CodeBadRoom},
		{"peer with a dot", "DELETE", "/api/v1/rooms/sales/peers/a.b", "", "", 400, api.CodeBadPeer},
		{"peer too long", "GET", "/api/v1/rooms/sales/peers/" + strings.Repeat("p", 65), "", "", 400, api.CodeBadPeer},
		{"no room", "GET", "/api/v1/rooms/support", "", "", 404, api.CodeRoomNotFound},
		{"close no room", "DELETE", "/api/v1/rooms/support", "", "", 404, api.CodeRoomNotFound},
		{"no peer", "DELETE", "/api/v1/rooms/sales/peers/BBBB", "", "", 404, api.CodePeerNotFound},
		{"get no peer", "GET", "/api/v1/rooms/sales/peers/BBBB", "", "", 404, api.CodePeerNotFound},
		{"peer of no room", "PATCH", "/api/v1/rooms/support/peers/" + id, ctJSON, `{"meta":null}`, 404, api.CodePeerNotFound},
		{"message to no room", "POST", "/api/v1/rooms/support/messages", ctJSON, `{"data":1}`, 404, api.CodeRoomNotFound},
		{"message to no peer", "POST", "/api/v1/rooms/sales/messages", ctJSON, `{"data":1,"peer":"BBBB"}`, 404, api.CodePeerNotFound},
		{"no content type", "PATCH", peer, "", `{"meta":null}`, 415, api.CodeUnsupportedMedia},
		{"text content type", "POST", "/api/v1/rooms/sales/messages", "text/plain", `{"data":1}`, 415, api.CodeUnsupportedMedia},
		{"empty body", "PATCH", peer, ctJSON, "", 400, api.CodeBadBody},
		{"not JSON", "PATCH", peer, ctJSON, "meta=1", 400, api.CodeBadBody},
		{"cut short", "PATCH", peer, ctJSON, `{"meta":{"a"`, 400, api.CodeBadBody},
		{"an array", "PATCH", peer, ctJSON, `[1]`, 400, api.CodeBadBody},
		{"unknown field", "PATCH", peer, ctJSON, `{"meta":null,"name":"x"}`, 400, api.CodeBadBody},
		{"two values", "PATCH", peer, ctJSON, `{"meta":null} {}`, 400, api.CodeBadBody},
		{"meta missing", "PATCH", peer, ctJSON, `{}`, 400, api.CodeMissingField},
		{"meta a string", "PATCH", peer, ctJSON, `{"meta":"x"}`, 400, api.CodeBadField},
		{"meta an array", "PATCH", peer, ctJSON, `{"meta":[1]}`, 400, api.CodeBadField},
		{"meta too large", "PATCH", peer, ctJSON, `{"meta":{"k":"` + strings.Repeat("x", 60) + `"}}`, 400, api.CodeMetaTooLarge},
		{"meta not UTF-8", "PATCH", peer, ctJSON, "{\"meta\":{\"k\":\"\xff\"}}", 400, api.CodeBadField},
		{"data missing", "POST", "/api/v1/rooms/sales/messages", ctJSON, `{"peer":"` + id + `"}`, 400, api.CodeMissingField},
		{"data not UTF-8", "POST", "/api/v1/rooms/sales/messages", ctJSON, "{\"data\":\"\xc3\"}", 400, api.CodeBadField},
		{"peer a number", "POST", "/api/v1/rooms/sales/messages", ctJSON, `{"data":1,"peer":7}`, 400, api.CodeBadField},
		{"peer empty", "POST", "/api/v1/rooms/sales/messages", ctJSON, `{"data":1,"peer":""}`, 400, api.CodeBadPeer},
		{"body too large", "POST", "/api/v1/rooms/sales/messages", ctJSON, `{"data":"` + strings.Repeat("x", api.MaxBodyBytes) + `"}`, 413, api.CodeBodyTooLarge},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := f.do(t, tt.method, tt.path, tt.ctype, tt.body, "")
			if a.status != tt.status || a.err.Code != tt.code {
				t.Fatalf("%d %s, want %d %s: %s", a.status, a.err.Code, tt.status, tt.code, a.body)
			}
			if tt.status == 405 && a.header.Get("Allow") != "GET, HEAD, DELETE" {
				t.Fatalf("405 with Allow %q", a.header.Get("Allow"))
			}
		})
	}
	if rooms := f.do(t, "GET", "/api/v1/rooms/sales", "", "", ""); !strings.Contains(rooms.body, `"meta":null`) {
		t.Fatalf("a refused request changed the peer: %s", rooms.body)
	}
}

func TestAPIOperations(t *testing.T) {
	f := newFixture(t)
	before := time.Now()
	a, sa := f.join(t, "sales", "", "Ada")
	b, sb := f.join(t, "sales", "", "Grace")
	c, sc := f.join(t, "support", "", "")
	sa.take()

	got := f.do(t, "GET", "/api/v1/rooms", "", "", "")
	if got.status != 200 || got.body != `{"rooms":[{"name":"sales","peers":2},{"name":"support","peers":1}]}`+"\n" {
		t.Fatalf("rooms: %d %s", got.status, got.body)
	}
	got = f.do(t, "GET", "/api/v1/rooms/sales", "", "", "")
	var room struct {
		Name  string `json:"name"`
		Peers []struct {
			ID, Identity, Name, Node string
			Meta                     json.RawMessage
			JoinedAt                 time.Time
		} `json:"peers"`
	}
	if err := json.Unmarshal([]byte(got.body), &room); err != nil || got.status != 200 {
		t.Fatalf("room: %d %s (%v)", got.status, got.body, err)
	}
	if room.Name != "sales" || len(room.Peers) != 2 || room.Peers[0].ID != string(a) || room.Peers[1].ID != string(b) ||
		room.Peers[0].Name != "Ada" || string(room.Peers[0].Meta) != "null" || room.Peers[0].Node != "" ||
		room.Peers[0].JoinedAt.Before(before.Add(-time.Second)) || room.Peers[0].JoinedAt.After(time.Now()) {
		t.Fatalf("room: %s", got.body)
	}
	if got = f.do(t, "GET", "/api/v1/rooms/sales/peers/"+string(b), "", "", ""); got.status != 200 || !strings.Contains(got.body, `"name":"Grace"`) {
		t.Fatalf("peer: %d %s", got.status, got.body)
	}

	// A message to the room reaches its peers only, its data compacted; one to a peer, that peer.
	if got = f.do(t, "POST", "/api/v1/rooms/sales/messages", "application/json; charset=utf-8", `{"data": {"notice": "ends soon", "n": [1, 2]}}`, ""); got.status != 204 {
		t.Fatalf("message: %d %s", got.status, got.body)
	}
	for _, s := range []*sink{sa, sb} {
		if ev := s.take(); len(ev) != 1 || ev[0].Type != protocol.TypeServerMessage || string(ev[0].Data) != `{"notice":"ends soon","n":[1,2]}` {
			t.Fatalf("server-message: %+v", ev)
		}
	}
	if got = f.do(t, "POST", "/api/v1/rooms/support/messages", "application/json", `{"data":"hi","peer":"`+string(c)+`"}`, ""); got.status != 204 {
		t.Fatalf("message to a peer: %d %s", got.status, got.body)
	}
	if ev := sc.take(); len(ev) != 1 || string(ev[0].Data) != `"hi"` || len(sa.take())+len(sb.take()) != 0 {
		t.Fatalf("message to a peer: %+v", ev)
	}

	// A meta update is announced to the room, the peer included; null clears it.
	if got = f.do(t, "PATCH", "/api/v1/rooms/sales/peers/"+string(b), "application/json", `{"meta":{"role": "host"}}`, ""); got.status != 204 {
		t.Fatalf("meta: %d %s", got.status, got.body)
	}
	for _, s := range []*sink{sa, sb} {
		if ev := s.take(); len(ev) != 1 || ev[0].Type != protocol.TypePeerUpdated || ev[0].Peer.ID != b || string(ev[0].Peer.Meta) != `{"role":"host"}` {
			t.Fatalf("peer-updated: %+v", ev)
		}
	}
	if got = f.do(t, "GET", "/api/v1/rooms/sales/peers/"+string(b), "", "", ""); !strings.Contains(got.body, `"meta":{"role":"host"}`) {
		t.Fatalf("peer after the update: %s", got.body)
	}
	if got = f.do(t, "PATCH", "/api/v1/rooms/sales/peers/"+string(b), "application/json", `{"meta":null}`, ""); got.status != 204 {
		t.Fatalf("meta null: %d %s", got.status, got.body)
	}
	if ev := sa.take(); len(ev) != 1 || ev[0].Peer.Meta != nil {
		t.Fatalf("peer-updated clearing meta: %+v", ev)
	}
	sb.take()

	// Remove: the peer gets the error, the others peer-left "removed".
	if got = f.do(t, "DELETE", "/api/v1/rooms/sales/peers/"+string(a), "", "", ""); got.status != 204 || got.body != "" {
		t.Fatalf("remove: %d %q", got.status, got.body)
	}
	if ev := sa.take(); len(ev) != 1 || ev[0].Type != protocol.TypeError || ev[0].Err == nil || ev[0].Err.Code != protocol.CodeRemoved {
		t.Fatalf("removed peer got %+v", ev)
	}
	if ev := sb.take(); len(ev) != 1 || ev[0].Type != protocol.TypePeerLeft || ev[0].Reason != "removed" {
		t.Fatalf("other peer got %+v", ev)
	}
	if got = f.do(t, "DELETE", "/api/v1/rooms/sales/peers/"+string(a), "", "", ""); got.status != 404 || got.err.Code != api.CodePeerNotFound {
		t.Fatalf("remove twice: %d %s", got.status, got.body)
	}

	// Close: every peer is removed and the answer counts them.
	if got = f.do(t, "DELETE", "/api/v1/rooms/sales", "", "", ""); got.status != 200 || got.body != `{"room":"sales","removed":1}`+"\n" {
		t.Fatalf("close: %d %s", got.status, got.body)
	}
	if ev := sb.take(); len(ev) != 1 || ev[0].Err == nil || ev[0].Err.Code != protocol.CodeRoomClosed {
		t.Fatalf("closed room's peer got %+v", ev)
	}
	if got = f.do(t, "GET", "/api/v1/rooms", "", "", ""); got.body != `{"rooms":[{"name":"support","peers":1}]}`+"\n" {
		t.Fatalf("rooms after close: %s", got.body)
	}
}
