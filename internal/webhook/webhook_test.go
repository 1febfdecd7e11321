package webhook_test

import (
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"reflect"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/switchboard-rtc/switchboard/internal/auth"
	"github.com/switchboard-rtc/switchboard/internal/bus"
	"github.com/switchboard-rtc/switchboard/internal/testenv"
	"github.com/switchboard-rtc/switchboard/internal/webhook"
)

func TestWebhookEveryEventOnceInOrderSigned(t *testing.T) {
	r1, r2 := newReceiver(t, nil), newReceiver(t, nil)
	s, st := newSender(t, nil, r1.url(), r2.url())

	created := time.Date(2026, 12, 6, 10, 4, 5, 123456789, time.FixedZone("X", 3600))
	s.RoomEvent(&bus.RoomEvent{Kind: bus.RoomStarted, Room: "sales", At: created})
	const n = 40
	for i := range n {
		s.RoomEvent(joined("sales", fmt.Sprint("p", i)))
	}
	left := joined("sales", "p0")
	left.Kind, left.Reason, left.Peer.Node = bus.PeerLeft, "closed", "node-7"
	s.RoomEvent(left)
	s.RoomEvent(&bus.RoomEvent{Kind: bus.RoomFinished, Room: "sales"})

	ids := map[string]bool{}
	for ri, rc := range []*receiver{r1, r2} {
		var got []webhook.Event
		for range n + 3 {
			d := rc.next()
			checkSignature(t, d, testKey)
			e := d.event(t)
			if d.header.Get("Switchboard-Event-Id") != e.ID || d.header.Get("Switchboard-Event") != e.Event ||
				d.header.Get("Content-Type") != "application/json" {
				t.Fatalf("headers %v do not match the body %s", d.header, d.body)
			}
			got = append(got, e)
		}
		rc.expectNone()
		if got[0].Event != "room-started" || got[0].Peer != nil || got[0].CreatedAt != "2026-12-06T09:04:05.123Z" {
			t.Fatalf("first event %+v", got[0])
		}
		for i := range n {
			e := got[1+i]
			if e.Event != "peer-joined" || e.Room != "sales" || e.Peer == nil || e.Peer.ID != fmt.Sprint("p", i) {
				t.Fatalf("event %d out of order or wrong: %+v", 1+i, e)
			}
			if e.Peer.Identity != "user-"+e.Peer.ID || e.Peer.Name != "Name "+e.Peer.ID || string(e.Peer.Meta) != `{"n":"`+e.Peer.ID+`"}` || e.Peer.Node != "" {
				t.Fatalf("peer %+v", e.Peer)
			}
		}
		if e := got[n+1]; e.Event != "peer-left" || e.Reason != "closed" || e.Peer.ID != "p0" || e.Peer.Node != "node-7" {
			t.Fatalf("peer-left %+v", e)
		}
		if e := got[n+2]; e.Event != "room-finished" || e.Peer != nil || e.Reason != "" {
			t.Fatalf("room-finished %+v", e)
		}
		for _, e := range got {
			for _, ts := range []string{e.CreatedAt, e.SentAt} {
				if _, err := time.Parse(time.RFC3339, ts); err != nil || !strings.HasSuffix(ts, "Z") || len(ts) != len("2026-12-06T09:04:05.123Z") {
					t.Fatalf("timestamp %q is not RFC 3339 UTC with milliseconds", ts)
				}
			}
			if ri == 0 {
				if ids[e.ID] {
					t.Fatalf("event id %s repeated", e.ID)
				}
				ids[e.ID] = true
			} else if !ids[e.ID] {
				t.Fatalf("event id %s at the second URL is not one of the first's", e.ID)
			}
		}
	}
	eventually(t, "counters", func() bool { return st.WebhooksDelivered.Load() == 2*(n+3) })
	if st.WebhooksDropped.Load()+st.WebhooksRejected.Load()+st.WebhookRetries.Load() != 0 || st.WebhooksQueued.Load() != 0 {
		t.Fatalf("dropped %d rejected %d retried %d queued %d", st.WebhooksDropped.Load(), st.WebhooksRejected.Load(),
			st.WebhookRetries.Load(), st.WebhooksQueued.Load())
	}
}

// The body has exactly the documented fields, nothing else.
func TestWebhookBodyFields(t *testing.T) {
	rc := newReceiver(t, nil)
	s, _ := newSender(t, nil, rc.url())
	e := joined("r", "p")
	e.Kind, e.Reason, e.Peer.Node = bus.PeerLeft, "left", "n1"
	s.RoomEvent(e)
	var m map[string]json.RawMessage
	if err := json.Unmarshal(rc.next().body, &m); err != nil {
		t.Fatal(err)
	}
	keys := slices.Sorted(func(yield func(string) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	})
	if want := []string{"createdAt", "event", "id", "peer", "reason", "room", "sentAt"}; !reflect.DeepEqual(keys, want) {
		t.Fatalf("body keys %v, want %v", keys, want)
	}
	var p map[string]any
	if err := json.Unmarshal(m["peer"], &p); err != nil {
		t.Fatal(err)
	}
	if len(p) != 6 || p["id"] != "p" || p["identity"] != "user-p" || p["name"] != "Name p" || p["node"] != "n1" || p["joinedAt"] == nil ||
		!reflect.DeepEqual(p["meta"], map[string]any{"n": "p"}) {
		t.Fatalf("peer %v", p)
	}
}

func TestWebhookRetriesErrorsInOrder(t *testing.T) {
	// Attempts 1-4 of the first event fail four ways; then everything succeeds.
	rc := newReceiver(t, func(w http.ResponseWriter, r *http.Request, n int) {
		switch n {
		case 1:
			w.WriteHeader(http.StatusServiceUnavailable)
		case 2:
			w.Header().Set("Retry-After", "0")
			w.WriteHeader(http.StatusTooManyRequests)
		case 3:
			w.WriteHeader(http.StatusRequestTimeout)
		case 4: // a network error: the connection ends without an answer
			c, _, err := http.NewResponseController(w).Hijack()
			if err == nil {
				_ = c.Close()
			}
		default:
			w.WriteHeader(http.StatusOK)
		}
	})
	s, st := newSender(t, nil, rc.url())
	s.RoomEvent(joined("r", "a"))
	s.RoomEvent(joined("r", "b"))
	var ids []string
	for i := 1; i <= 6; i++ {
		d := rc.next()
		e := d.event(t)
		checkSignature(t, d, testKey)
		want := "a"
		if i == 6 {
			want = "b"
		}
		if e.Peer.ID != want {
			t.Fatalf("request %d carries %s, want %s: a retry was overtaken", i, e.Peer.ID, want)
		}
		ids = append(ids, e.ID)
	}
	for _, id := range ids[1:5] {
		if id != ids[0] {
			t.Fatalf("a retry changed the event id: %v", ids)
		}
	}
	eventually(t, "counters", func() bool { return st.WebhooksDelivered.Load() == 2 })
	if st.WebhookRetries.Load() != 4 || st.WebhooksDropped.Load() != 0 || st.WebhooksRejected.Load() != 0 {
		t.Fatalf("retried %d dropped %d rejected %d", st.WebhookRetries.Load(), st.WebhooksDropped.Load(), st.WebhooksRejected.Load())
	}
}

func TestWebhookTimeoutRetried(t *testing.T) {
	release := make(chan struct{})
	defer close(release)
	rc := newReceiver(t, func(w http.ResponseWriter, r *http.Request, n int) {
		if n == 1 { // never answers: the Sender gives up after its timeout
			select {
			case <-r.Context().Done():
			case <-release:
			}
			return
		}
		w.WriteHeader(http.StatusOK)
	})
	s, st := newSender(t, func(c *webhook.Config) { c.Timeout = 300 * time.Millisecond }, rc.url())
	s.RoomEvent(joined("r", "a"))
	first := rc.next()
	eventually(t, "delivery", func() bool { return st.WebhooksDelivered.Load() == 1 })
	// Usually one retry; a loaded machine may time out a later attempt too.
	retries := st.WebhookRetries.Load()
	if retries < 1 {
		t.Fatalf("retried %d, want at least 1", retries)
	}
	for range retries {
		if d := rc.next(); d.event(t).ID != first.event(t).ID {
			t.Fatal("the retry after a timeout is another event")
		}
	}
}

func TestWebhookRefusedNotRetriedLoggedOnce(t *testing.T) {
	var logs testenv.Buffer
	rc := newReceiver(t, func(w http.ResponseWriter, r *http.Request, n int) {
		if n <= 3 {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		w.WriteHeader(http.StatusOK)
	})
	s, st := newSender(t, func(c *webhook.Config) {
		c.Logger = slog.New(slog.NewTextHandler(&logs, nil))
	}, rc.url())
	for _, p := range []string{"a", "b", "c", "d"} {
		s.RoomEvent(joined("r", p))
	}
	for _, want := range []string{"a", "b", "c", "d"} {
		if got := rc.next().event(t).Peer.ID; got != want {
			t.Fatalf("got %s, want %s: a refused event was retried", got, want)
		}
	}
	eventually(t, "delivery", func() bool { return st.WebhooksDelivered.Load() == 1 })
	if st.WebhooksRejected.Load() != 3 || st.WebhookRetries.Load() != 0 {
		t.Fatalf("rejected %d retried %d", st.WebhooksRejected.Load(), st.WebhookRetries.Load())
	}
	if n := strings.Count(logs.String(), "webhook refused"); n != 1 || !strings.Contains(logs.String(), "status=401") {
		t.Fatalf("want one refusal logged with its status, got %d:\n%s", n, logs.String())
	}
}

// A full queue drops its oldest event, counted; the one being sent when it is pushed out is
// counted as what its attempt gives.
func TestWebhookOverflowDropsOldest(t *testing.T) {
	for _, tc := range []struct {
		name   string
		status int // the blocked first attempt's answer
	}{{"in-flight delivered", http.StatusOK}, {"in-flight fails", http.StatusBadGateway}} {
		t.Run(tc.name, func(t *testing.T) {
			entered, release := make(chan struct{}), make(chan struct{})
			rc := newReceiver(t, func(w http.ResponseWriter, r *http.Request, n int) {
				if n == 1 {
					close(entered)
					select {
					case <-release:
					case <-r.Context().Done(): // the Sender stopped (the test failed)
					}
					w.WriteHeader(tc.status)
					return
				}
				w.WriteHeader(http.StatusOK)
			})
			const queue, total = 3, 10
			s, st := newSender(t, func(c *webhook.Config) { c.Queue = queue; c.Timeout = 10 * time.Second }, rc.url())
			s.RoomEvent(joined("r", "p0"))
			select {
			case <-entered:
			case <-time.After(waitFor):
				t.Fatal("the first event never reached the receiver")
			}
			for i := 1; i < total; i++ {
				s.RoomEvent(joined("r", fmt.Sprint("p", i)))
			}
			if q := st.WebhooksQueued.Load(); q != queue {
				t.Fatalf("queued %d, want the bound %d", q, queue)
			}
			if d := st.WebhooksDropped.Load(); d != total-queue-1 {
				t.Fatalf("dropped %d while the first is in flight, want %d", d, total-queue-1)
			}
			close(release)
			if got := rc.next().event(t).Peer.ID; got != "p0" {
				t.Fatalf("first request %s", got)
			}
			for i := total - queue; i < total; i++ {
				if got, want := rc.next().event(t).Peer.ID, fmt.Sprint("p", i); got != want {
					t.Fatalf("got %s, want %s (the newest %d survive)", got, want, queue)
				}
			}
			wantDelivered, wantDropped := uint64(queue+1), uint64(total-queue-1)
			if tc.status != http.StatusOK {
				wantDelivered, wantDropped = queue, total-queue
			}
			eventually(t, "counters", func() bool {
				return st.WebhooksDelivered.Load() == wantDelivered && st.WebhooksQueued.Load() == 0
			})
			if err := shutdown(s, waitFor); err != nil {
				t.Fatal(err)
			}
			rc.expectNone()
			if st.WebhooksDropped.Load() != wantDropped || st.WebhookRetries.Load() != 0 {
				t.Fatalf("dropped %d (want %d) retried %d", st.WebhooksDropped.Load(), wantDropped, st.WebhookRetries.Load())
			}
		})
	}
}

// RoomEvent never waits on a receiver, even one that never answers with a full queue.
func TestWebhookRoomEventNeverBlocks(t *testing.T) {
	rc := newReceiver(t, func(w http.ResponseWriter, r *http.Request, n int) { <-r.Context().Done() })
	s, st := newSender(t, func(c *webhook.Config) { c.Queue = 100; c.Timeout = time.Minute }, rc.url())
	const n = 20000
	e := joined("r", "p")
	s.RoomEvent(e)
	rc.next() // stuck in flight from now on
	start := time.Now()
	for range n - 1 {
		s.RoomEvent(e)
	}
	el := time.Since(start)
	t.Logf("%d RoomEvent calls against a stuck receiver: %v (%v each)", n-1, el, el/(n-1))
	if el > 2*time.Second {
		t.Fatalf("RoomEvent took %v for %d events", el, n-1)
	}
	// The stuck one was pushed out too, but is counted when its attempt ends.
	if st.WebhooksQueued.Load() != 100 || st.WebhooksDropped.Load() != n-100-1 {
		t.Fatalf("queued %d dropped %d", st.WebhooksQueued.Load(), st.WebhooksDropped.Load())
	}
	// Shutdown gives up at its deadline, cuts the stuck attempt and drops the rest.
	start = time.Now()
	err := shutdown(s, 200*time.Millisecond)
	if err == nil || !strings.Contains(err.Error(), "101 events not delivered") {
		t.Fatalf("Shutdown: %v", err)
	}
	if el := time.Since(start); el > 2*time.Second {
		t.Fatalf("Shutdown took %v past its deadline", el)
	}
	if st.WebhooksQueued.Load() != 0 || st.WebhooksDropped.Load() != n {
		t.Fatalf("after shutdown: queued %d dropped %d", st.WebhooksQueued.Load(), st.WebhooksDropped.Load())
	}
	s.RoomEvent(e) // after Shutdown: dropped, counted, no panic
	if st.WebhooksDropped.Load() != n+1 {
		t.Fatalf("an event after shutdown was not counted dropped")
	}
}

// Shutdown delivers what is queued, retries included, before it returns.
func TestWebhookShutdownFlushes(t *testing.T) {
	rc := newReceiver(t, func(w http.ResponseWriter, r *http.Request, n int) {
		if n%3 == 0 {
			w.WriteHeader(http.StatusInternalServerError)
			return
		}
		w.WriteHeader(http.StatusOK)
	})
	s, st := newSender(t, nil, rc.url())
	const n = 30
	for i := range n {
		s.RoomEvent(joined("r", fmt.Sprint("p", i)))
	}
	if err := shutdown(s, waitFor); err != nil {
		t.Fatal(err)
	}
	if st.WebhooksDelivered.Load() != n || st.WebhooksQueued.Load() != 0 || st.WebhookRetries.Load() == 0 {
		t.Fatalf("after shutdown: delivered %d queued %d retried %d", st.WebhooksDelivered.Load(), st.WebhooksQueued.Load(), st.WebhookRetries.Load())
	}
	// The delivery goroutines (New starts them) end: they are past their last step already
	// (Shutdown waited for them) but may still be on their way out.
	eventually(t, "the delivery goroutines to end", func() bool {
		buf := make([]byte, 1<<20)
		stacks := string(buf[:runtime.Stack(buf, true)])
		return !strings.Contains(stacks, "created by github.com/switchboard-rtc/switchboard/internal/webhook.New")
	})
}

// Neither the secret nor the URL's credentials reach a log or an error.
func TestWebhookSecretsNotLogged(t *testing.T) {
	var logs testenv.Buffer
	rc := newReceiver(t, func(w http.ResponseWriter, r *http.Request, n int) {
		if n == 1 {
			w.WriteHeader(http.StatusBadGateway)
			return
		}
		if n == 2 { // a network error, whose text would quote the URL
			c, _, err := http.NewResponseController(w).Hijack()
			if err == nil {
				_ = c.Close()
			}
			return
		}
		w.WriteHeader(http.StatusForbidden)
	})
	u := strings.Replace(rc.url(), "http://", "http://hookuser:pa55word@", 1) + "?token=t0ken"
	s, _ := newSender(t, func(c *webhook.Config) {
		c.Logger = slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}, u)
	s.RoomEvent(joined("r", "a"))
	for range 3 {
		rc.next()
	}
	if err := shutdown(s, waitFor); err != nil {
		t.Fatal(err)
	}
	out := logs.String()
	for _, secret := range []string{"pa55word", "hookuser", "t0ken", string(testKey.Secret)} {
		if strings.Contains(out, secret) {
			t.Fatalf("log shows %q:\n%s", secret, out)
		}
	}
	if !strings.Contains(out, "REDACTED@127.0.0.1") || !strings.Contains(out, "status=403") || !strings.Contains(out, "HTTP 502") {
		t.Fatalf("log lacks the redacted URL or the statuses:\n%s", out)
	}
	_, err := webhook.New(webhook.Config{URLs: []string{"ftp://u:pa55word@x/"}, Key: testKey})
	if err == nil || strings.Contains(err.Error(), "pa55word") {
		t.Fatalf("New with a bad URL: %v", err)
	}
}

func TestWebhookRedact(t *testing.T) {
	for in, want := range map[string]string{
		"https://hooks.example.com/a":               "https://hooks.example.com/a",
		"https://u:p@hooks.example.com/a?k=v#frag":  "https://REDACTED@hooks.example.com/a?REDACTED",
		"http://only-user@127.0.0.1:9/x":            "http://REDACTED@127.0.0.1:9/x",
		"http://127.0.0.1:9/x?":                     "http://127.0.0.1:9/x?REDACTED",
		"http://[::1]:9/%zz":                        "(unparsable URL)",
		"https://h/p?secret=1&other=2":              "https://h/p?REDACTED",
		"https://u:p%40ss@h:8443/deep/path/?q=1#f2": "https://REDACTED@h:8443/deep/path/?REDACTED",
	} {
		if got := webhook.Redact(in); got != want {
			t.Errorf("Redact(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestWebhookConfig(t *testing.T) {
	for name, c := range map[string]webhook.Config{
		"no url":      {Key: testKey},
		"bad scheme":  {URLs: []string{"ftp://h/"}, Key: testKey},
		"no host":     {URLs: []string{"http:///x"}, Key: testKey},
		"no key":      {URLs: []string{"http://h/"}},
		"no secret":   {URLs: []string{"http://h/"}, Key: auth.Key{ID: "k"}},
		"max < min":   {URLs: []string{"http://h/"}, Key: testKey, MinBackoff: time.Second, MaxBackoff: time.Millisecond},
		"neg timeout": {URLs: []string{"http://h/"}, Key: testKey, Timeout: -1},
		"neg queue":   {URLs: []string{"http://h/"}, Key: testKey, Queue: -1},
	} {
		if _, err := webhook.New(c); err == nil {
			t.Errorf("%s: New accepted %+v", name, c)
		}
	}
	s, err := webhook.New(webhook.Config{URLs: []string{"http://127.0.0.1:9/"}, Key: testKey, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
}
