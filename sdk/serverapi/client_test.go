package serverapi_test

import (
	"context"
	"encoding/json"
	"errors"
	"go/parser"
	gotoken "go/token"
	"net"
	"net/http"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/switchboard-rtc/switchboard/internal/auth"
	"github.com/switchboard-rtc/switchboard/internal/config"
	"github.com/switchboard-rtc/switchboard/internal/testserver"
	"github.com/switchboard-rtc/switchboard/sdk/serverapi"
)

// The client against a real server with real WebSocket peers; internal/server's API tests use
// it too, on one node and on a cluster.

const waitFor = 5 * time.Second

// server starts a server with an API key and returns its URL and an admin token.
func server(t *testing.T) (string, auth.Key, string) {
	t.Helper()
	key := auth.NewKey()
	base := testserver.Start(t, func(c *config.Config) { c.APIKeys = []string{key.Spec()} })
	return base, key, token(t, key, "ops", "", true)
}

func token(t *testing.T, key auth.Key, identity, room string, admin bool) string {
	t.Helper()
	c := auth.NewClaims(identity, room, time.Now(), time.Hour)
	c.Join, c.Admin, c.Name = room != "", admin, strings.ToUpper(identity)
	tok, err := auth.Mint(key, c)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// peer is a WebSocket peer in a room.
type peer struct {
	id     string
	frames chan map[string]any
}

func join(t *testing.T, base string, key auth.Key, room, identity string) *peer {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	c, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(base, "http")+"/ws", nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.CloseNow() })
	if err := c.Write(ctx, websocket.MessageText, []byte(`{"type":"join","token":"`+token(t, key, identity, room, false)+`"}`)); err != nil {
		t.Fatal(err)
	}
	p := &peer{frames: make(chan map[string]any, 64)}
	go func() { // ends when the connection closes, at the latest at cleanup
		defer close(p.frames)
		for {
			_, b, err := c.Read(context.Background())
			if err != nil {
				return
			}
			var m map[string]any
			if json.Unmarshal(b, &m) == nil {
				p.frames <- m
			}
		}
	}()
	w := p.next(t)
	if w["type"] != "welcome" {
		t.Fatalf("got %v, want a welcome", w)
	}
	p.id, _ = w["peer"].(string)
	return p
}

func (p *peer) next(t *testing.T) map[string]any {
	t.Helper()
	select {
	case m, ok := <-p.frames:
		if !ok {
			t.Fatal("connection closed")
		}
		return m
	case <-time.After(waitFor):
		t.Fatal("no frame")
	}
	return nil
}

func (p *peer) expect(t *testing.T, typ string) map[string]any {
	t.Helper()
	m := p.next(t)
	if m["type"] != typ {
		t.Fatalf("got %v, want %s", m, typ)
	}
	return m
}

func TestAPIClient(t *testing.T) {
	base, key, admin := server(t)
	var requests atomic.Int32
	hc := &http.Client{Transport: countingTransport{&requests, http.DefaultTransport}}
	api := serverapi.New(base, admin, &serverapi.Options{HTTPClient: hc})
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()

	rooms, err := api.Rooms(ctx)
	if err != nil || rooms == nil || len(rooms) != 0 {
		t.Fatalf("rooms of an empty server: %#v, %v", rooms, err)
	}
	a := join(t, base, key, "demo", "ann")
	b := join(t, base, key, "demo", "ben")
	a.expect(t, "peer-joined")

	if rooms, err = api.Rooms(ctx); err != nil || len(rooms) != 1 || rooms[0] != (serverapi.Room{Name: "demo", Peers: 2}) {
		t.Fatalf("rooms: %+v, %v", rooms, err)
	}
	peers, err := api.Peers(ctx, "demo")
	if err != nil || len(peers) != 2 || peers[0].ID != a.id || peers[0].Identity != "ann" || peers[0].Name != "ANN" || peers[1].ID != b.id || peers[0].JoinedAt.IsZero() {
		t.Fatalf("peers: %+v, %v", peers, err)
	}
	if err := api.SendMessage(ctx, "demo", b.id, json.RawMessage(`{"x":[true]}`)); err != nil {
		t.Fatal(err)
	}
	if m := b.expect(t, "server-message"); m["data"].(map[string]any)["x"].([]any)[0] != true {
		t.Fatalf("server-message %v", m)
	}
	if err := api.UpdateMeta(ctx, "demo", a.id, map[string]int{"level": 3}); err != nil {
		t.Fatal(err)
	}
	for _, p := range []*peer{a, b} {
		if m := p.expect(t, "peer-updated"); m["peer"].(map[string]any)["meta"].(map[string]any)["level"] != 3.0 {
			t.Fatalf("peer-updated %v", m)
		}
	}
	if p, err := api.Peer(ctx, "demo", a.id); err != nil || string(p.Meta) != `{"level":3}` {
		t.Fatalf("peer: %+v, %v", p, err)
	}
	if err := api.RemovePeer(ctx, "demo", a.id); err != nil {
		t.Fatal(err)
	}
	if m := a.expect(t, "error"); m["code"] != "removed" {
		t.Fatalf("removed peer got %v", m)
	}
	if m := b.expect(t, "peer-left"); m["reason"] != "removed" {
		t.Fatalf("peer-left %v", m)
	}
	if n, err := api.CloseRoom(ctx, "demo"); err != nil || n != 1 {
		t.Fatalf("close: %d, %v", n, err)
	}
	if m := b.expect(t, "error"); m["code"] != "room-closed" {
		t.Fatalf("closed room's peer got %v", m)
	}
	if got := requests.Load(); got != 8 {
		t.Fatalf("%d requests went through Options.HTTPClient, want 8", got)
	}
}

// countingTransport counts the requests it passes on to a real transport.
type countingTransport struct {
	n    *atomic.Int32
	next http.RoundTripper
}

func (c countingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	c.n.Add(1)
	return c.next.RoundTrip(r)
}

func TestAPIClientErrors(t *testing.T) {
	base, key, admin := server(t)
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	api := serverapi.New(base, admin, nil)

	var e *serverapi.Error
	_, err := api.Peers(ctx, "empty")
	if !errors.As(err, &e) || e.Status != 404 || e.Code != serverapi.CodeRoomNotFound || !serverapi.IsNotFound(err) ||
		!strings.Contains(err.Error(), "room-not-found") {
		t.Fatalf("unknown room: %v", err)
	}
	if err := api.RemovePeer(ctx, "empty", "x y"); !errors.As(err, &e) || e.Code != serverapi.CodeBadPeer || serverapi.IsNotFound(err) {
		t.Fatalf("bad peer id: %v", err)
	}
	if _, err := serverapi.New(base, token(t, key, "ann", "demo", false), nil).Rooms(ctx); !errors.As(err, &e) || e.Status != 403 || e.Code != serverapi.CodeAdminNotGranted {
		t.Fatalf("non-admin token: %v", err)
	}
	if _, err := serverapi.New(base, "", nil).Rooms(ctx); !errors.As(err, &e) || e.Status != 401 || e.Code != serverapi.CodeTokenMissing {
		t.Fatalf("no token: %v", err)
	}
	if err := api.SendMessage(ctx, "demo", "", func() {}); err == nil || errors.As(err, &e) {
		t.Fatalf("data that cannot be encoded: %v", err)
	}
	// An answer that is not the API's (a wrong base URL) is still an *Error, without a code.
	if _, err := serverapi.New(base+"/nothing", admin, nil).Rooms(ctx); !errors.As(err, &e) || e.Status != 404 || e.Code != "" || e.Message == "" || serverapi.IsNotFound(err) {
		t.Fatalf("wrong base URL: %#v", err)
	}
	// Transport failures are not *Error, and wrap their cause.
	canceled, cancelNow := context.WithCancel(ctx)
	cancelNow()
	if _, err := api.Rooms(canceled); !errors.Is(err, context.Canceled) || errors.As(err, &e) {
		t.Fatalf("canceled context: %v", err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := "http://" + ln.Addr().String()
	ln.Close()
	if _, err := serverapi.New(closed, admin, nil).Rooms(ctx); err == nil || errors.As(err, &e) {
		t.Fatalf("nothing listening: %v", err)
	}
}

// TestAPIClientStandardLibraryOnly keeps the package importable by any application: no dependency
// beyond the standard library, nothing of the server.
func TestAPIClientStandardLibraryOnly(t *testing.T) {
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	fset := gotoken.NewFileSet()
	for _, name := range files {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, name, nil, parser.ImportsOnly)
		if err != nil {
			t.Fatal(err)
		}
		for _, imp := range f.Imports {
			path, _ := strconv.Unquote(imp.Path.Value)
			if first, _, _ := strings.Cut(path, "/"); strings.Contains(first, ".") {
				t.Errorf("%s imports %s, outside the standard library", name, path)
			}
		}
	}
}
