package server_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/switchboard-rtc/switchboard/internal/config"
	"github.com/switchboard-rtc/switchboard/internal/server"
	"github.com/switchboard-rtc/switchboard/protocol"
)

// What the memory budget charges must all come back: every route by which a holder ends is
// taken here one after the other on a real server, and after each the held bytes must be
// back to zero (switchboard_memory_held_bytes). A route that forgets to give its charge back
// leaves the budget smaller for good; enough of them and every newcomer gets 503.

// releaseServer is a server with short timers, so that every route ends within a second or
// three, and a small kernel send buffer, so that a client that does not read backs up fast.
func releaseServer(t *testing.T) *testServer {
	return startServer(t, func(c *config.Config) {
		c.MemoryBudget = 64 << 20
		c.SocketSendBuffer = 4 << 10
		c.RateLimit = 2000
		c.RateBurst = 2000
		c.PingInterval = time.Second
		c.PeerTimeout = 3 * time.Second // Engine.IO: ping timeout 2 s
		c.ResumeGrace = time.Second
		c.FrameTimeout = 500 * time.Millisecond
		// Every route joins (and restores) from 127.0.0.1 at once: not a test of join rates.
		c.JoinsPerClient, c.JoinBurstPerClient = 1e6, 1e6
	})
}

func heldBytes(t *testing.T, ts *testServer) float64 {
	t.Helper()
	return metricNumber(t, ts, "switchboard_memory_held_bytes")
}

// waitHeld waits until cond holds for what the budget holds.
func waitHeld(t *testing.T, ts *testServer, what string, d time.Duration, cond func(float64) bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		h := heldBytes(t, ts)
		if cond(h) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: the budget holds %.0f bytes after %v", what, h, d)
		}
		time.Sleep(10 * time.Millisecond) // polling /metrics
	}
}

func charged(h float64) bool { return h > 0 }
func zero(h float64) bool    { return h == 0 }

// nonReader is a native peer that joins room and then never reads (a 4 KiB receive window).
func nonReader(t *testing.T, ts *testServer, room string) (r *rawClient, id, resume string) {
	t.Helper()
	r = dialRaw(t, ts, 4096)
	r.sendText(`{"type":"join","room":"` + room + `"}`)
	w := r.expectText("welcome")
	return r, w.peerID(), w.Resume
}

// parkedPeer is a native peer of room whose connection was lost: its presence is parked.
func parkedPeer(t *testing.T, ts *testServer, room string) (id, resume string) {
	t.Helper()
	parked := metricNumber(t, ts, "switchboard_resumable_peers")
	r := dialRaw(t, ts, 0)
	r.sendText(`{"type":"join","room":"` + room + `"}`)
	w := r.expectText("welcome")
	r.conn.Close()
	deadline := time.Now().Add(waitFor)
	for metricNumber(t, ts, "switchboard_resumable_peers") != parked+1 {
		if time.Now().After(deadline) {
			t.Fatal("the lost connection's presence was not parked")
		}
		time.Sleep(10 * time.Millisecond) // polling /metrics
	}
	return w.peerID(), w.Resume
}

// flood relays n messages of 8 KiB from c to target.
func flood(c *client, target string, n int) {
	pad := strings.Repeat("z", 8<<10)
	for range n {
		c.sendRaw(`{"type":"message","target":"` + target + `","data":"` + pad + `"}`)
	}
}

// settle waits until c's frames so far were handled: frames are handled in order.
func settle(c *client) {
	c.t.Helper()
	c.send(map[string]any{"type": "message", "target": "nobody", "id": "settle"})
	for m := c.next(); string(m.ID) != `"settle"`; m = c.next() {
	}
}

// pollSession is a long-polling Engine.IO session with its Socket.IO socket connected.
type pollSession struct {
	t   *testing.T
	hc  *http.Client
	url string // with the sid
	id  string // socket.id
}

func openPolling(t *testing.T, ts *testServer) *pollSession {
	t.Helper()
	hc := &http.Client{Transport: &http.Transport{}, Timeout: waitFor}
	t.Cleanup(hc.CloseIdleConnections)
	return openPollingWith(t, ts.base, hc)
}

// openPollingWith opens a long-polling session with hc and connects its socket.
func openPollingWith(t *testing.T, base string, hc *http.Client) *pollSession {
	t.Helper()
	resp, err := hc.Get(base + "/socket.io/?EIO=4&transport=polling")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	var o struct{ SID string }
	if !strings.HasPrefix(string(body), "0{") || json.Unmarshal(body[1:], &o) != nil {
		t.Fatalf("handshake: %d %q", resp.StatusCode, body)
	}
	p := &pollSession{t: t, hc: hc, url: base + "/socket.io/?EIO=4&transport=polling&sid=" + o.SID}
	p.post("40")
	got := p.get()
	var c struct{ SID string }
	if !strings.HasPrefix(got, "40{") || json.Unmarshal([]byte(got[2:]), &c) != nil {
		t.Fatalf("CONNECT answer %q", got)
	}
	p.id = c.SID
	return p
}

func (p *pollSession) sid() string { return p.url[strings.LastIndex(p.url, "=")+1:] }

func (p *pollSession) post(body string) {
	p.t.Helper()
	resp, err := p.hc.Post(p.url, "text/plain", strings.NewReader(body))
	if err != nil {
		p.t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		p.t.Fatalf("POST %q: %d", body, resp.StatusCode)
	}
}

func (p *pollSession) get() string {
	p.t.Helper()
	resp, err := p.hc.Get(p.url)
	if err != nil {
		p.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

// join joins room and collects the welcome.
func (p *pollSession) join(room string) {
	p.t.Helper()
	p.post(`42["join",{"room":"` + room + `"}]`)
	if got := p.get(); !strings.Contains(got, `"welcome"`) {
		p.t.Fatalf("join answer %q", got)
	}
}

// route is one way a holder of the memory budget comes to hold something and to end. It
// runs in a room of its own (room), with a native sender there that reads everything.
type route struct {
	name     string
	wait     time.Duration // for the charge to come back once run returns
	parallel bool          // may run beside other routes (it waits for no exact figure)
	run      func(t *testing.T, ts *testServer, room string, sender *client)
}

var routes = []route{
	{"native, backed up, client goes", waitFor, true, func(t *testing.T, ts *testServer, room string, sender *client) {
		r, id, _ := nonReader(t, ts, room)
		flood(sender, id, 32)
		waitHeld(t, ts, "backed up", waitFor, charged)
		r.conn.Close() // unread data: a reset, not a lost connection
	}},
	{"parked presence holds events, expires", 3 * time.Second, false, func(t *testing.T, ts *testServer, room string, sender *client) {
		id, _ := parkedPeer(t, ts, room)
		flood(sender, id, 4)
		waitHeld(t, ts, "held events", waitFor, charged)
	}},
	{"parked presence resumed", waitFor, false, func(t *testing.T, ts *testServer, room string, sender *client) {
		id, resume := parkedPeer(t, ts, room)
		flood(sender, id, 4)
		waitHeld(t, ts, "held events", waitFor, charged)
		n := dialRaw(t, ts, 0)
		n.sendText(`{"type":"join","room":"` + room + `","resume":"` + resume + `"}`)
		n.expectText("welcome")
		n.writeFrame(0x88, []byte{0x03, 0xe8}, true)
	}},
	{"parked presence removed by the server API", waitFor, false, func(t *testing.T, ts *testServer, room string, sender *client) {
		id, _ := parkedPeer(t, ts, room)
		flood(sender, id, 4)
		waitHeld(t, ts, "held events", waitFor, charged)
		if err := ts.Hub().Remove(context.Background(), room, protocol.PeerID(id)); err != nil {
			t.Fatal(err)
		}
	}},
	{"parked presence overflows its hold", waitFor, false, func(t *testing.T, ts *testServer, room string, sender *client) {
		id, _ := parkedPeer(t, ts, room)
		flood(sender, id, 40) // past 256 KiB
	}},
	{"send queue overflows: slow", waitFor, true, func(t *testing.T, ts *testServer, room string, sender *client) {
		_, id, _ := nonReader(t, ts, room)
		flood(sender, id, 160) // past 1 MiB
	}},
	{"backed-up peer kicked for its rate", waitFor, true, func(t *testing.T, ts *testServer, room string, sender *client) {
		r, id, _ := nonReader(t, ts, room)
		flood(sender, id, 32)
		waitHeld(t, ts, "backed up", waitFor, charged)
		ping := []byte{0x89, 0x80, 0, 0, 0, 0}
		_ = r.conn.SetWriteDeadline(time.Now().Add(waitFor))
		_, _ = r.conn.Write([]byte(strings.Repeat(string(ping), 20_000)))
		r.conn.Close()
	}},
	{"partial frame cut by the frame timeout", waitFor, true, func(t *testing.T, ts *testServer, room string, sender *client) {
		r := dialRaw(t, ts, 0)
		hdr := []byte{0x81, 0x80 | 126, 0xF0, 0x00, 0, 0, 0, 0} // 61,440 bytes
		_, _ = r.conn.Write(append(hdr, make([]byte, 20<<10)...))
		waitHeld(t, ts, "partial frame", waitFor, charged)
		r.expectClose(1008)
		r.conn.Close()
	}},
	{"partial frame, client goes", waitFor, true, func(t *testing.T, ts *testServer, room string, sender *client) {
		r := dialRaw(t, ts, 0)
		hdr := []byte{0x81, 0x80 | 126, 0xF0, 0x00, 0, 0, 0, 0}
		_, _ = r.conn.Write(append(hdr, make([]byte, 20<<10)...))
		waitHeld(t, ts, "partial frame", waitFor, charged)
		r.conn.Close()
	}},
	{"fragmented message, client goes", waitFor, true, func(t *testing.T, ts *testServer, room string, sender *client) {
		r := dialRaw(t, ts, 0)
		r.writeFrame(0x01, make([]byte, 20<<10), true) // text, not final
		waitHeld(t, ts, "fragments", waitFor, charged)
		r.conn.Close()
	}},
	{"close frame followed by a partial frame", waitFor, true, func(t *testing.T, ts *testServer, room string, sender *client) {
		r := dialRaw(t, ts, 0)
		closeFrame := []byte{0x88, 0x82, 0, 0, 0, 0, 0x03, 0xe8}
		hdr := []byte{0x81, 0x80 | 126, 0xF0, 0x00, 0, 0, 0, 0}
		_, _ = r.conn.Write(append(append(closeFrame, hdr...), make([]byte, 20<<10)...))
		r.expectClose(1000)
		r.conn.Close()
	}},
	{"Socket.IO WebSocket, backed up, client goes", waitFor, true, func(t *testing.T, ts *testServer, room string, sender *client) {
		r := dialRawPath(t, ts, "/socket.io/?EIO=4&transport=websocket", 4096)
		r.expectSIO("0{")
		r.sendText("40")
		id := sioID(t, r.expectSIO("40{"))
		r.sendText(`42["join",{"room":"` + room + `"}]`)
		r.expectSIO(`42["welcome"`)
		flood(sender, id, 32)
		waitHeld(t, ts, "backed up", waitFor, charged)
		r.conn.Close()
	}},
	{"polling queue, session times out", 5 * time.Second, true, func(t *testing.T, ts *testServer, room string, sender *client) {
		p := openPolling(t, ts)
		p.join(room)
		flood(sender, p.id, 4)
		waitHeld(t, ts, "queued", waitFor, charged)
	}},
	{"polling queue, client sends close", waitFor, true, func(t *testing.T, ts *testServer, room string, sender *client) {
		p := openPolling(t, ts)
		p.join(room)
		flood(sender, p.id, 4)
		waitHeld(t, ts, "queued", waitFor, charged)
		p.post("1")
	}},
	{"polling queue, upgraded to WebSocket, client goes", waitFor, true, func(t *testing.T, ts *testServer, room string, sender *client) {
		p := openPolling(t, ts)
		p.join(room)
		flood(sender, p.id, 4)
		waitHeld(t, ts, "queued", waitFor, charged)
		r := dialRawPath(t, ts, "/socket.io/?EIO=4&transport=websocket&sid="+p.sid(), 0)
		r.sendText("2probe")
		r.expectSIO("3probe")
		r.sendText("5")
		r.expectSIO(`42["message"`)
		r.conn.Close()
	}},
	{"polling queue, kicked, last words never collected", 5 * time.Second, true, func(t *testing.T, ts *testServer, room string, sender *client) {
		p := openPolling(t, ts)
		p.join(room)
		flood(sender, p.id, 4)
		waitHeld(t, ts, "queued", waitFor, charged)
		if err := ts.Hub().Remove(context.Background(), room, protocol.PeerID(p.id)); err != nil {
			t.Fatal(err)
		}
	}},
	{"polling queue, kicked, last words collected", waitFor, true, func(t *testing.T, ts *testServer, room string, sender *client) {
		p := openPolling(t, ts)
		p.join(room)
		flood(sender, p.id, 4)
		waitHeld(t, ts, "queued", waitFor, charged)
		if err := ts.Hub().Remove(context.Background(), room, protocol.PeerID(p.id)); err != nil {
			t.Fatal(err)
		}
		for i := 0; ; i++ { // until the close packet, after the last words
			got := p.get()
			if got == "1" || strings.HasSuffix(got, "\x1e1") {
				break
			}
			if i == 10 {
				t.Fatalf("no close packet; last answer %q", got)
			}
		}
	}},
}

// runRoute runs r in room with a sender of its own.
func runRoute(t *testing.T, ts *testServer, r route, room string) {
	t.Helper()
	sender := dial(t, ts)
	sender.join(room, nil)
	r.run(t, ts, room, sender)
}

// TestMemoryHeldReturnsToZero takes every route by which a holder of the memory budget ends,
// one after the other, and checks after each that what it held is given back.
func TestMemoryHeldReturnsToZero(t *testing.T) {
	ts := releaseServer(t)
	for i, r := range routes {
		runRoute(t, ts, r, fmt.Sprintf("route-%d", i))
		waitHeld(t, ts, r.name, r.wait, zero)
		t.Logf("%s: back to 0", r.name)
	}
}

// TestMemoryHeldReturnsToZeroConcurrently runs the routes that can run side by side, each
// three times at once, and checks that once they are all over nothing is held.
func TestMemoryHeldReturnsToZeroConcurrently(t *testing.T) {
	ts := releaseServer(t)
	t.Run("routes", func(t *testing.T) {
		for i, r := range routes {
			if !r.parallel {
				continue
			}
			for j := range 3 {
				t.Run(fmt.Sprintf("%s/%d", r.name, j), func(t *testing.T) {
					t.Parallel()
					runRoute(t, ts, r, fmt.Sprintf("route-%d-%d", i, j))
				})
			}
		}
	})
	waitHeld(t, ts, "all routes over", 10*time.Second, zero)
}

// expectSIO reads text frames until one starting with prefix (answering nothing).
func (r *rawClient) expectSIO(prefix string) string {
	r.t.Helper()
	for {
		op, p, err := r.readFrame()
		if err != nil {
			r.t.Fatalf("waiting for %q: %v", prefix, err)
		}
		if op == 0x1 && strings.HasPrefix(string(p), prefix) {
			return string(p)
		}
	}
}

func sioID(t *testing.T, connected string) string {
	t.Helper()
	var c struct{ SID string }
	if err := json.Unmarshal([]byte(connected[2:]), &c); err != nil {
		t.Fatalf("CONNECT answer %q", connected)
	}
	return c.SID
}

// TestMemoryHeldZeroAfterShutdown: a server shut down while clients hold charges of every
// kind (a backed-up WebSocket, a parked presence with held events, a polling queue, a partial
// frame) gives every charge back.
func TestMemoryHeldZeroAfterShutdown(t *testing.T) {
	ts := releaseServer(t)
	sender := dial(t, ts)
	sender.join("shutdown", nil)
	_, id, _ := nonReader(t, ts, "shutdown")
	flood(sender, id, 32)
	parked, _ := parkedPeer(t, ts, "shutdown")
	flood(sender, parked, 4)
	p := openPolling(t, ts)
	p.join("shutdown")
	flood(sender, p.id, 4)
	r := dialRaw(t, ts, 0)
	hdr := []byte{0x81, 0x80 | 126, 0xF0, 0x00, 0, 0, 0, 0}
	_, _ = r.conn.Write(append(hdr, make([]byte, 20<<10)...))
	settle(sender)
	waitHeld(t, ts, "charges of every kind", waitFor, func(h float64) bool { return h > 256<<10 })

	ts.stop()
	// The peer that does not read never answers its close frame: shutdown waits out its
	// timeout, then closes what is left.
	if err := <-ts.done; err != nil && !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("server.Run: %v", err)
	}
	ts.done <- nil // for the cleanup
	if held := server.MemoryHeld(ts.Server); held != 0 {
		t.Fatalf("after shutdown the budget holds %d bytes", held)
	}
}

// TestMemoryHeldClusterTakeover: a presence parked on one node, holding events a peer on the
// other node relayed to it, is taken over by its identity joining on the other node: the kick
// crosses the cluster and the first node gives the held events back.
func TestMemoryHeldClusterTakeover(t *testing.T) {
	n := startNATS(t)
	mod := func(c *config.Config) {
		c.APIKeys = []string{key1.Spec()}
		c.MemoryBudget = 64 << 20
		c.ResumeGrace = time.Minute
	}
	n1, n2 := startNode(t, n, mod), startNode(t, n, mod)
	waitCluster(t, n1, n2)

	sender := dial(t, n2)
	sender.join("takeover", map[string]any{"token": token(t, key1, "bob", "takeover", nil)})
	r := dialRaw(t, n1, 0)
	r.sendText(`{"type":"join","room":"takeover","token":"` + token(t, key1, "alice", "takeover", nil) + `"}`)
	alice := r.expectText("welcome").peerID()
	sender.expect("peer-joined")
	r.conn.Close()
	eventually(t, "alice parked on node 1", func() bool { return metricNumber(t, n1, "switchboard_resumable_peers") == 1 })
	flood(sender, alice, 4)
	waitHeld(t, n1, "held events on node 1", waitFor, charged)

	again := dial(t, n2)
	again.join("takeover", map[string]any{"token": token(t, key1, "alice", "takeover", nil)})
	waitHeld(t, n1, "node 1 after the takeover", waitFor, zero)
	waitHeld(t, n2, "node 2", waitFor, zero)
}
