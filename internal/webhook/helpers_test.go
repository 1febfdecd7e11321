package webhook_test

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/switchboard-rtc/switchboard/internal/auth"
	"github.com/switchboard-rtc/switchboard/internal/bus"
	"github.com/switchboard-rtc/switchboard/internal/stats"
	"github.com/switchboard-rtc/switchboard/internal/webhook"
	"github.com/switchboard-rtc/switchboard/protocol"
)

const waitFor = 5 * time.Second

var testKey = auth.Key{ID: "hooks", Secret: []byte("0123456789abcdef0123456789abcdef-secret")}

// delivery is one request a receiver got.
type delivery struct {
	n      int // 1-based number of the request at this receiver
	body   []byte
	header http.Header
}

// event decodes d's body.
func (d delivery) event(t *testing.T) webhook.Event {
	t.Helper()
	var e webhook.Event
	if err := json.Unmarshal(d.body, &e); err != nil {
		t.Fatalf("body %q: %v", d.body, err)
	}
	return e
}

// receiver is a real HTTP server on loopback that records every request and answers with
// answer (nil: 204).
type receiver struct {
	t      testing.TB
	srv    *httptest.Server
	got    chan delivery
	answer func(w http.ResponseWriter, r *http.Request, n int)

	mu sync.Mutex
	n  int
}

func newReceiver(t testing.TB, answer func(w http.ResponseWriter, r *http.Request, n int)) *receiver {
	t.Helper()
	rc := &receiver{t: t, got: make(chan delivery, 10000), answer: answer}
	rc.srv = httptest.NewServer(http.HandlerFunc(rc.serve))
	t.Cleanup(rc.srv.Close)
	return rc
}

func (rc *receiver) serve(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		return
	}
	rc.mu.Lock()
	rc.n++
	n := rc.n
	rc.mu.Unlock()
	select {
	case rc.got <- delivery{n: n, body: body, header: r.Header.Clone()}:
	default: // a benchmark's flood: not recorded
	}
	if rc.answer != nil {
		rc.answer(w, r, n)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (rc *receiver) url() string { return rc.srv.URL + "/hooks" }

// next returns the next request, failing the test after waitFor.
func (rc *receiver) next() delivery {
	rc.t.Helper()
	select {
	case d := <-rc.got:
		return d
	case <-time.After(waitFor):
		rc.t.Fatalf("no webhook within %v", waitFor)
	}
	return delivery{}
}

// expectNone checks no further request is waiting.
func (rc *receiver) expectNone() {
	rc.t.Helper()
	select {
	case d := <-rc.got:
		rc.t.Fatalf("unexpected webhook %s", d.body)
	default:
	}
}

// newSender starts a Sender with fast backoff and stops it at cleanup.
func newSender(t testing.TB, mod func(*webhook.Config), urls ...string) (*webhook.Sender, *stats.Stats) {
	t.Helper()
	st := new(stats.Stats)
	cfg := webhook.Config{
		URLs:       urls,
		Key:        testKey,
		Timeout:    5 * time.Second,
		MinBackoff: time.Millisecond,
		MaxBackoff: 10 * time.Millisecond,
		Stats:      st,
		Logger:     slog.New(slog.NewTextHandler(io.Discard, nil)),
	}
	if mod != nil {
		mod(&cfg)
	}
	s, err := webhook.New(cfg)
	if err != nil {
		t.Fatalf("webhook.New: %v", err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s, st
}

// joined returns a peer-joined event for peer in room.
func joined(room, peer string) *bus.RoomEvent {
	return &bus.RoomEvent{Kind: bus.PeerJoined, Room: room, At: time.Now(), Peer: &bus.PeerDetail{
		Info:   protocol.PeerInfo{ID: protocol.PeerID(peer), Identity: "user-" + peer, Name: "Name " + peer, Meta: []byte(`{"n":"` + peer + `"}`)},
		Joined: time.Now(),
	}}
}

// checkSignature checks d's signature independently of the package: HMAC-SHA256 of the body.
func checkSignature(t *testing.T, d delivery, key auth.Key) {
	t.Helper()
	mac := hmac.New(sha256.New, key.Secret)
	mac.Write(d.body)
	want := "sha256=" + hex.EncodeToString(mac.Sum(nil))
	if got := d.header.Get("Switchboard-Signature"); !hmac.Equal([]byte(got), []byte(want)) {
		t.Fatalf("signature %q, want %q", got, want)
	}
	if got := d.header.Get("Switchboard-Key-Id"); got != key.ID {
		t.Fatalf("key id header %q, want %q", got, key.ID)
	}
}

// eventually polls cond until it holds, failing the test after waitFor.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitFor)
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		<-tick.C
	}
}

// shutdown stops s within d and returns Shutdown's error.
func shutdown(s *webhook.Sender, d time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	return s.Shutdown(ctx)
}
