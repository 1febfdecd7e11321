package sioserver

import (
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/switchboard-rtc/switchboard/internal/hub"
	"github.com/switchboard-rtc/switchboard/internal/membudget"
)

// TestHandshakeRefusedWhenBudgetFull: with nine tenths of the memory budget held, an
// Engine.IO handshake gets 503 with Retry-After and the Engine.IO error JSON, counted; with
// room again, it is served and its session's queue is charged until the session goes.
func TestHandshakeRefusedWhenBudgetFull(t *testing.T) {
	b := membudget.New(1 << 20)
	hog := b.NewAccount(membudget.WSQueue, func() {})
	hog.Add(950 << 10)
	ts := startServer(t, hub.Config{}, func(c *Config) { c.Budget = b })
	c := clientFrom(t, "127.0.0.2")
	handshake := ts.url + "socket.io/?EIO=4&transport=polling"
	resp, body := doFrom(t, c, "GET", handshake, "")
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" || !strings.Contains(body, `"code"`) {
		t.Fatalf("handshake with the budget full: %d %q", resp.StatusCode, body)
	}
	if got := ts.sio.stats.RefusedMemory.Load(); got != 1 {
		t.Fatalf("refused for memory: %d", got)
	}
	hog.Release()
	resp, body = doFrom(t, c, "GET", handshake, "")
	if resp.StatusCode != http.StatusOK || !strings.HasPrefix(body, "0{") {
		t.Fatalf("handshake with room: %d %q", resp.StatusCode, body)
	}
	sid := body[strings.Index(body, `"sid":"`)+7:]
	sid = sid[:strings.IndexByte(sid, '"')]
	// CONNECT queues the answer for the next GET: charged while it waits.
	doFrom(t, c, "POST", handshake+"&sid="+sid, "40")
	waitFor(t, 5*time.Second, "the queued CONNECT answer charged", func() bool { return b.Used() > 0 })
	doFrom(t, c, "GET", handshake+"&sid="+sid, "")
	waitFor(t, 5*time.Second, "the collected answer given back", func() bool { return b.Used() == 0 })
}

// TestPostBodyCharged: a long-polling POST's body is charged to the memory budget while it is
// read (a client that drips it holds the charge, not more), a second POST to the same session
// meanwhile gets 400 and closes the session, and once the POST is answered the charge is gone.
// Over the budget a POST gets 503 and its session stays.
func TestPostBodyCharged(t *testing.T) {
	b := membudget.New(1 << 20)
	ts := startServer(t, hub.Config{}, func(c *Config) { c.Budget = b })
	c := clientFrom(t, "127.0.0.2")
	handshake := ts.url + "socket.io/?EIO=4&transport=polling"
	open := func() string {
		_, body := doFrom(t, c, "GET", handshake, "")
		sid := body[strings.Index(body, `"sid":"`)+7:]
		return sid[:strings.IndexByte(sid, '"')]
	}
	sid := open()
	addr := strings.TrimSuffix(strings.TrimPrefix(ts.url, "http://"), "/")
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	const size = 40 << 10
	head := "POST /socket.io/?EIO=4&transport=polling&sid=" + sid + " HTTP/1.1\r\nHost: " + addr +
		"\r\nContent-Type: text/plain\r\nContent-Length: " + strconv.Itoa(size) + "\r\n\r\n4"
	if _, err := conn.Write([]byte(head)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "the body charged while it is read", func() bool { return b.Used() >= size })
	resp, _ := doFrom(t, c, "POST", handshake+"&sid="+sid, "40")
	if resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("overlapping POST: %d", resp.StatusCode)
	}
	if _, err := conn.Write([]byte(strings.Repeat("x", size-1))); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "the charge given back once the POST is answered", func() bool { return b.Used() == 0 })

	// Over the budget: 503, and the session is still there.
	sid = open()
	hog := b.NewAccount(membudget.WSQueue, func() {})
	hog.Add(b.Limit() - 1)
	resp, _ = doFrom(t, c, "POST", handshake+"&sid="+sid, "40")
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("POST over the budget: %d", resp.StatusCode)
	}
	hog.Release()
	if resp, body := doFrom(t, c, "POST", handshake+"&sid="+sid, "40"); resp.StatusCode != http.StatusOK {
		t.Fatalf("POST again: %d %q", resp.StatusCode, body)
	}
}
