package server_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/switchboard-rtc/switchboard/internal/config"
	"github.com/switchboard-rtc/switchboard/protocol"
)

func TestJoinPresenceOrdering(t *testing.T) {
	ts := startServer(t, nil)
	a, b, c := dial(t, ts), dial(t, ts), dial(t, ts)

	wa := a.join("standup", map[string]any{"name": "Ada", "meta": map[string]any{"avatar": "fox"}})
	if len(wa.Peers) != 0 || wa.Room != "standup" || wa.V != 1 {
		t.Fatalf("first welcome: %s", wa.Raw)
	}
	if !strings.Contains(wa.Raw, `"iceServers":[]`) {
		t.Fatalf("welcome lacks iceServers: %s", wa.Raw)
	}
	wb := b.join("standup", map[string]any{"name": "Grace"})
	if len(wb.Peers) != 1 || wb.Peers[0].ID != a.id || wb.Peers[0].Name != "Ada" || string(wb.Peers[0].Meta) != `{"avatar":"fox"}` {
		t.Fatalf("second welcome should list Ada with her meta: %s", wb.Raw)
	}
	if pj := a.expect("peer-joined"); pj.peerID() != b.id || !strings.Contains(pj.Raw, `"name":"Grace"`) {
		t.Fatalf("peer-joined: %s", pj.Raw)
	}
	wc := c.join("standup", nil)
	if len(wc.Peers) != 2 || wc.Peers[0].ID != a.id || wc.Peers[1].ID != b.id {
		t.Fatalf("third welcome should list Ada then Grace: %s", wc.Raw)
	}
	for _, cl := range []*client{a, b} {
		if pj := cl.expect("peer-joined"); pj.peerID() != c.id {
			t.Fatalf("peer-joined: %s", pj.Raw)
		}
	}
	if a.id == b.id || b.id == c.id || a.id == c.id {
		t.Fatal("peer ids collide")
	}

	// An explicit leave is acked and announced; a closed socket is an implicit leave.
	b.send(map[string]any{"type": "leave", "id": 9})
	if ack := b.expect("ack"); string(ack.ID) != "9" {
		t.Fatalf("leave ack: %s", ack.Raw)
	}
	for _, cl := range []*client{a, c} {
		if pl := cl.expect("peer-left"); pl.peerID() != b.id || pl.Reason != "left" {
			t.Fatalf("peer-left: %s", pl.Raw)
		}
	}
	if err := c.c.Close(websocket.StatusNormalClosure, "bye"); err != nil {
		t.Fatalf("closing handshake: %v", err) // the server must answer our close frame
	}
	if pl := a.expect("peer-left"); pl.peerID() != c.id || pl.Reason != "closed" {
		t.Fatalf("peer-left after close: %s", pl.Raw)
	}
	// After leaving, b can join another room with a new id.
	old := b.id
	b.join("other", nil)
	if b.id == old {
		t.Fatal("rejoin reused the old id")
	}
}

func TestRelayStampsSenderAndKeepsData(t *testing.T) {
	ts := startServer(t, nil)
	a, b := dial(t, ts), dial(t, ts)
	a.join("r", nil)
	b.join("r", nil)
	a.expect("peer-joined")

	data := `{"type":"offer","sdp":"v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\n","weird":[1,2.5e3,true,null,"\u00e9"]}`
	for _, typ := range []string{"offer", "answer", "ice-candidate", "message"} {
		a.sendRaw(`{"type":"` + typ + `","id":"x1","from":"spoofed","target":"` + b.id + `","data":` + data + `}`)
		if ack := a.expect("ack"); string(ack.ID) != `"x1"` {
			t.Fatalf("ack: %s", ack.Raw)
		}
		m := b.expect(typ)
		if m.From != a.id {
			t.Fatalf("from = %q, want the real sender %q", m.From, a.id)
		}
		if string(m.Data) != data {
			t.Fatalf("data changed in transit:\n got %s\nwant %s", m.Data, data)
		}
		if strings.Contains(m.Raw, "spoofed") || strings.Contains(m.Raw, "target") {
			t.Fatalf("relay leaks client fields: %s", m.Raw)
		}
		// The relay's id goes with it (a receiver drops a retry it already has).
		if string(m.ID) != `"x1"` || strings.Contains(m.Raw, "retry") {
			t.Fatalf("relay without its id, or marked retry: %s", m.Raw)
		}
	}
	// Without an id there is no ack.
	a.send(map[string]any{"type": "ice-candidate", "target": b.id, "data": map[string]any{"candidate": "c"}})
	b.expect("ice-candidate")
	a.expectNothing(100 * time.Millisecond)

	// Broadcast goes to everyone else, not back to the sender.
	c := dial(t, ts)
	c.join("r", nil)
	a.expect("peer-joined")
	b.expect("peer-joined")
	a.send(map[string]any{"type": "message", "broadcast": true, "data": "hi all"})
	for _, cl := range []*client{b, c} {
		if m := cl.expect("message"); m.From != a.id || string(m.Data) != `"hi all"` || !strings.Contains(m.Raw, `"broadcast":true`) {
			t.Fatalf("broadcast: %s", m.Raw)
		}
	}
	a.expectNothing(100 * time.Millisecond)
}

func TestRelayOrderPerPair(t *testing.T) {
	ts := startServer(t, func(c *config.Config) { c.RateLimit, c.RateBurst = 1e6, 1e6 })
	a, b := dial(t, ts), dial(t, ts)
	a.join("r", nil)
	b.join("r", nil)
	a.expect("peer-joined")
	const n = 500
	for i := 0; i < n; i++ {
		a.send(map[string]any{"type": "ice-candidate", "target": b.id, "data": i})
	}
	for i := 0; i < n; i++ {
		if m := b.expect("ice-candidate"); string(m.Data) != fmt.Sprint(i) {
			t.Fatalf("message %d arrived as %s", i, m.Data)
		}
	}
}

func TestCrossRoomIsolation(t *testing.T) {
	ts := startServer(t, nil)
	a, b, c := dial(t, ts), dial(t, ts), dial(t, ts)
	a.join("one", nil)
	b.join("one", nil)
	a.expect("peer-joined")
	c.join("two", nil)

	a.send(map[string]any{"type": "offer", "id": 1, "target": c.id, "data": "x"})
	inOther := a.expectError("unknown-target")
	a.send(map[string]any{"type": "offer", "id": 1, "target": "AAAAAAAAAAAAAAAAAAAAAA", "data": "x"})
	never := a.expectError("unknown-target")
	if inOther.Raw != never.Raw {
		t.Fatalf("a peer in another room is distinguishable from one that never existed:\n%s\n%s", inOther.Raw, never.Raw)
	}
	a.send(map[string]any{"type": "offer", "id": 2, "target": a.id, "data": "x"})
	a.expectError("unknown-target")
	a.send(map[string]any{"type": "message", "broadcast": true, "data": "room one only"})
	b.expect("message")
	c.expectNothing(150 * time.Millisecond)
}

func TestBadInputGetsErrorAndConnectionGoesOn(t *testing.T) {
	ts := startServer(t, func(c *config.Config) { c.MaxMetaBytes = 64 })
	a, other := dial(t, ts), dial(t, ts)
	other.join("r", nil)

	preJoin := []struct {
		name, frame, code string
	}{
		{"malformed json", `{"type":"join",`, "bad-json"},
		{"not an object", `["join"]`, "bad-json"},
		{"trailing data", `{"type":"leave"} x`, "bad-json"},
		{"unknown type", `{"type":"teleport","id":3}`, "unknown-type"},
		{"missing type", `{"room":"r"}`, "missing-field"},
		{"type not a string", `{"type":7}`, "bad-field"},
		{"join without room", `{"type":"join"}`, "missing-field"},
		{"room wrong type", `{"type":"join","room":5}`, "bad-field"},
		{"room bad charset", `{"type":"join","room":"a/b"}`, "bad-field"},
		{"room too long", `{"type":"join","room":"` + strings.Repeat("x", 65) + `"}`, "bad-field"},
		{"meta not an object", `{"type":"join","room":"r","meta":[1]}`, "bad-field"},
		{"meta too large", `{"type":"join","room":"r","meta":{"k":"` + strings.Repeat("x", 80) + `"}}`, "meta-too-large"},
		{"name too long", `{"type":"join","room":"r","name":"` + strings.Repeat("n", 65) + `"}`, "meta-too-large"},
		{"bad version", `{"type":"join","room":"r","v":2}`, "unsupported-version"},
		{"id wrong type", `{"type":"leave","id":{"a":1}}`, "bad-field"},
		{"relay before join", `{"type":"offer","target":"x","data":{}}`, "not-joined"},
		{"leave before join", `{"type":"leave"}`, "not-joined"},
		{"relay without data", `{"type":"offer","target":"x"}`, "missing-field"},
		{"relay without target", `{"type":"answer","data":{}}`, "missing-field"},
		{"broadcast offer", `{"type":"offer","broadcast":true,"data":{}}`, "bad-field"},
		{"target wrong type", `{"type":"offer","target":1,"data":{}}`, "bad-field"},
	}
	for _, tc := range preJoin {
		t.Run(tc.name, func(t *testing.T) {
			a.t = t
			a.sendRaw(tc.frame)
			a.expectError(tc.code)
		})
	}
	a.t = t

	// Errors echo the request id.
	a.sendRaw(`{"type":"teleport","id":"req-42"}`)
	if e := a.expectError("unknown-type"); string(e.ID) != `"req-42"` {
		t.Fatalf("error does not echo id: %s", e.Raw)
	}
	// Binary frames are refused with an error, not a close.
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	if err := a.c.Write(ctx, websocket.MessageBinary, []byte{1, 2, 3}); err != nil {
		t.Fatal(err)
	}
	a.expectError("binary-unsupported")

	// The connection still works, and so does everyone else's.
	a.join("r", nil)
	other.expect("peer-joined")
	a.sendRaw(`{"type":"join","room":"r"}`)
	a.expectError("already-joined")
	a.send(map[string]any{"type": "offer", "target": other.id, "data": "still here"})
	if m := other.expect("offer"); m.From != a.id {
		t.Fatalf("relay after errors: %s", m.Raw)
	}
}

func TestRoomFull(t *testing.T) {
	ts := startServer(t, func(c *config.Config) { c.MaxPeers = 2 })
	a, b, c := dial(t, ts), dial(t, ts), dial(t, ts)
	a.join("small", nil)
	b.join("small", nil)
	c.sendRaw(`{"type":"join","room":"small","id":1}`)
	c.expectError("room-full")
	a.c.Close(websocket.StatusNormalClosure, "")
	b.expect("peer-left")
	c.join("small", nil)
}

func TestOversizedFrameCloses1009(t *testing.T) {
	ts := startServer(t, func(c *config.Config) { c.MaxFrameBytes = 1024 })
	a, other := dial(t, ts), dial(t, ts)
	a.join("r", nil)
	other.join("r", nil)
	a.expect("peer-joined")
	a.send(map[string]any{"type": "message", "target": other.id, "data": strings.Repeat("x", 2000)})
	a.expectClose(websocket.StatusMessageTooBig)
	if pl := other.expect("peer-left"); pl.peerID() != a.id {
		t.Fatalf("peer-left: %s", pl.Raw)
	}
	// The server goes on.
	c := dial(t, ts)
	c.join("r", nil)
	other.expect("peer-joined")
}

func TestProtocolViolationsClose(t *testing.T) {
	ts := startServer(t, func(c *config.Config) { c.MaxFrameBytes = 1024 })
	cases := []struct {
		name  string
		write func(r *rawClient)
		code  uint16
	}{
		{"unmasked frame", func(r *rawClient) { r.writeFrame(0x81, []byte(`{"type":"leave"}`), false) }, 1002},
		{"reserved bit", func(r *rawClient) { r.writeFrame(0xC1, []byte(`{}`), true) }, 1002},
		{"unknown opcode", func(r *rawClient) { r.writeFrame(0x83, []byte(`{}`), true) }, 1002},
		{"fragmented ping", func(r *rawClient) { r.writeFrame(0x09, []byte("p"), true) }, 1002},
		{"continuation first", func(r *rawClient) { r.writeFrame(0x80, []byte("x"), true) }, 1002},
		{"invalid utf-8", func(r *rawClient) { r.writeFrame(0x81, []byte("{\"type\":\"\xff\"}"), true) }, 1007},
		{"huge declared length", func(r *rawClient) { r.writeFrame(0x81, bytes.Repeat([]byte("x"), 70000), true) }, 1009},
		{"fragments over the limit", func(r *rawClient) {
			r.writeFrame(0x01, bytes.Repeat([]byte("x"), 800), true)
			r.writeFrame(0x80, bytes.Repeat([]byte("x"), 800), true)
		}, 1009},
		{"bad close payload", func(r *rawClient) { r.writeFrame(0x88, []byte{3}, true) }, 1002},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := dialRaw(t, ts, 0)
			tc.write(r)
			r.expectClose(tc.code)
		})
	}
	// Fragmented messages within the limit, with a ping in between, are reassembled.
	t.Run("fragments reassembled", func(t *testing.T) {
		r := dialRaw(t, ts, 0)
		r.writeFrame(0x01, []byte(`{"type":"jo`), true)
		r.writeFrame(0x89, []byte("hi"), true)
		r.writeFrame(0x80, []byte(`in","room":"frag"}`), true)
		op, p, err := r.readFrame()
		if err != nil || op != 0xA || string(p) != "hi" {
			t.Fatalf("pong: op %x %q %v", op, p, err)
		}
		r.expectText("welcome")
	})
}

func TestRateLimit(t *testing.T) {
	ts := startServer(t, func(c *config.Config) { c.RateLimit, c.RateBurst = 5, 5 })
	a, b := dial(t, ts), dial(t, ts)
	a.join("r", nil)
	b.join("r", nil)
	a.expect("peer-joined")
	// The burst (4 left after the join) passes, then the limiter answers rate-limited.
	for i := 0; i < 10; i++ {
		a.send(map[string]any{"type": "message", "target": b.id, "data": i})
	}
	for i := 0; i < 4; i++ {
		b.expect("message")
	}
	for i := 0; i < 6; i++ {
		a.expectError("rate-limited")
	}
	// Keep flooding: strikes run out and the server closes with 1008; b hears "kicked".
	for i := 0; i < 200; i++ {
		ctx, cancel := context.WithTimeout(context.Background(), waitFor)
		err := a.c.Write(ctx, websocket.MessageText, []byte(`{"type":"message","broadcast":true,"data":1}`))
		cancel()
		if err != nil {
			break
		}
	}
	a.expectClose(websocket.StatusPolicyViolation)
	for {
		m := b.next()
		if m.Type == "peer-left" {
			if m.Reason != "kicked" {
				t.Fatalf("peer-left reason %q, want kicked", m.Reason)
			}
			break
		}
	}
}

func TestSlowReaderIsDroppedOthersUnaffected(t *testing.T) {
	ts := startServer(t, func(c *config.Config) {
		c.RateLimit, c.RateBurst = 1e6, 1e6
		c.MaxFrameBytes = 8 << 10
		c.SendQueueBytes = 64 << 10
	})
	slow := dialRaw(t, ts, 4096)
	slow.sendText(`{"type":"join","room":"r"}`)
	w := slow.expectText("welcome")
	slowID := w.peerID()
	flooder, bystander := dial(t, ts), dial(t, ts)
	flooder.join("r", nil)
	bystander.join("r", nil)
	flooder.expect("peer-joined")

	// The slow peer never reads again. Flood it until the server gives up on it.
	payload := strings.Repeat("s", 7000)
	frame := `{"type":"message","target":"` + slowID + `","data":"` + payload + `"}`
	var dropped bool
	for i := 0; i < 2000 && !dropped; i++ {
		flooder.sendRaw(frame)
		select {
		case m := <-flooder.msgs:
			if m.Type == "peer-left" && m.peerID() == slowID {
				if m.Reason != "slow" {
					t.Fatalf("reason %q, want slow", m.Reason)
				}
				dropped = true
			} else if m.Type == "error" && m.Code == "unknown-target" {
				t.Fatalf("slow peer gone without peer-left first: %s", m.Raw)
			}
		default:
		}
	}
	if !dropped {
		m := flooder.next()
		for m.Type != "peer-left" {
			m = flooder.next()
		}
		if m.peerID() != slowID || m.Reason != "slow" {
			t.Fatalf("peer-left: %s", m.Raw)
		}
	}
	// The bystander saw the slow peer go and still gets relays at once.
	for {
		m := bystander.next()
		if m.Type == "peer-left" && m.peerID() == slowID {
			break
		}
	}
	flooder.send(map[string]any{"type": "message", "target": bystander.id, "data": "fine"})
	if m := bystander.expect("message"); string(m.Data) != `"fine"` {
		t.Fatalf("bystander: %s", m.Raw)
	}
	if got := metricValue(t, ts, "switchboard_send_queue_drops_total"); got != "1" {
		t.Fatalf("send queue drops = %s, want 1", got)
	}
}

func TestSilentPeerTimesOut(t *testing.T) {
	ts := startServer(t, func(c *config.Config) {
		c.PingInterval = 100 * time.Millisecond
		c.PeerTimeout = 400 * time.Millisecond
		c.ResumeGrace = 100 * time.Millisecond // kept that long for resumption, then gone
	})
	silent := dialRaw(t, ts, 0)
	silent.sendText(`{"type":"join","room":"r"}`)
	id := silent.expectText("welcome").peerID()
	watcher := dial(t, ts) // coder/websocket answers pings while reading, so it stays
	watcher.join("r", nil)
	// The silent client reads nothing and never answers pings.
	start := time.Now()
	pl := watcher.expect("peer-left")
	if pl.peerID() != id || pl.Reason != "timeout" {
		t.Fatalf("peer-left: %s", pl.Raw)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("dropped after %v, want about the 400ms timeout", d)
	}
	// The pinged, answering watcher is still connected after several timeouts.
	watcher.expectNothing(900 * time.Millisecond)
	watcher.sendRaw(`{"type":"leave","id":1}`)
	watcher.expect("ack")
}

func TestOriginCheck(t *testing.T) {
	ts := startServer(t, func(c *config.Config) { c.AllowedOrigins = []string{"https://app.example.com", "*.trusted.test"} })
	host := strings.TrimPrefix(ts.base, "http://")
	cases := []struct {
		origin string
		ok     bool
	}{
		{"", true},
		{"http://" + host, true},
		{"https://app.example.com", true},
		{"https://x.trusted.test", true},
		{"https://evil.example", false},
		{"https://app.example.com.evil.example", false},
		{"null", false},
	}
	for _, tc := range cases {
		t.Run(tc.origin, func(t *testing.T) {
			h := http.Header{}
			if tc.origin != "" {
				h.Set("Origin", tc.origin)
			}
			ctx, cancel := context.WithTimeout(context.Background(), waitFor)
			defer cancel()
			c, resp, err := websocket.Dial(ctx, ts.ws, &websocket.DialOptions{HTTPHeader: h})
			if tc.ok {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				c.CloseNow()
				return
			}
			if err == nil {
				c.CloseNow()
				t.Fatal("cross-site handshake accepted")
			}
			if resp == nil || resp.StatusCode != http.StatusForbidden {
				t.Fatalf("want 403 before upgrade, got %v", err)
			}
		})
	}
}

func TestGracefulShutdown(t *testing.T) {
	ts := startServer(t, nil)
	a, b := dial(t, ts), dial(t, ts)
	a.join("r", nil)
	b.join("r", nil)
	start := time.Now()
	ts.stop()
	// A restart: each client is told to come back (1012) and hears no peer-left.
	for _, c := range []*client{a, b} {
		for m := range c.msgs {
			if m.Type == "peer-left" {
				t.Fatalf("peer-left on a restart: %s", m.Raw)
			}
		}
		var ce websocket.CloseError
		if err := <-c.errc; !errors.As(err, &ce) || ce.Code != websocket.StatusServiceRestart || ce.Reason != "restart" {
			t.Fatalf("closed with %v, want 1012 restart", err)
		}
	}
	select {
	case err := <-ts.done:
		if err != nil {
			t.Fatalf("Run: %v", err)
		}
		ts.done <- nil // for the cleanup
	case <-time.After(waitFor):
		t.Fatal("shutdown did not finish")
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("shutdown with cooperative peers took %v", d)
	}
	if _, err := http.Get(ts.base + "/healthz"); err == nil {
		t.Fatal("still accepting after shutdown")
	}
}

func TestHealthReadyMetrics(t *testing.T) {
	ts := startServer(t, nil)
	for path, want := range map[string]int{"/healthz": 200, "/readyz": 200, "/": 200, "/sdk/switchboard.js": 200, "/files": 200, "/sdk/wormhole.wasm": 200, "/nope": 404} {
		resp, err := http.Get(ts.base + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Fatalf("%s: %d, want %d", path, resp.StatusCode, want)
		}
	}
	a, b := dial(t, ts), dial(t, ts)
	a.join("r", nil)
	b.join("r", nil)
	a.expect("peer-joined")
	a.send(map[string]any{"type": "offer", "target": b.id, "data": "o"})
	b.expect("offer")
	a.sendRaw(`{"type":"bogus"}`)
	a.expectError("unknown-type")
	for name, want := range map[string]string{
		`switchboard_messages_relayed_total{type="offer"}`: "1",
		`switchboard_errors_total{code="unknown-type"}`:    "1",
		`switchboard_connections`:                          "2",
		`switchboard_rooms`:                                "1",
		`switchboard_peers`:                                "2",
		`switchboard_handshakes_total{result="accepted"}`:  "2",
	} {
		if got := metricValue(t, ts, name); got != want {
			t.Errorf("%s = %s, want %s", name, got, want)
		}
	}
	if v := metricValue(t, ts, `switchboard_bytes_total{direction="in"}`); v == "0" || v == "" {
		t.Errorf("bytes in = %q", v)
	}

	// Draining: not ready, joins refused with a clear error, existing peers untouched.
	ts.Hub().Drain()
	resp, err := http.Get(ts.base + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("readyz while draining: %d", resp.StatusCode)
	}
	c := dial(t, ts)
	c.sendRaw(`{"type":"join","room":"r"}`)
	c.expectError("unavailable")
	a.send(map[string]any{"type": "answer", "target": b.id, "data": "still"})
	b.expect("answer")
}

func TestWelcomeCarriesConfiguredICEServers(t *testing.T) {
	ts := startServer(t, func(c *config.Config) {
		c.ICEServers = []protocol.ICEServer{{URLs: []string{"stun:stun.test:3478"}}}
	})
	a := dial(t, ts)
	w := a.join("r", nil)
	var full struct {
		ICEServers []protocol.ICEServer `json:"iceServers"`
	}
	if err := json.Unmarshal([]byte(w.Raw), &full); err != nil || len(full.ICEServers) != 1 || full.ICEServers[0].URLs[0] != "stun:stun.test:3478" {
		t.Fatalf("iceServers: %s", w.Raw)
	}
}
