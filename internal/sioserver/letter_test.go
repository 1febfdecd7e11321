package sioserver

// Engine.IO v4 and Socket.IO v5 clause by clause (docs/socketio.md, "Protocol conformance"),
// each checked with raw HTTP requests and WebSocket messages: no client library.

import (
	"bufio"
	"context"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/switchboard-rtc/switchboard/internal/hub"
)

// Short heartbeats for the tests that wait for a ping timeout: closed pingInterval +
// pingTimeout (500 ms) after the last pong.
const (
	testInterval = 200 * time.Millisecond
	testTimeout  = 300 * time.Millisecond
)

// sidOf returns the sid in a polling URL.
func sidOf(u string) string { return u[strings.Index(u, "sid=")+4:] }

func wsURL(base, sid string) string {
	u := "ws" + strings.TrimPrefix(base, "http") + "socket.io/?EIO=4&transport=websocket"
	if sid != "" {
		u += "&sid=" + sid
	}
	return u
}

// rawWS is a WebSocket whose messages a goroutine reads into msgs (closed when the connection
// ends, end then holds the error); it never answers pings unless pong is set.
type rawWS struct {
	c    *websocket.Conn
	msgs chan string
	end  error
	pong bool
}

func dialRaw(t *testing.T, u string, pong bool) *rawWS {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, resp, err := websocket.Dial(ctx, u, nil)
	if err != nil {
		status := 0
		if resp != nil {
			status = resp.StatusCode
		}
		t.Fatalf("dial %s: HTTP %d: %v", u, status, err)
	}
	t.Cleanup(func() { _ = c.CloseNow() })
	w := &rawWS{c: c, msgs: make(chan string, 64), pong: pong}
	readerDone := make(chan struct{})
	t.Cleanup(func() { _ = c.CloseNow(); <-readerDone })
	go func() {
		defer close(readerDone)
		defer close(w.msgs)
		for {
			_, b, err := c.Read(context.Background())
			if err != nil {
				w.end = err
				return
			}
			if w.pong && string(b) == "2" {
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				err = c.Write(ctx, websocket.MessageText, []byte("3"))
				cancel()
				if err != nil {
					continue // closed: the next Read says so
				}
				continue
			}
			select {
			case w.msgs <- string(b):
			default: // a test that stopped reading: drop
			}
		}
	}()
	return w
}

func (w *rawWS) send(t *testing.T, s string) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return w.c.Write(ctx, websocket.MessageText, []byte(s))
}

// next returns the next message that is not a ping, failing after 5 s or at the close.
func (w *rawWS) next(t *testing.T) string {
	t.Helper()
	timer := time.NewTimer(5 * time.Second)
	defer timer.Stop()
	for {
		select {
		case m, ok := <-w.msgs:
			if !ok {
				t.Fatalf("connection ended: %v", w.end)
			}
			if m != "2" {
				return m
			}
		case <-timer.C:
			t.Fatal("no message in 5 s")
		}
	}
}

// closed waits up to timeout for the connection to end and reports whether it did.
func (w *rawWS) closed(timeout time.Duration) bool {
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	for {
		select {
		case _, ok := <-w.msgs:
			if !ok {
				return true
			}
		case <-timer.C:
			return false
		}
	}
}

// upgradeRaw upgrades the polling session at u to a raw WebSocket (probe, then upgrade).
func upgradeRaw(t *testing.T, base, u string, pong bool) *rawWS {
	t.Helper()
	w := dialRaw(t, wsURL(base, sidOf(u)), pong)
	if err := w.send(t, "2probe"); err != nil {
		t.Fatal(err)
	}
	if m := w.next(t); m != "3probe" {
		t.Fatalf("probe answered %q", m)
	}
	if err := w.send(t, "5"); err != nil {
		t.Fatal(err)
	}
	return w
}

func isPolling(ss *session) bool {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	return ss.polling
}

// asyncGet sends a polling GET in a goroutine, once it waits on the server, and returns its
// status and body on the channel.
func asyncGet(t *testing.T, ts *testServer, u string) <-chan [2]string {
	t.Helper()
	out := make(chan [2]string, 1)
	go func() {
		resp, err := http.Get(u)
		if err != nil {
			out <- [2]string{"error", err.Error()}
			return
		}
		defer resp.Body.Close()
		b := new(strings.Builder)
		_, _ = bufio.NewReader(resp.Body).WriteTo(b)
		out <- [2]string{resp.Status[:3], b.String()}
	}()
	ss := ts.sio.session(sidOf(u))
	waitFor(t, 5*time.Second, "the GET waiting", func() bool { return ss != nil && isPolling(ss) })
	return out
}

func recvGet(t *testing.T, ch <-chan [2]string) (string, string) {
	t.Helper()
	select {
	case r := <-ch:
		return r[0], r[1]
	case <-time.After(5 * time.Second):
		t.Fatal("the waiting GET was not answered in 5 s")
	}
	return "", ""
}

// pollClosed reports whether a polling answer says the session is over: HTTP 400 or the
// close packet.
func pollClosed(st int, body string) bool {
	if st == 400 {
		return true
	}
	for _, p := range strings.Split(body, "\x1e") {
		if p == "1" {
			return true
		}
	}
	return false
}

// TestOnlyPongKeepsAlive: Engine.IO's heartbeat: the server pings every pingInterval and a
// client that sends no pong ("3") for pingInterval + pingTimeout is closed, whatever else it
// sends — polling GETs, POSTs of other packets (events, noops), WebSocket messages. A client
// that sends pongs and nothing else stays.
func TestOnlyPongKeepsAlive(t *testing.T) {
	deadline := testInterval + testTimeout
	ts := startServerBeat(t, hub.Config{}, testInterval, testTimeout, nil)

	t.Run("polling", func(t *testing.T) {
		start := time.Now()
		u, _ := pollingSession(t, ts.url)
		for {
			if time.Since(start) > deadline+3*time.Second {
				t.Fatalf("a polling client that never pongs is still open after %v", time.Since(start))
			}
			// A CONNECT again (answered with the same sid) and a noop: traffic that is not a
			// pong, and not events (which the rate limit would kick).
			st, body := httpDo(t, "POST", u, "40\x1e6", nil)
			if pollClosed(st, body) {
				break
			}
			if st, body := httpDo(t, "GET", u, "", nil); pollClosed(st, body) {
				break
			}
		}
		if el := time.Since(start); el < deadline {
			t.Errorf("closed after %v, before pingInterval + pingTimeout (%v)", el, deadline)
		}
	})

	check := func(t *testing.T, w *rawWS, start time.Time) {
		t.Helper()
		tick := time.NewTicker(50 * time.Millisecond)
		defer tick.Stop()
		for !w.closed(0) {
			if time.Since(start) > deadline+3*time.Second {
				t.Fatalf("a WebSocket client that never pongs is still open after %v", time.Since(start))
			}
			_ = w.send(t, "40") // answered with the CONNECT packet again
			<-tick.C
		}
		if el := time.Since(start); el < deadline {
			t.Errorf("closed after %v, before pingInterval + pingTimeout (%v)", el, deadline)
		}
	}
	t.Run("websocket", func(t *testing.T) {
		start := time.Now()
		w := dialRaw(t, wsURL(ts.url, ""), false)
		if m := w.next(t); !strings.HasPrefix(m, "0{") {
			t.Fatalf("open %q", m)
		}
		if err := w.send(t, "40"); err != nil {
			t.Fatal(err)
		}
		check(t, w, start)
	})
	t.Run("upgraded", func(t *testing.T) {
		u, _ := pollingSession(t, ts.url)
		// The polling session's pongs count until the upgrade.
		if st, b := httpDo(t, "POST", u, "3", nil); st != 200 || b != "ok" {
			t.Fatalf("pong: %d %q", st, b)
		}
		start := time.Now()
		check(t, upgradeRaw(t, ts.url, u, false), start)
	})

	t.Run("pongs only", func(t *testing.T) {
		u, _ := pollingSession(t, ts.url)
		w := dialRaw(t, wsURL(ts.url, ""), true)
		if m := w.next(t); !strings.HasPrefix(m, "0{") {
			t.Fatalf("open %q", m)
		}
		if err := w.send(t, "40"); err != nil {
			t.Fatal(err)
		}
		if m := w.next(t); !strings.HasPrefix(m, "40{") {
			t.Fatalf("CONNECT answer %q", m)
		}
		end := time.Now().Add(4 * deadline)
		for time.Now().Before(end) {
			st, pkts := pollGet(t, u)
			if st != 200 {
				t.Fatalf("a polling client answering every ping was closed: GET %d %q", st, pkts)
			}
			// pollGet leaves the pings out: the answer was one.
			if st, b := httpDo(t, "POST", u, "3", nil); st != 200 || b != "ok" {
				t.Fatalf("pong: %d %q", st, b)
			}
		}
		if w.closed(0) {
			t.Fatalf("a WebSocket client answering every ping was closed: %v", w.end)
		}
	})
}

// TestClientClosePacket: a client's close packet ("1") in a POST ends the session, and the
// GET waiting meanwhile is answered with a noop ("6"), not a close packet; the next request
// gets 400. On WebSocket the server closes the connection.
func TestClientClosePacket(t *testing.T) {
	ts := startServer(t, hub.Config{}, nil)
	u, _ := pollingSession(t, ts.url)
	get := asyncGet(t, ts, u)
	if st, b := httpDo(t, "POST", u, "1", nil); st != 200 || b != "ok" {
		t.Fatalf("POST close: %d %q", st, b)
	}
	if st, body := recvGet(t, get); st != "200" || body != "6" {
		t.Fatalf("the waiting GET got %s %q, want 200 \"6\"", st, body)
	}
	if st, body := httpDo(t, "GET", u, "", nil); st != 400 {
		t.Fatalf("GET after close: %d %q, want 400", st, body)
	}

	w := dialRaw(t, wsURL(ts.url, ""), true)
	w.next(t)
	if err := w.send(t, "1"); err != nil {
		t.Fatal(err)
	}
	if !w.closed(5 * time.Second) {
		t.Fatal("WebSocket still open after the client's close packet")
	}
}

// TestOverlappingPosts: a second POST while one is being read gets 400 and closes the
// session.
func TestOverlappingPosts(t *testing.T) {
	ts := startServer(t, hub.Config{}, nil)
	u, _ := pollingSession(t, ts.url)
	sid := sidOf(u)
	addr := strings.TrimSuffix(strings.TrimPrefix(ts.url, "http://"), "/")
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	// A POST whose body is not all there yet: the server is reading it.
	head := "POST /socket.io/?EIO=4&transport=polling&sid=" + sid + " HTTP/1.1\r\nHost: " + addr +
		"\r\nContent-Type: text/plain\r\nContent-Length: 3\r\n\r\n6"
	if _, err := conn.Write([]byte(head)); err != nil {
		t.Fatal(err)
	}
	ss := ts.sio.session(sid)
	waitFor(t, 5*time.Second, "the first POST being read", func() bool {
		ss.mu.Lock()
		defer ss.mu.Unlock()
		return ss.posting
	})
	if st, b := httpDo(t, "POST", u, "6", nil); st != 400 {
		t.Fatalf("overlapping POST: %d %q, want 400", st, b)
	}
	if st, b := httpDo(t, "GET", u, "", nil); st != 400 {
		t.Fatalf("GET after the overlapping POST: %d %q, want 400 (session closed)", st, b)
	}
	if _, err := conn.Write([]byte("\x1e6")); err != nil {
		t.Fatal(err)
	}
	_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("first POST's answer: %v", err)
	}
	resp.Body.Close()
}

// TestSecondWebSocket: a WebSocket for a session already upgraded, or while another one is
// probing it, is accepted (101) and then closed by the server, as Engine.IO's server does; the
// session goes on over its WebSocket.
func TestSecondWebSocket(t *testing.T) {
	ts := startServer(t, hub.Config{}, nil)
	u, _ := pollingSession(t, ts.url)

	first := dialRaw(t, wsURL(ts.url, sidOf(u)), true)
	// The first is probing once its probe is answered (before that, which of two dials the
	// server takes as the first is the order they reach it, not the order they were made).
	if err := first.send(t, "2probe"); err != nil {
		t.Fatal(err)
	}
	if m := first.next(t); m != "3probe" {
		t.Fatalf("probe answered %q", m)
	}
	second := dialRaw(t, wsURL(ts.url, sidOf(u)), true) // the first is probing
	if !second.closed(5 * time.Second) {
		t.Fatal("a second probe WebSocket was not closed")
	}
	if err := first.send(t, "5"); err != nil {
		t.Fatal(err)
	}
	third := dialRaw(t, wsURL(ts.url, sidOf(u)), true) // upgraded
	if !third.closed(5 * time.Second) {
		t.Fatal("a WebSocket on an upgraded session was not closed")
	}
	if err := first.send(t, `42["nope",{}]`); err != nil {
		t.Fatal(err)
	}
	if m := first.next(t); !strings.HasPrefix(m, `42["error"`) {
		t.Fatalf("the upgraded session answered %q", m)
	}
}

// TestProbeNoop: after "2probe", a GET waiting gets a noop ("6") so the client can pause
// polling, and so does a GET made while the upgrade is pending (Engine.IO's server checks for
// one every 100 ms); once the probe is given up, no noop is left for later GETs.
func TestProbeNoop(t *testing.T) {
	ts := startServer(t, hub.Config{}, nil)
	u, _ := pollingSession(t, ts.url)

	get := asyncGet(t, ts, u)
	w := dialRaw(t, wsURL(ts.url, sidOf(u)), true)
	if err := w.send(t, "2probe"); err != nil {
		t.Fatal(err)
	}
	if m := w.next(t); m != "3probe" {
		t.Fatalf("probe answered %q", m)
	}
	if st, body := recvGet(t, get); st != "200" || body != "6" {
		t.Fatalf("the waiting GET got %s %q, want 200 \"6\"", st, body)
	}
	// A GET while the upgrade is pending: a noop too.
	if st, body := httpDo(t, "GET", u, "", nil); st != 200 || body != "6" {
		t.Fatalf("a GET during the probe got %d %q, want 200 \"6\"", st, body)
	}
	// The client gives the upgrade up: polling goes on, with no noop waiting for it.
	_ = w.c.Close(websocket.StatusNormalClosure, "")
	waitFor(t, 5*time.Second, "the probe closed", func() bool { return ts.hub.Stats().Connections.Load() == 0 })
	if st, b := httpDo(t, "POST", u, `42["nope",{}]`, nil); st != 200 {
		t.Fatalf("POST: %d %q", st, b)
	}
	st, pkts := pollGet(t, u)
	if st != 200 || len(pkts) != 1 || !strings.HasPrefix(pkts[0], `42["error"`) {
		t.Fatalf("GET after the probe was given up: %d %q, want the error event alone", st, pkts)
	}
}

// TestClientPingCloses: in Engine.IO v4 the server pings; a ping from the client is a protocol
// error and closes the session (Engine.IO's server: "invalid heartbeat direction"). The probe
// "2probe" on an upgrading WebSocket is not a heartbeat.
func TestClientPingCloses(t *testing.T) {
	ts := startServer(t, hub.Config{}, nil)
	u, _ := pollingSession(t, ts.url)
	if st, b := httpDo(t, "POST", u, "2", nil); st != 400 {
		t.Fatalf("POST ping: %d %q, want 400", st, b)
	}
	if st, b := httpDo(t, "GET", u, "", nil); !pollClosed(st, b) {
		t.Fatalf("GET after a client ping: %d %q, want the session closed", st, b)
	}
	w := dialRaw(t, wsURL(ts.url, ""), true)
	w.next(t)
	if err := w.send(t, "2"); err != nil {
		t.Fatal(err)
	}
	if !w.closed(5 * time.Second) {
		t.Fatal("WebSocket still open after a client ping")
	}
}

// TestAbortedPollCloses: a GET the client gives up before it is answered ends the session,
// as Engine.IO's server does ("poll connection closed prematurely").
func TestAbortedPollCloses(t *testing.T) {
	// No ping timeout during the test: only the aborted GET can close the session.
	ts := startServerBeat(t, hub.Config{}, 10*time.Second, 20*time.Second, nil)
	u, _ := pollingSession(t, ts.url)
	sid := sidOf(u)
	addr := strings.TrimSuffix(strings.TrimPrefix(ts.url, "http://"), "/")
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Write([]byte("GET /socket.io/?EIO=4&transport=polling&sid=" + sid + " HTTP/1.1\r\nHost: " + addr + "\r\n\r\n")); err != nil {
		t.Fatal(err)
	}
	ss := ts.sio.session(sid)
	waitFor(t, 5*time.Second, "the GET waiting", func() bool { return isPolling(ss) })
	conn.Close()
	waitFor(t, 5*time.Second, "the session closed", func() bool { return ts.sio.session(sid) == nil })
	if st, b := httpDo(t, "GET", u, "", nil); st != 400 {
		t.Fatalf("GET after an aborted GET: %d %q, want 400", st, b)
	}
}

// TestUpgradeWithoutProbe: Engine.IO's server takes the upgrade packet ("5") on a new
// WebSocket without a probe first.
func TestUpgradeWithoutProbe(t *testing.T) {
	ts := startServer(t, hub.Config{}, nil)
	u, _ := pollingSession(t, ts.url)
	w := dialRaw(t, wsURL(ts.url, sidOf(u)), true)
	if err := w.send(t, "5"); err != nil {
		t.Fatal(err)
	}
	if err := w.send(t, `42["nope",{}]`); err != nil {
		t.Fatal(err)
	}
	if m := w.next(t); !strings.HasPrefix(m, `42["error"`) {
		t.Fatalf("after an upgrade without probe: %q", m)
	}
	if st, b := httpDo(t, "GET", u, "", nil); st != 400 {
		t.Fatalf("GET after the upgrade: %d %q, want 400", st, b)
	}
}

// TestPacketWithoutSocketCloses: Socket.IO v5: "If the server does not receive a CONNECT
// packet first, then it MUST close the connection immediately"; socket.io's server closes on
// any packet but CONNECT for a namespace with no socket: an event before CONNECT, after the
// client's DISCONNECT, or for a namespace never connected. CONNECT to an unknown namespace
// gets CONNECT_ERROR and the session stays.
func TestPacketWithoutSocketCloses(t *testing.T) {
	ts := startServer(t, hub.Config{}, nil)
	for _, tt := range []struct {
		name    string
		connect bool
		pkts    []string
	}{
		{"event before CONNECT", false, []string{`42["offer",{}]`}},
		{"ack before CONNECT", false, []string{`431[]`}},
		{"DISCONNECT before CONNECT", false, []string{`41`}},
		{"event after DISCONNECT", true, []string{`41`, `42["offer",{}]`}},
		{"event for another namespace", true, []string{`42/x,["offer",{}]`}},
		{"event for a namespace refused", true, []string{`40/x,`, `42/x,["offer",{}]`}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			w := dialRaw(t, wsURL(ts.url, ""), true)
			w.next(t)
			if tt.connect {
				if err := w.send(t, "40"); err != nil {
					t.Fatal(err)
				}
				if m := w.next(t); !strings.HasPrefix(m, "40{") {
					t.Fatalf("CONNECT answer %q", m)
				}
			}
			for _, p := range tt.pkts {
				_ = w.send(t, p)
			}
			if !w.closed(5 * time.Second) {
				t.Fatal("still open")
			}
		})
	}
	t.Run("polling event before CONNECT", func(t *testing.T) {
		u := pollOpen(t, ts.url)
		if st, b := httpDo(t, "POST", u, `42["offer",{}]`, nil); st != 400 {
			t.Fatalf("POST: %d %q, want 400", st, b)
		}
		if st, b := httpDo(t, "GET", u, "", nil); !pollClosed(st, b) {
			t.Fatalf("GET: %d %q, want the session closed", st, b)
		}
	})
	t.Run("CONNECT to an unknown namespace", func(t *testing.T) {
		w := dialRaw(t, wsURL(ts.url, ""), true)
		w.next(t)
		if err := w.send(t, "40/x,"); err != nil {
			t.Fatal(err)
		}
		if m := w.next(t); m != `44/x,{"message":"Invalid namespace"}` {
			t.Fatalf("got %q", m)
		}
		if err := w.send(t, "40"); err != nil {
			t.Fatal(err)
		}
		if m := w.next(t); !strings.HasPrefix(m, "40{") {
			t.Fatalf("CONNECT answer %q", m)
		}
	})
}
