package sioserver

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/switchboard-rtc/switchboard/internal/hub"
	"github.com/switchboard-rtc/switchboard/protocol"
)

// nativeClient is a native-protocol client on /ws.
type nativeClient struct {
	t *testing.T
	c *websocket.Conn
}

func dialNative(t *testing.T, base string) *nativeClient {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(base, "http")+"ws", nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.CloseNow() })
	return &nativeClient{t: t, c: c}
}

func (n *nativeClient) send(s string) {
	n.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := n.c.Write(ctx, websocket.MessageText, []byte(s)); err != nil {
		n.t.Fatal(err)
	}
}

func (n *nativeClient) read() map[string]json.RawMessage {
	n.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, b, err := n.c.Read(ctx)
	if err != nil {
		n.t.Fatal(err)
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(b, &m); err != nil {
		n.t.Fatalf("%q: %v", b, err)
	}
	return m
}

func unquote(t *testing.T, raw json.RawMessage) string {
	t.Helper()
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		t.Fatalf("%s: %v", raw, err)
	}
	return s
}

// TestSocketIOAndNativeInOneRoom: a Socket.IO socket and a native /ws peer join the same room,
// see each other in welcome and peer-joined, and relay both ways with the sender stamped.
func TestSocketIOAndNativeInOneRoom(t *testing.T) {
	ts := startServer(t, hub.Config{}, nil)
	nat := dialNative(t, ts.url)
	nat.send(`{"type":"join","room":"mix","name":"native"}`)
	w := nat.read()
	natID := unquote(t, w["peer"])

	s := dialSIO(t, ts.url, nil)
	sid := s.connect()
	s.write(`427["join",{"room":"mix","name":"sio"}]`)
	welcome := s.expectEvent("437")
	var wb struct {
		Type  string
		Peer  string
		Peers []struct{ ID, Name string }
	}
	if err := json.Unmarshal(welcome[0], &wb); err != nil || wb.Type != "welcome" || wb.Peer != sid || len(wb.Peers) != 1 || wb.Peers[0].ID != natID {
		t.Fatalf("welcome %s (err %v); want peer %s and peers [%s]", welcome[0], err, sid, natID)
	}
	pj := nat.read()
	if unquote(t, pj["type"]) != "peer-joined" || !strings.Contains(string(pj["peer"]), sid) {
		t.Fatalf("native got %v, want peer-joined of %s", pj, sid)
	}

	s.write(`42["offer",{"target":"` + natID + `","type":"offer","sdp":"v=0\r\n"}]`)
	off := nat.read()
	if unquote(t, off["type"]) != "offer" || unquote(t, off["from"]) != sid ||
		string(off["data"]) != `{"target":"`+natID+`","type":"offer","sdp":"v=0\r\n"}` {
		t.Fatalf("native got %v", off)
	}
	nat.send(`{"type":"answer","target":"` + sid + `","data":{"type":"answer","sdp":"a"}}`)
	ans := s.expectEvent("42")
	if unquote(t, ans[0]) != "answer" || string(ans[1]) != `{"type":"answer","sdp":"a","from":"`+natID+`"}` {
		t.Fatalf("socket.io got %s", ans)
	}
	// Non-object data comes with the sender as a second argument.
	nat.send(`{"type":"message","target":"` + sid + `","data":"hi"}`)
	msg := s.expectEvent("42")
	if len(msg) != 4 || string(msg[1]) != `"hi"` || string(msg[2]) != `{"from":"`+natID+`"}` || string(msg[3]) != `"2"` {
		t.Fatalf("socket.io got %s", msg)
	}
	// Native peers get the data byte for byte, the sender in the envelope.
	s.write(`42["message",{"target":"` + natID + `","from":"forged"}]`)
	m := nat.read()
	if string(m["data"]) != `{"target":"`+natID+`","from":"forged"}` || unquote(t, m["from"]) != sid {
		t.Fatalf("native got %v", m)
	}
	// A lobby socket cannot reach the room, nor the room the lobby.
	lobby := dialSIO(t, ts.url, nil)
	lid := lobby.connect()
	lobby.write(`421["offer",{"target":"` + sid + `"}]`)
	if e := lobby.expectEvent("431"); !strings.Contains(string(e[0]), "unknown-target") {
		t.Fatalf("lobby to room: %s", e[0])
	}
	s.write(`428["offer",{"target":"` + lid + `"}]`)
	if e := s.expectEvent("438"); !strings.Contains(string(e[0]), "unknown-target") {
		t.Fatalf("room to lobby: %s", e[0])
	}
	// Leaving tells the native peer; the socket is back in the lobby.
	s.write(`429["leave"]`)
	if e := s.expectEvent("439"); !strings.Contains(string(e[0]), `"ack"`) {
		t.Fatalf("leave: %s", e[0])
	}
	if pl := nat.read(); unquote(t, pl["type"]) != "peer-left" || unquote(t, pl["reason"]) != "left" {
		t.Fatalf("native got %v", pl)
	}
	lobby.write(`42["offer",{"target":"` + sid + `","sdp":"x"}]`)
	if e := s.expectEvent("42"); string(e[1]) != `{"target":"`+sid+`","sdp":"x","from":"`+lid+`"}` {
		t.Fatalf("lobby relay: %s", e)
	}
	// Closing the socket is a leave for the room.
	s.write(`4210["join",{"room":"mix"}]`)
	s.expectEvent("4310")
	nat.read() // peer-joined
	_ = s.c.Close(websocket.StatusNormalClosure, "")
	if pl := nat.read(); unquote(t, pl["type"]) != "peer-left" || unquote(t, pl["reason"]) != "closed" {
		t.Fatalf("native got %v", pl)
	}
}

// TestMalformedPackets: what the server does with each bad packet on a connected socket.
func TestMalformedPackets(t *testing.T) {
	ts := startServer(t, hub.Config{}, nil)
	for _, tt := range []struct {
		name, pkt string
		closes    bool   // the connection is closed
		reply     string // else: the reply's prefix and a substring, "" for none
	}{
		{"empty", "", true, ""},
		{"unknown engine.io type", "9", true, ""},
		{"open from client", "0", true, ""},
		{"empty socket.io packet", "4", true, ""},
		{"unknown socket.io type", "47", true, ""},
		{"event without array", `42{"a":1}`, true, ""},
		{"event name not a string", `42[1,2]`, true, ""},
		{"truncated json", `42["offer",{"target":`, true, ""},
		{"trailing garbage", `42["offer",{}]x`, true, ""},
		{"too many attachments", `4599-["offer",{}]`, true, ""},
		{"ack without id", `43[]`, true, ""},
		{"connect_error from client", `44{"message":"x"}`, true, ""},
		{"base64 on websocket", `bAAAA`, true, ""},
		{"relay without target", `421["offer",{"sdp":"x"}]`, false, `431[{"type":"error","id":1,"code":"missing-field"`},
		{"relay of a string", `421["offer","x"]`, false, `431[{"type":"error","id":1,"code":"bad-field"`},
		{"relay without data", `421["offer"]`, false, `431[{"type":"error","id":1,"code":"bad-field"`},
		{"unknown event", `42["hello",{}]`, false, `42["error",{"type":"error","code":"unknown-type"`},
		{"join without room", `421["join",{}]`, false, `431[{"type":"error","id":1,"code":"missing-field"`},
		{"join with bad room", `421["join",{"room":"a b"}]`, false, `431[{"type":"error","id":1,"code":"bad-field"`},
		{"join with meta array", `421["join",{"room":"r","meta":[]}]`, false, `431[{"type":"error","id":1,"code":"bad-field"`},
		{"leave before join", `421["leave"]`, false, `431[{"type":"error","id":1,"code":"not-joined"`},
		{"event for a namespace not connected", `42/x,["offer",{}]`, true, ""},
		{"client ack", `431[]`, false, ""},
		{"client ping (the server pings in v4)", `2`, true, ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c := dialSIO(t, ts.url, nil)
			c.connect()
			c.write(tt.pkt)
			if tt.closes {
				c.expectClosed()
				return
			}
			if tt.reply != "" {
				if got := c.read(); !strings.HasPrefix(got, tt.reply) {
					t.Fatalf("reply %q, want prefix %q", got, tt.reply)
				}
			}
			// Still connected and in order: an ack round trip.
			c.write(`4242["offer",{"target":"nobody"}]`)
			if got := c.read(); !strings.HasPrefix(got, `4342[{"type":"error","id":42,"code":"unknown-target"`) {
				t.Fatalf("after the packet: %q", got)
			}
		})
	}
}

// TestBinaryEventsRefused: a binary event gets binary-unsupported and its attachments are
// dropped; the socket goes on.
func TestBinaryEventsRefused(t *testing.T) {
	ts := startServer(t, hub.Config{}, nil)
	c := dialSIO(t, ts.url, nil)
	c.connect()
	c.write(`452-3["offer",{"_placeholder":true,"num":0},{"_placeholder":true,"num":1}]`)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for range 2 {
		if err := c.c.Write(ctx, websocket.MessageBinary, []byte{1, 2, 3}); err != nil {
			t.Fatal(err)
		}
	}
	if got := c.read(); !strings.HasPrefix(got, `433[{"type":"error","id":3,"code":"binary-unsupported"`) {
		t.Fatalf("got %q", got)
	}
	c.write(`424["offer",{"target":"nobody"}]`)
	if got := c.read(); !strings.HasPrefix(got, `434[{"type":"error","id":4,"code":"unknown-target"`) {
		t.Fatalf("got %q", got)
	}
	// A binary message nobody announced is a protocol error.
	if err := c.c.Write(ctx, websocket.MessageBinary, []byte{1}); err != nil {
		t.Fatal(err)
	}
	c.expectClosed()
}

func TestRateLimitKicks(t *testing.T) {
	ts := startServer(t, hub.Config{RateLimit: 1, RateBurst: 2, RateStrikes: 3}, nil)
	c := dialSIO(t, ts.url, nil)
	c.connect()
	for range 10 {
		c.write(`42["offer",{"target":"nobody"}]`)
	}
	sawLimited := false
	for {
		got, err := c.readErr(5 * time.Second)
		if err != nil {
			if code := websocket.CloseStatus(err); code != websocket.StatusPolicyViolation {
				t.Fatalf("closed with %v, want 1008", err)
			}
			break
		}
		if strings.Contains(got, "rate-limited") {
			sawLimited = true
		}
	}
	if !sawLimited {
		t.Error("no rate-limited error before the close")
	}
}

func TestOriginPolicy(t *testing.T) {
	ts := startServer(t, hub.Config{}, nil)
	poll := ts.url + "socket.io/?EIO=4&transport=polling"
	st, _ := httpDo(t, "GET", poll, "", http.Header{"Origin": {"https://evil.example"}})
	if st != http.StatusForbidden {
		t.Errorf("foreign origin polling: %d, want 403", st)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, resp, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(ts.url, "http")+"socket.io/?EIO=4&transport=websocket",
		&websocket.DialOptions{HTTPHeader: http.Header{"Origin": {"https://evil.example"}}})
	if err == nil || resp == nil || resp.StatusCode != http.StatusForbidden {
		t.Errorf("foreign origin websocket: %v, want 403", err)
	}
	host := strings.TrimSuffix(strings.TrimPrefix(ts.url, "http://"), "/")
	req, _ := http.NewRequest("GET", poll, nil)
	req.Header.Set("Origin", "http://"+host)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != 200 || res.Header.Get("Access-Control-Allow-Origin") != "http://"+host {
		t.Errorf("same origin: %d, CORS %q", res.StatusCode, res.Header.Get("Access-Control-Allow-Origin"))
	}
}

// pollingSession opens a polling session and connects its socket; it returns the base URL
// of the session's requests and the socket id.
func pollingSession(t *testing.T, base string) (string, string) {
	t.Helper()
	st, body := httpDo(t, "GET", base+"socket.io/?EIO=4&transport=polling", "", nil)
	var o struct{ SID string }
	if st != 200 || !strings.HasPrefix(body, "0{") || json.Unmarshal([]byte(body[1:]), &o) != nil {
		t.Fatalf("handshake: %d %q", st, body)
	}
	u := base + "socket.io/?EIO=4&transport=polling&sid=" + o.SID
	if st, body := httpDo(t, "POST", u, "40", nil); st != 200 || body != "ok" {
		t.Fatalf("POST CONNECT: %d %q", st, body)
	}
	st, body = httpDo(t, "GET", u, "", nil)
	var c struct{ SID string }
	if st != 200 || !strings.HasPrefix(body, "40{") || json.Unmarshal([]byte(body[2:]), &c) != nil {
		t.Fatalf("CONNECT reply: %d %q", st, body)
	}
	return u, c.SID
}

func TestPolling(t *testing.T) {
	ts := startServer(t, hub.Config{}, func(c *Config) { c.MaxPayload = 1024 })
	u, id := pollingSession(t, ts.url)
	u2, id2 := pollingSession(t, ts.url)

	// Several packets in one POST, several in one GET.
	body := `42["offer",{"target":"` + id2 + `","n":1}]` + "\x1e" + `42["offer",{"target":"` + id2 + `","n":2}]` + "\x1e3"
	if st, b := httpDo(t, "POST", u, body, nil); st != 200 || b != "ok" {
		t.Fatalf("POST: %d %q", st, b)
	}
	// Each event has its offset last (connection state recovery).
	want := `42["offer",{"target":"` + id2 + `","n":1,"from":"` + id + `"},"1"]` + "\x1e" + `42["offer",{"target":"` + id2 + `","n":2,"from":"` + id + `"},"2"]`
	if st, b := httpDo(t, "GET", u2, "", nil); st != 200 || b != want {
		t.Fatalf("GET: %d %q, want %q", st, b, want)
	}

	for _, tt := range []struct {
		name, method, url, body string
		status                  int
	}{
		{"bad version", "GET", ts.url + "socket.io/?EIO=3&transport=polling", "", 400},
		{"unknown transport", "GET", ts.url + "socket.io/?EIO=4&transport=flash", "", 400},
		{"unknown sid", "GET", ts.url + "socket.io/?EIO=4&transport=polling&sid=nope", "", 400},
		{"POST handshake", "POST", ts.url + "socket.io/?EIO=4&transport=polling", "40", 400},
		{"oversized body", "POST", u, strings.Repeat("x", 2000), 413},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if st, b := httpDo(t, tt.method, tt.url, tt.body, nil); st != tt.status {
				t.Fatalf("%d %q, want %d", st, b, tt.status)
			}
		})
	}
	// The 413 closed nothing: the session still works.
	if st, b := httpDo(t, "POST", u, `42["offer",{"target":"`+id2+`"}]`, nil); st != 200 || b != "ok" {
		t.Fatalf("POST after 413: %d %q", st, b)
	}
	// The client's close packet ends the session politely.
	u3, id3 := pollingSession(t, ts.url)
	if st, b := httpDo(t, "POST", u3, "1", nil); st != 200 || b != "ok" {
		t.Fatalf("POST close: %d %q", st, b)
	}
	if ts.sio.Disconnect(protocol.PeerID(id3)) {
		t.Fatal("session still there after the client's close packet")
	}
	// A malformed payload closes the session.
	if st, _ := httpDo(t, "POST", u, "42[\x1e", nil); st != 400 {
		t.Fatalf("bad payload: %d", st)
	}
	if st, _ := httpDo(t, "GET", u, "", nil); st != 400 {
		t.Fatalf("GET after a bad payload: %d, want 400 (session gone)", st)
	}
}

// TestOversizedBodyRefusedUnread: a POST announcing a huge body is answered 413 before the
// body is sent.
func TestOversizedBodyRefusedUnread(t *testing.T) {
	ts := startServer(t, hub.Config{}, nil)
	u, _ := pollingSession(t, ts.url)
	host := strings.TrimSuffix(strings.TrimPrefix(ts.url, "http://"), "/")
	conn, err := net.Dial("tcp", host)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
	path := strings.TrimPrefix(u, ts.url[:len(ts.url)-1])
	fmt.Fprintf(conn, "POST %s HTTP/1.1\r\nHost: %s\r\nContent-Type: text/plain\r\nContent-Length: 1000000000\r\n\r\n42", path, host)
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestEntityTooLarge {
		t.Fatalf("status %d, want 413", resp.StatusCode)
	}
}

func TestPollingOverlapAndTimeout(t *testing.T) {
	ts := startServer(t, hub.Config{}, nil)
	u, _ := pollingSession(t, ts.url)
	// Two GETs at once: the second is refused and the session closed; the first gets the
	// close packet.
	first := make(chan string, 1)
	go func() {
		_, b := httpDo(t, "GET", u, "", nil)
		first <- b
	}()
	ss := ts.sio.session(u[strings.Index(u, "sid=")+4:])
	waitFor(t, 5*time.Second, "the first GET to wait", func() bool {
		ss.mu.Lock()
		defer ss.mu.Unlock()
		return ss.polling
	})
	if st, _ := httpDo(t, "GET", u, "", nil); st != 400 {
		t.Fatalf("overlapping GET: %d", st)
	}
	if b := <-first; b != "1" {
		t.Fatalf("first GET got %q, want the close packet", b)
	}

	// A session that stops polling is dropped after pingInterval + pingTimeout.
	_, id2 := pollingSession(t, ts.url)
	start := time.Now()
	waitFor(t, 10*time.Second, "the silent polling session to be dropped", func() bool {
		return !ts.sio.carried(protocol.PeerID(id2))
	})
	if el := time.Since(start); el < 2*time.Second {
		t.Errorf("dropped after %v, before pingInterval+pingTimeout (3 s)", el)
	}
}

func TestMaxSessions(t *testing.T) {
	ts := startServer(t, hub.Config{}, func(c *Config) { c.MaxSessions = 1 })
	pollingSession(t, ts.url)
	if st, _ := httpDo(t, "GET", ts.url+"socket.io/?EIO=4&transport=polling", "", nil); st != http.StatusServiceUnavailable {
		t.Fatalf("second session: %d, want 503", st)
	}
}

// TestShutdownEndsPolls: Shutdown answers a waiting GET with the close packet, so the HTTP
// server's own shutdown is not held by long-polls.
func TestShutdownEndsPolls(t *testing.T) {
	ts := startServer(t, hub.Config{}, nil)
	u, _ := pollingSession(t, ts.url)
	ws := dialSIO(t, ts.url, nil)
	ws.connect()
	got := make(chan string, 1)
	go func() {
		_, b := httpDo(t, "GET", u, "", nil)
		got <- b
	}()
	ss := ts.sio.session(u[strings.Index(u, "sid=")+4:])
	waitFor(t, 5*time.Second, "the GET to wait", func() bool {
		ss.mu.Lock()
		defer ss.mu.Unlock()
		return ss.polling
	})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := ts.sio.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	if b := <-got; b != "1" {
		t.Fatalf("waiting GET got %q, want the close packet", b)
	}
	if code := ws.expectClosed(); code != websocket.StatusGoingAway {
		t.Errorf("websocket closed with %v, want 1001", code)
	}
	if st, _ := httpDo(t, "GET", ts.url+"socket.io/?EIO=4&transport=polling", "", nil); st != http.StatusServiceUnavailable {
		t.Errorf("handshake after shutdown: %d, want 503", st)
	}
}
