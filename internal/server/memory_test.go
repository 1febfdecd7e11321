package server_test

import (
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/switchboard-rtc/switchboard/internal/config"
)

const testBudget = 8 << 20

// budgetServer starts a server with an 8 MiB memory budget and a rate limit a flood does not
// hit (the flood is the point).
func budgetServer(t *testing.T, mod func(*config.Config)) *testServer {
	return startServer(t, func(c *config.Config) {
		c.MemoryBudget = testBudget
		c.RateLimit = 100_000
		c.RateBurst = 100_000
		if mod != nil {
			mod(c)
		}
	})
}

// metricNumber scrapes one series as a number (-1 when absent).
func metricNumber(t *testing.T, ts *testServer, series string) float64 {
	t.Helper()
	v := metricValue(t, ts, series)
	if v == "" {
		return -1
	}
	f, err := strconv.ParseFloat(v, 64)
	if err != nil {
		t.Fatalf("%s = %q", series, v)
	}
	return f
}

// canary is a pair of native peers in their own room: a relays to b every 20 ms until stop,
// and b counts what arrives, in order.
type canary struct {
	sent, got int
	stop      chan struct{}
	done      chan struct{}
}

func startCanary(t *testing.T, ts *testServer) *canary {
	t.Helper()
	a, b := dial(t, ts), dial(t, ts)
	a.join("canary", nil)
	b.join("canary", nil)
	a.expect("peer-joined")
	k := &canary{stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(k.done)
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-k.stop:
				return
			case <-tick.C:
			}
			k.sent++
			a.send(map[string]any{"type": "message", "target": b.id, "data": map[string]int{"n": k.sent}})
			select {
			case m, ok := <-b.msgs:
				if !ok || m.Type != "message" || !strings.Contains(string(m.Data), `"n":`+strconv.Itoa(k.sent)+`}`) {
					return
				}
				k.got++
			case <-time.After(waitFor):
				return
			}
		}
	}()
	return k
}

// finish stops the canary and checks it lost nothing.
func (k *canary) finish(t *testing.T) {
	t.Helper()
	close(k.stop)
	<-k.done
	if k.sent == 0 || k.got != k.sent {
		t.Fatalf("canary: %d of %d messages arrived", k.got, k.sent)
	}
	t.Logf("canary: %d of %d messages arrived", k.got, k.sent)
}

// settled waits until the reclaimer has brought what is held below nine tenths of the
// budget, where new connections are served again.
func settled(t *testing.T, ts *testServer) {
	t.Helper()
	waitHeld(t, ts, "below nine tenths of the budget", waitFor, func(h float64) bool { return h < 0.9*testBudget })
}

// newcomer checks that a client from src still connects, joins and relays.
func newcomer(t *testing.T, ts *testServer, src string) {
	t.Helper()
	hc := fromAddr(t, src)
	c, st := wsFrom(t, hc, ts.ws)
	if st != http.StatusSwitchingProtocols {
		t.Fatalf("newcomer from %s: %d", src, st)
	}
	n := &client{t: t, c: c, msgs: make(chan msg, 64), errc: make(chan error, 1)}
	go n.readLoop()
	other := dial(t, ts)
	n.join("newcomers-"+src, nil)
	other.join("newcomers-"+src, nil)
	n.expect("peer-joined")
	n.send(map[string]any{"type": "message", "target": other.id, "data": "hello"})
	if m := other.expect("message"); string(m.Data) != `"hello"` {
		t.Fatalf("newcomer's message: %s", m.Raw)
	}
}

// TestMemoryBudgetPollingQueues (issue 12, item 1): long-polling sockets that never poll
// again are sent events until what they would queue is three times the budget. What the
// server holds never passes the budget, the biggest queues are dropped (counted), a canary
// pair loses nothing, and a newcomer from another address is served.
func TestMemoryBudgetPollingQueues(t *testing.T) {
	ts := budgetServer(t, nil)
	k := startCanary(t, ts)

	const victims = 24
	hog := fromAddr(t, "127.0.0.2")
	ids := make([]string, victims)
	for i := range ids {
		ids[i] = openPollingWith(t, ts.base, hog).id
	}
	sender := dialSocketIO(t, ts)
	pad := strings.Repeat("x", 32<<10)
	// 24 MiB in 32 KiB events, round-robin: each queue would reach 1 MiB (its own cap) only
	// at the end, so the budget is what stops them first.
	for i := 0; i < 3*testBudget/len(pad); i++ {
		sender.write(`42["offer",{"target":"` + ids[i%victims] + `","sdp":"` + pad + `"}]`)
	}
	// Events are handled in order: once this one's ack (an unknown-target error) is back,
	// the flood has been dealt with.
	sender.write(`421["offer",{"target":"nobody","sdp":""}]`)
	for !strings.HasPrefix(sender.read(), "431") {
	}
	if got := metricNumber(t, ts, `switchboard_memory_dropped_total{what="poll-queue"}`); got < 1 {
		t.Fatalf("no polling queue dropped; held %v", metricNumber(t, ts, "switchboard_memory_held_bytes"))
	}
	settled(t, ts)
	k.finish(t)
	peak := metricNumber(t, ts, "switchboard_memory_held_peak_bytes")
	if peak <= 0 || peak > testBudget {
		t.Fatalf("peak held %v, want within the %d budget", peak, testBudget)
	}
	if got := metricNumber(t, ts, "switchboard_memory_budget_bytes"); got != testBudget {
		t.Fatalf("budget metric %v", got)
	}
	newcomer(t, ts, "127.0.0.3")
	t.Logf("peak held %.0f of %d; dropped %v polling queues; held now %v", peak, testBudget,
		metricNumber(t, ts, `switchboard_memory_dropped_total{what="poll-queue"}`),
		metricNumber(t, ts, "switchboard_memory_held_bytes"))
}

// TestMemoryBudgetNonReadingPeers (issue 12, item 8): native peers that never read are
// relayed to until their queues would be twice the budget. Each socket's kernel buffer is
// bounded by --socket-send-buffer and charged while the peer is backed up, what the server
// holds never passes the budget, the biggest holders are dropped as slow, the canary loses
// nothing and a newcomer is served.
func TestMemoryBudgetNonReadingPeers(t *testing.T) {
	ts := budgetServer(t, func(c *config.Config) { c.SocketSendBuffer = 64 << 10 })
	k := startCanary(t, ts)

	const victims = 16
	var ids []string
	for i := 0; i < victims; i++ {
		r := dialRaw(t, ts, 4096)
		r.sendText(`{"type":"join","room":"flood"}`)
		w := r.expectText("welcome")
		ids = append(ids, w.peerID())
	}
	sender := dial(t, ts)
	sender.join("flood", nil)
	pad := strings.Repeat("y", 32<<10)
	for i := 0; i < 2*testBudget/len(pad); i++ {
		sender.sendRaw(`{"type":"message","target":"` + ids[i%victims] + `","data":"` + pad + `"}`)
	}
	// Frames are handled in order: once this one's answer is back, the flood has been dealt with.
	sender.send(map[string]any{"type": "message", "target": "nobody", "id": "end"})
	for m := sender.next(); string(m.ID) != `"end"`; m = sender.next() {
	}
	if got := metricNumber(t, ts, `switchboard_memory_dropped_total{what="ws-queue"}`); got < 1 {
		t.Fatalf("no send queue dropped; held %v", metricNumber(t, ts, "switchboard_memory_held_bytes"))
	}
	settled(t, ts)
	k.finish(t)
	peak := metricNumber(t, ts, "switchboard_memory_held_peak_bytes")
	if peak <= 0 || peak > testBudget {
		t.Fatalf("peak held %v, want within the %d budget", peak, testBudget)
	}
	newcomer(t, ts, "127.0.0.3")
	t.Logf("peak held %.0f of %d; dropped %v send queues", peak, testBudget,
		metricNumber(t, ts, `switchboard_memory_dropped_total{what="ws-queue"}`))
}

// TestKernelBufferCharged (issue 12, item 8): what a non-reading peer's kernel send buffer
// holds is charged even while the server queues nothing for it (the kernel took all it was
// sent), and given back once the peer reads.
func TestKernelBufferCharged(t *testing.T) {
	ts := budgetServer(t, func(c *config.Config) { c.SocketSendBuffer = 64 << 10 })
	const victims = 8
	var rs []*rawClient
	var ids []string
	for i := 0; i < victims; i++ {
		r := dialRaw(t, ts, 4096)
		r.sendText(`{"type":"join","room":"kernel"}`)
		ids = append(ids, r.expectText("welcome").peerID())
		rs = append(rs, r)
	}
	sender := dial(t, ts)
	sender.join("kernel", nil)
	pad := strings.Repeat("k", 16<<10)
	// 80 KiB each: less than the kernel's 128 KiB buffer, so nothing waits in the server's
	// own queue.
	for i := 0; i < 5*victims; i++ {
		sender.sendRaw(`{"type":"message","target":"` + ids[i%victims] + `","data":"` + pad + `"}`)
	}
	sender.send(map[string]any{"type": "message", "target": "nobody", "id": "end"})
	for m := sender.next(); string(m.ID) != `"end"`; m = sender.next() {
	}
	held := metricNumber(t, ts, "switchboard_memory_held_bytes")
	if held < victims*48<<10 {
		t.Fatalf("held %v for %d peers with ~80 KiB each in their kernel buffers", held, victims)
	}
	t.Logf("held %.0f bytes for %d non-reading peers", held, victims)
	// The peers read everything and answer the mark pings that follow, as every WebSocket
	// client does: the charge goes (the loop's tick looks again at the kernel buffers; the
	// pongs empty the outboxes).
	for _, r := range rs {
		_ = r.conn.SetReadDeadline(time.Now().Add(waitFor))
		for n, marked := 0, false; n < 5 || !marked; {
			op, p, err := r.readFrame()
			if err != nil {
				t.Fatal(err)
			}
			if op == 0x9 {
				r.writeFrame(0x8A, p, true)
				marked = n == 5
			}
			if op == 0x1 && strings.HasPrefix(string(p), `{"type":"message"`) {
				n++
			}
		}
	}
	waitHeld(t, ts, "after the peers read everything", waitFor, func(h float64) bool { return h == 0 })
}
