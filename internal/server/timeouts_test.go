package server_test

import (
	"bufio"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/switchboard-rtc/switchboard/internal/config"
)

// TestDrippedBodyIsCut: a request body dripped a byte every 50 ms is cut at --read-timeout
// and its connection closed — a Socket.IO long-polling POST (a handler that reads the body)
// and a POST nobody reads (net/http discards it) — and counted; meanwhile a long-polling GET
// legitimately waits longer than the read timeout, and a WebSocket pair on another address
// keeps relaying.
func TestDrippedBodyIsCut(t *testing.T) {
	const readTimeout = 400 * time.Millisecond
	ts := startServer(t, func(c *config.Config) {
		c.ReadTimeout = readTimeout
		c.PingInterval = 1500 * time.Millisecond // the long-polling GET waits this long for a ping
		c.PeerTimeout = 5 * time.Second
	})
	a, b := dial(t, ts), dial(t, ts)
	a.join("canary", nil)
	b.join("canary", nil)
	a.expect("peer-joined")
	relay := func() {
		t.Helper()
		a.send(map[string]any{"type": "message", "target": b.id, "data": "canary"})
		b.expect("message")
	}
	relay()

	u := openPolling(t, ts).url
	// The GET waits for the server's ping, longer than the read timeout, and is not cut.
	polled := make(chan error, 1)
	go func() {
		resp, err := http.Get(u)
		if err != nil {
			polled <- err
			return
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != 200 || string(body) != "2" {
			polled <- errors.New("long poll: " + resp.Status + " " + string(body))
			return
		}
		polled <- nil
	}()

	for i, path := range []string{strings.TrimPrefix(u, ts.base), "/not-read"} {
		addr := &net.TCPAddr{IP: net.IPv4(127, 0, 0, byte(20+i))}
		start := time.Now()
		head := "POST " + path + " HTTP/1.1\r\nHost: x\r\nContent-Type: text/plain\r\nContent-Length: 100\r\n\r\n4"
		drip(t, ts.Addr().String(), addr, head, "2", readTimeout+3*time.Second)
		if el := time.Since(start); el > readTimeout+2*time.Second {
			t.Errorf("%s: body cut after %v, read timeout %v", path, el, readTimeout)
		}
		relay()
	}
	if got := scrape(t, ts.base, `switchboard_timeouts_total{what="http-body"}`); got != "1" {
		// The unread body is cut by net/http's discard, which does not pass through the
		// handler's body: only the POST the handler read is counted.
		t.Errorf("http-body timeouts = %q, want 1", got)
	}
	select {
	case err := <-polled:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(waitFor):
		t.Fatal("the long poll did not end")
	}
	relay()
}

// drip sends first from local, then what every 50 ms, until the server closes the
// connection, which it must do within limit.
func drip(t *testing.T, addr string, local *net.TCPAddr, first, what string, limit time.Duration) {
	t.Helper()
	d := net.Dialer{LocalAddr: local, Timeout: waitFor}
	conn, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.Write([]byte(first)); err != nil {
		t.Fatal(err)
	}
	closed := make(chan struct{})
	go func() {
		defer close(closed)
		_ = conn.SetReadDeadline(time.Now().Add(limit))
		// Whatever the server answers (an error status, or nothing), it must then close.
		_, _ = io.Copy(io.Discard, bufio.NewReader(conn))
	}()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	deadline := time.After(limit)
	for {
		select {
		case <-closed:
			return
		case <-deadline:
			t.Fatalf("%q: still open after %v", first, limit)
		case <-tick.C:
			_, _ = conn.Write([]byte(what)) // a write to a closed socket fails; the reader sees it
		}
	}
}

// TestDrippedHeadersAreCut: request headers dripped a line every 50 ms (a WebSocket
// handshake that never ends) are cut at --header-timeout.
func TestDrippedHeadersAreCut(t *testing.T) {
	const headerTimeout = 400 * time.Millisecond
	ts := startServer(t, func(c *config.Config) { c.HeaderTimeout = headerTimeout })
	start := time.Now()
	drip(t, ts.Addr().String(), &net.TCPAddr{IP: net.IPv4(127, 0, 0, 22)},
		"GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n", "X-Drip: 1\r\n", headerTimeout+3*time.Second)
	if el := time.Since(start); el > headerTimeout+2*time.Second {
		t.Errorf("headers cut after %v, header timeout %v", el, headerTimeout)
	}
	a := dial(t, ts)
	a.join("after", nil)
}

// scrape returns the value of one metric line from /metrics ("" when absent).
func scrape(t *testing.T, base, series string) string {
	t.Helper()
	resp, err := http.Get(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, series+" "); ok {
			return v
		}
	}
	return ""
}
