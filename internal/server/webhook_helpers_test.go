package server_test

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/switchboard-rtc/switchboard/internal/auth"
	"github.com/switchboard-rtc/switchboard/internal/config"
	"github.com/switchboard-rtc/switchboard/internal/server"
	"github.com/switchboard-rtc/switchboard/internal/testserver"
)

// withWebhooks configures API keys and webhooks to urls (none: keys only).
func withWebhooks(c *config.Config, urls ...string) {
	c.APIKeys = []string{key1.Spec(), key2.Spec()} // tokens signed with key1, webhooks with key2
	c.WebhookURLs = urls
	c.WebhookKey = key2.ID
	c.RateLimit, c.RateBurst = 1e6, 1e6
}

// hookToken mints an access token for identity in room (a name or a prefix ending in *), with
// a name and meta.
func hookToken(t testing.TB, identity, room string) string {
	t.Helper()
	return token(t, key1, identity, room, func(c *auth.Claims) {
		c.Name = "Name of " + identity
		c.Meta = json.RawMessage(`{"who":"` + identity + `"}`)
	})
}

// hook is one webhook request as the receiver got it.
type hook struct {
	body   []byte
	header http.Header
	ev     hookEvent
}

// hookEvent is a webhook body, decoded by the test on its own.
type hookEvent struct {
	ID        string `json:"id"`
	Event     string `json:"event"`
	Room      string `json:"room"`
	Reason    string `json:"reason"`
	CreatedAt string `json:"createdAt"`
	SentAt    string `json:"sentAt"`
	Peer      *struct {
		ID       string          `json:"id"`
		Identity string          `json:"identity"`
		Name     string          `json:"name"`
		Meta     json.RawMessage `json:"meta"`
		JoinedAt string          `json:"joinedAt"`
		Node     string          `json:"node"`
	} `json:"peer"`
}

// short is the event as "event room [identity reason]", for comparisons.
func (e hookEvent) short() string {
	s := e.Event + " " + e.Room
	if e.Peer != nil {
		s += " " + e.Peer.Identity
	}
	if e.Reason != "" {
		s += " " + e.Reason
	}
	return s
}

// hookReceiver is a real HTTP server on loopback receiving webhooks. Its listener can be
// "down": then it resets every connection it accepts.
type hookReceiver struct {
	t      *testing.T
	srv    *httptest.Server
	gate   *gateListener
	got    chan hook
	answer func(w http.ResponseWriter, r *http.Request, n int) // nil: 200
	done   chan struct{}                                       // closed at cleanup: stuck handlers return

	mu sync.Mutex
	n  int
}

func startReceiver(t *testing.T, answer func(w http.ResponseWriter, r *http.Request, n int)) *hookReceiver {
	t.Helper()
	rc := &hookReceiver{t: t, got: make(chan hook, 100000), answer: answer, done: make(chan struct{})}
	rc.srv = httptest.NewUnstartedServer(http.HandlerFunc(rc.serve))
	rc.gate = &gateListener{Listener: rc.srv.Listener, refused: make(chan struct{}, 1000)}
	rc.srv.Listener = rc.gate
	rc.srv.Start()
	t.Cleanup(func() {
		close(rc.done)
		rc.srv.Close()
	})
	return rc
}

func (rc *hookReceiver) url() string { return rc.srv.URL + "/switchboard/events" }

func (rc *hookReceiver) serve(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		return
	}
	h := hook{body: body, header: r.Header.Clone()}
	if err := json.Unmarshal(body, &h.ev); err != nil {
		rc.t.Errorf("webhook body %q: %v", body, err)
	}
	rc.mu.Lock()
	rc.n++
	n := rc.n
	rc.mu.Unlock()
	rc.got <- h
	if rc.answer != nil {
		rc.answer(w, r, n)
		return
	}
	w.WriteHeader(http.StatusOK)
}

// next returns the next webhook, failing the test after within.
func (rc *hookReceiver) next(within time.Duration) hook {
	rc.t.Helper()
	select {
	case h := <-rc.got:
		return h
	case <-time.After(within):
		rc.t.Fatalf("no webhook within %v", within)
	}
	return hook{}
}

// take returns the next n webhooks, each checked to be signed by key2.
func (rc *hookReceiver) take(n int, within time.Duration) []hook {
	rc.t.Helper()
	out := make([]hook, n)
	for i := range out {
		out[i] = rc.next(within)
		checkHookSignature(rc.t, out[i])
	}
	return out
}

// rest returns the webhooks received and not yet taken, without waiting.
func (rc *hookReceiver) rest() []hook {
	var out []hook
	for {
		select {
		case h := <-rc.got:
			out = append(out, h)
		default:
			return out
		}
	}
}

// checkHookSignature verifies h's signature with crypto/hmac, independently of the server.
func checkHookSignature(t *testing.T, h hook) {
	t.Helper()
	mac := hmac.New(sha256.New, key2.Secret)
	mac.Write(h.body)
	want := "sha256=" + hex.EncodeToString(mac.Sum(nil))
	if got := h.header.Get("Switchboard-Signature"); !hmac.Equal([]byte(got), []byte(want)) {
		t.Fatalf("webhook signature %q does not verify with the webhook key (want %q)", got, want)
	}
	if got := h.header.Get("Switchboard-Key-Id"); got != key2.ID {
		t.Fatalf("Switchboard-Key-Id %q, want %q", got, key2.ID)
	}
	if got := h.header.Get("Switchboard-Event-Id"); got != h.ev.ID || got == "" {
		t.Fatalf("Switchboard-Event-Id %q, body id %q", got, h.ev.ID)
	}
}

// byRoom groups hooks' events by room, keeping their order.
func byRoom(hooks []hook) map[string][]string {
	out := map[string][]string{}
	for _, h := range hooks {
		out[h.ev.Room] = append(out[h.ev.Room], h.ev.short())
	}
	return out
}

// checkOnce fails when two hooks carry the same event id.
func checkOnce(t *testing.T, hooks []hook) {
	t.Helper()
	seen := map[string]string{}
	for _, h := range hooks {
		if prev, ok := seen[h.ev.ID]; ok {
			t.Fatalf("event %s delivered twice: %s and %s", h.ev.ID, prev, h.ev.short())
		}
		seen[h.ev.ID] = h.ev.short()
	}
}

// gateListener hands connections to the HTTP server, except while down: then it resets them
// (a network error for the sender) and signals refused.
type gateListener struct {
	net.Listener
	mu      sync.Mutex
	down    bool
	refused chan struct{}
}

func (l *gateListener) setDown(down bool) {
	l.mu.Lock()
	l.down = down
	l.mu.Unlock()
}

func (l *gateListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		l.mu.Lock()
		down := l.down
		l.mu.Unlock()
		if !down {
			return c, nil
		}
		if tc, ok := c.(*net.TCPConn); ok {
			_ = tc.SetLinger(0) // close with a reset
		}
		_ = c.Close()
		select {
		case l.refused <- struct{}{}:
		default:
		}
	}
}

// stopServer shuts ts down (delivering its queued webhooks) and waits for it; the cleanup
// of startServer then finds it stopped.
func stopServer(t *testing.T, ts *testServer) {
	t.Helper()
	ts.stop()
	select {
	case err := <-ts.done:
		if err != nil {
			t.Errorf("server.Run: %v", err)
		}
		ts.done <- nil
	case <-time.After(10 * time.Second):
		t.Fatal("server did not stop")
	}
}

// runServer runs a server for a test or a benchmark (which startServer does not take) and
// returns it with its WebSocket URL.
func runServer(tb testing.TB, mod func(*config.Config)) (*server.Server, string) {
	tb.Helper()
	srv := testserver.Run(tb, func(c *config.Config) {
		c.ShutdownTimeout = time.Second
		if mod != nil {
			mod(c)
		}
	})
	return srv, "ws://" + srv.Addr().String() + "/ws"
}

// joiner is a WebSocket connection that joins and leaves rooms, timing each join.
type joiner struct {
	tb    testing.TB
	c     *websocket.Conn
	token string // grants lat-*
}

func newJoiner(tb testing.TB, wsURL string) *joiner {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	c, _, err := websocket.Dial(ctx, wsURL, nil)
	if err != nil {
		tb.Fatalf("dial: %v", err)
	}
	tb.Cleanup(func() { c.CloseNow() })
	return &joiner{tb: tb, c: c, token: hookToken(tb, "bench-user", "lat-*")}
}

// roundTrip sends frame and reads until a frame of type typ.
func (j *joiner) roundTrip(frame, typ string) {
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	if err := j.c.Write(ctx, websocket.MessageText, []byte(frame)); err != nil {
		j.tb.Fatalf("write: %v", err)
	}
	for {
		_, b, err := j.c.Read(ctx)
		if err != nil {
			j.tb.Fatalf("waiting for %s: %v", typ, err)
		}
		var m struct{ Type string }
		if json.Unmarshal(b, &m) == nil && m.Type == typ {
			return
		}
		if m.Type == "error" {
			j.tb.Fatalf("server error: %s", b)
		}
	}
}

// joinLeave joins room, leaves it, and returns how long the welcome took.
func (j *joiner) joinLeave(room string) time.Duration {
	start := time.Now()
	j.roundTrip(`{"type":"join","room":"`+room+`","token":"`+j.token+`"}`, "welcome")
	d := time.Since(start)
	j.roundTrip(`{"type":"leave","id":1}`, "ack")
	return d
}

// latencies is a set of join latencies.
type latencies []time.Duration

func (l latencies) pct(p float64) time.Duration {
	s := slices.Clone(l)
	sort.Slice(s, func(i, k int) bool { return s[i] < s[k] })
	i := int(float64(len(s)-1) * p)
	return s[i]
}

func (l latencies) String() string {
	return fmt.Sprintf("p50 %v p99 %v max %v (n=%d)", l.pct(0.5).Round(time.Microsecond), l.pct(0.99).Round(time.Microsecond),
		l.pct(1).Round(time.Microsecond), len(l))
}
