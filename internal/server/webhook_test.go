package server_test

import (
	"fmt"
	"net/http"
	"reflect"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/switchboard-rtc/switchboard/internal/config"
)

// Every room event reaches every URL once, in order per room, signed with the webhook key,
// with the peer as its token made it.
func TestWebhookEventsOnceInOrderSigned(t *testing.T) {
	r1, r2 := startReceiver(t, nil), startReceiver(t, nil)
	ts := startServer(t, func(c *config.Config) { withWebhooks(c, r1.url(), r2.url()) })

	a, b, c1, c2 := dial(t, ts), dial(t, ts), dial(t, ts), dial(t, ts)
	a.join("sales", map[string]any{"token": hookToken(t, "alice", "sales")})
	b.join("sales", map[string]any{"token": hookToken(t, "bob", "sales")})
	a.expect("peer-joined")
	c1.join("ops", map[string]any{"token": hookToken(t, "carol", "ops")})
	// carol again: takes over, the first presence is replaced.
	c2.join("ops", map[string]any{"token": hookToken(t, "carol", "o*")})
	for m := c1.next(); m.Type != "error" || m.Code != "replaced"; m = c1.next() {
		if m.Type != "peer-joined" { // whether the replaced presence hears of its successor is not the point here
			t.Fatalf("replaced presence got %s", m.Raw)
		}
	}
	b.send(map[string]any{"type": "leave", "id": 1})
	b.expect("ack")
	a.expect("peer-left")
	if err := a.c.Close(websocket.StatusNormalClosure, "bye"); err != nil {
		t.Fatal(err)
	}
	if err := c2.c.Close(websocket.StatusNormalClosure, "bye"); err != nil {
		t.Fatal(err)
	}
	want := map[string][]string{
		"sales": {"room-started sales", "peer-joined sales alice", "peer-joined sales bob",
			"peer-left sales bob left", "peer-left sales alice closed", "room-finished sales"},
		"ops": {"room-started ops", "peer-joined ops carol", "peer-joined ops carol",
			"peer-left ops carol replaced", "peer-left ops carol closed", "room-finished ops"},
	}
	ids := map[string]bool{}
	for i, rc := range []*hookReceiver{r1, r2} {
		got := rc.take(12, waitFor)
		if g := byRoom(got); !reflect.DeepEqual(g, want) {
			t.Fatalf("receiver %d got\n%v\nwant\n%v", i+1, g, want)
		}
		checkOnce(t, got)
		for _, h := range got {
			e := h.ev
			if i == 0 {
				ids[e.ID] = true
			} else if !ids[e.ID] {
				t.Fatalf("event %s at the second URL has another id than at the first", e.short())
			}
			if h.header.Get("Switchboard-Event") != e.Event || e.CreatedAt == "" || e.SentAt == "" {
				t.Fatalf("event %s: header %q, times %q %q", e.short(), h.header.Get("Switchboard-Event"), e.CreatedAt, e.SentAt)
			}
			if e.Peer == nil {
				continue
			}
			p := e.Peer
			if p.Name != "Name of "+p.Identity || string(p.Meta) != `{"who":"`+p.Identity+`"}` || p.JoinedAt == "" || p.Node != "" || len(p.ID) < 22 {
				t.Fatalf("peer of %s: %+v", e.short(), p)
			}
		}
		// The peer ids are those of the welcomes.
		var pj []string
		for _, h := range got {
			if h.ev.Event == "peer-joined" && h.ev.Room == "sales" {
				pj = append(pj, h.ev.Peer.ID)
			}
		}
		if !reflect.DeepEqual(pj, []string{a.id, b.id}) {
			t.Fatalf("peer-joined ids %v, want %v", pj, []string{a.id, b.id})
		}
	}
	// Stopping the server delivers whatever is queued: nothing more was.
	stopServer(t, ts)
	for i, rc := range []*hookReceiver{r1, r2} {
		if extra := rc.rest(); len(extra) != 0 {
			t.Fatalf("receiver %d got %d more events, first %s", i+1, len(extra), extra[0].ev.short())
		}
	}
}

// A receiver down for 5 s gets, once back, every event of that time, in order, once.
func TestWebhookReceiverDownThenBack(t *testing.T) {
	rc := startReceiver(t, nil)
	rc.gate.setDown(true)
	ts := startServer(t, func(c *config.Config) {
		withWebhooks(c, rc.url())
		c.WebhookQueue = 100
	})
	downFor := 5 * time.Second
	back := time.AfterFunc(downFor, func() { rc.gate.setDown(false) })
	defer back.Stop()

	// 3 rooms, 2 peers each joining and leaving: 18 events while the receiver is down.
	queued := time.Now()
	want := map[string][]string{}
	for i := range 3 {
		room := fmt.Sprint("room-", i)
		x, y := dial(t, ts), dial(t, ts)
		x.join(room, map[string]any{"token": hookToken(t, "x", room)})
		y.join(room, map[string]any{"token": hookToken(t, "y", room)})
		x.expect("peer-joined")
		y.send(map[string]any{"type": "leave", "id": 1})
		y.expect("ack")
		x.expect("peer-left")
		x.send(map[string]any{"type": "leave", "id": 1})
		x.expect("ack")
		want[room] = []string{"room-started " + room, "peer-joined " + room + " x", "peer-joined " + room + " y",
			"peer-left " + room + " y left", "peer-left " + room + " x left", "room-finished " + room}
	}
	// The sender is retrying: the receiver reset its connections more than once.
	for range 2 {
		select {
		case <-rc.gate.refused:
		case <-time.After(downFor):
			t.Fatal("no retry reached the receiver while it was down")
		}
	}
	// Back at 5 s; backoff doubles from 250 ms, so the next retry comes within ~8 s of the start.
	got := rc.take(18, 15*time.Second)
	t.Logf("the 18 events arrived %v after the first was queued (the receiver was down for %v)", time.Since(queued).Round(time.Millisecond), downFor)
	if g := byRoom(got); !reflect.DeepEqual(g, want) {
		t.Fatalf("got\n%v\nwant\n%v", g, want)
	}
	checkOnce(t, got)
	st := ts.Hub().Stats()
	eventually(t, "the last answer", func() bool { return st.WebhooksDelivered.Load() == 18 })
	if v := metricValue(t, ts, `switchboard_webhooks_total{result="delivered"}`); v != "18" {
		t.Fatalf("delivered %s, want 18", v)
	}
	if v := metricValue(t, ts, `switchboard_webhooks_total{result="retried"}`); v == "0" || v == "" {
		t.Fatalf("retried %s, want some", v)
	}
	if v := metricValue(t, ts, `switchboard_webhooks_total{result="dropped"}`); v != "0" {
		t.Fatalf("dropped %s, want 0", v)
	}
	if v := metricValue(t, ts, `switchboard_webhooks_queued`); v != "0" {
		t.Fatalf("queued %s, want 0", v)
	}
	stopServer(t, ts)
	if extra := rc.rest(); len(extra) != 0 {
		t.Fatalf("%d more events, first %s", len(extra), extra[0].ev.short())
	}
}

// A stopping server that cannot resume presences (--resume-grace 0) says goodbye to its
// peers, then delivers their peer-left and the room-finished before Run returns. (With
// resumption a stop is a restart: the presences are muted, and nobody hears them leave.)
func TestWebhookShutdownDeliversLastEvents(t *testing.T) {
	rc := startReceiver(t, nil)
	ts := startServer(t, func(c *config.Config) { withWebhooks(c, rc.url()); c.ResumeGrace = 0 })
	a, b := dial(t, ts), dial(t, ts)
	a.join("r", map[string]any{"token": hookToken(t, "a", "r")})
	b.join("r", map[string]any{"token": hookToken(t, "b", "r")})
	a.expect("peer-joined")
	rc.take(3, waitFor)
	stopServer(t, ts)
	var got []string
	for _, h := range rc.rest() { // no waiting: all of it is there once Run has returned
		checkHookSignature(t, h)
		got = append(got, h.ev.short())
	}
	if len(got) != 3 || got[2] != "room-finished r" || !reflect.DeepEqual(
		map[string]bool{got[0]: true, got[1]: true}, map[string]bool{"peer-left r a shutdown": true, "peer-left r b shutdown": true}) {
		t.Fatalf("events delivered at shutdown: %v", got)
	}
}

// A full queue drops the oldest events and counts them.
func TestWebhookQueueOverflowDropsOldest(t *testing.T) {
	entered, release := make(chan struct{}), make(chan struct{})
	rc := startReceiver(t, func(w http.ResponseWriter, r *http.Request, n int) {
		if n == 1 {
			close(entered)
			select {
			case <-release:
			case <-r.Context().Done(): // the server stopped (the test failed)
			}
		}
		w.WriteHeader(http.StatusOK)
	})
	const queue = 3
	ts := startServer(t, func(c *config.Config) {
		withWebhooks(c, rc.url())
		c.WebhookQueue = queue
		c.WebhookTimeout = time.Minute
	})
	st := ts.Hub().Stats()
	first := dial(t, ts)
	first.join("r", map[string]any{"token": hookToken(t, "p0", "r")})
	select { // room-started is stuck at the receiver; peer-joined p0 waits
	case <-entered:
	case <-time.After(waitFor):
		t.Fatal("the first event never reached the receiver")
	}
	const more = 7
	for i := 1; i <= more; i++ {
		dial(t, ts).join("r", map[string]any{"token": hookToken(t, fmt.Sprint("p", i), "r")})
	}
	// 9 events: room-started in flight, then 8 joins into a queue of 3 (room-started counts
	// in it until it is pushed out): 5 dropped so far; room-started is counted when it ends.
	eventually(t, "the drops", func() bool { return st.WebhooksDropped.Load() == 1+more-queue })
	if v := metricValue(t, ts, `switchboard_webhooks_queued`); v != fmt.Sprint(queue) {
		t.Fatalf("queued %s, want %d", v, queue)
	}
	close(release)
	got := rc.take(1+queue, waitFor)
	var short []string
	for _, h := range got {
		short = append(short, h.ev.short())
	}
	if want := []string{"room-started r", "peer-joined r p5", "peer-joined r p6", "peer-joined r p7"}; !reflect.DeepEqual(short, want) {
		t.Fatalf("got %v, want %v (the oldest dropped)", short, want)
	}
	if v := metricValue(t, ts, `switchboard_webhooks_total{result="dropped"}`); v != fmt.Sprint(1+more-queue) {
		t.Fatalf("dropped metric %s, want %d", v, 1+more-queue)
	}
	eventually(t, "the deliveries", func() bool { return st.WebhooksDelivered.Load() == 1+queue })
}

// A receiver that never answers does not delay joins: join latency with it is that without,
// measured in the same test, joins alternating between the two servers. (BenchmarkWebhookJoin
// measures the same with more joins; the target there is p99 within +1 ms.)
func TestWebhookStuckReceiverDoesNotDelayJoins(t *testing.T) {
	unblock := make(chan struct{})
	stuck := startReceiver(t, func(w http.ResponseWriter, r *http.Request, n int) {
		select { // never answers
		case <-r.Context().Done():
		case <-unblock:
		}
	})
	t.Cleanup(func() { close(unblock) }) // after the servers' cleanups, before the receiver's
	with, withURL := runServer(t, func(c *config.Config) {
		withWebhooks(c, stuck.url())
		c.WebhookQueue = 100
		c.WebhookTimeout = 30 * time.Second
	})
	_, withoutURL := runServer(t, func(c *config.Config) { withWebhooks(c) })
	jw, jn := newJoiner(t, withURL), newJoiner(t, withoutURL)
	for i := range 20 { // warm up
		jw.joinLeave(fmt.Sprint("lat-warm-", i))
		jn.joinLeave(fmt.Sprint("lat-warm-", i))
	}
	stuck.next(waitFor) // the first event is stuck at the receiver from now on
	const n = 400
	var lw, ln latencies
	for i := range n {
		room := fmt.Sprint("lat-", i)
		if i%2 == 0 {
			lw = append(lw, jw.joinLeave(room))
			ln = append(ln, jn.joinLeave(room))
		} else {
			ln = append(ln, jn.joinLeave(room))
			lw = append(lw, jw.joinLeave(room))
		}
	}
	st := with.Hub().Stats()
	t.Logf("join latency, webhook receiver that never answers: %v", lw)
	t.Logf("join latency, no webhooks:                         %v", ln)
	t.Logf("p99 difference %v; webhook queue %d, dropped %d", lw.pct(0.99)-ln.pct(0.99), st.WebhooksQueued.Load(), st.WebhooksDropped.Load())
	if st.WebhooksDropped.Load() == 0 || st.WebhooksDelivered.Load() != 0 {
		t.Fatalf("the stuck receiver's queue should have overflowed: dropped %d delivered %d", st.WebhooksDropped.Load(), st.WebhooksDelivered.Load())
	}
	if lw.pct(0.99) > ln.pct(0.99)+50*time.Millisecond {
		t.Fatalf("a stuck webhook receiver delays joins: p99 %v vs %v", lw.pct(0.99), ln.pct(0.99))
	}
}
