package sioserver

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/switchboard-rtc/switchboard/internal/hub"
)

// clientFrom returns an HTTP client whose connections come from the loopback address src, so
// that a test can stand for several clients.
func clientFrom(t *testing.T, src string) *http.Client {
	t.Helper()
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}, Timeout: 5 * time.Second}
	tr := &http.Transport{DialContext: d.DialContext}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: 10 * time.Second}
}

func doFrom(t *testing.T, c *http.Client, method, u, body string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequestWithContext(context.Background(), method, u, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, u, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

// TestSessionsPerClient: one address opens sessions up to its share and is refused past it
// with 429, Retry-After and the Engine.IO error JSON, while a client of another address
// still connects and relays; closing the sessions gives the slots back and leaves no entry.
func TestSessionsPerClient(t *testing.T) {
	const share = 3
	ts := startServer(t, hub.Config{}, func(c *Config) { c.SessionsPerClient = share })
	hog := clientFrom(t, "127.0.0.2")
	hogKey := netip.MustParsePrefix("127.0.0.2/32")
	handshake := ts.url + "socket.io/?EIO=4&transport=polling"

	var sids []string
	for i := range share {
		resp, body := doFrom(t, hog, "GET", handshake, "")
		var o struct{ SID string }
		if resp.StatusCode != 200 || !strings.HasPrefix(body, "0{") || json.Unmarshal([]byte(body[1:]), &o) != nil {
			t.Fatalf("session %d: %d %q", i, resp.StatusCode, body)
		}
		sids = append(sids, o.SID)
	}
	if n := ts.sio.perClient.Count(hogKey); n != share {
		t.Fatalf("hog counted %d sessions, want %d", n, share)
	}
	for _, u := range []string{handshake, ts.url + "socket.io/?EIO=4&transport=websocket"} {
		resp, body := doFrom(t, hog, "GET", u, "")
		var e struct {
			Code    *int
			Message string
		}
		if resp.StatusCode != http.StatusTooManyRequests || json.Unmarshal([]byte(body), &e) != nil || e.Code == nil || *e.Code != errForbidden || e.Message == "" {
			t.Fatalf("session past the share (%s): %d %q, want 429 with {code:4}", u, resp.StatusCode, body)
		}
		if resp.Header.Get("Retry-After") == "" {
			t.Errorf("429 without Retry-After")
		}
	}
	if got := ts.hub.Stats().RefusedClientSessions.Load(); got != 2 {
		t.Errorf("RefusedClientSessions = %d, want 2", got)
	}

	// Another client (127.0.0.1, the default client's address) is still served: two sockets
	// connect and relay to each other.
	u1, id1 := pollingSession(t, ts.url)
	u2, id2 := pollingSession(t, ts.url)
	if st, b := httpDo(t, "POST", u1, `42["offer",{"target":"`+id2+`"}]`, nil); st != 200 || b != "ok" {
		t.Fatalf("POST: %d %q", st, b)
	}
	want := `42["offer",{"target":"` + id2 + `","from":"` + id1 + `"},"1"]` // its offset last
	if st, b := httpDo(t, "GET", u2, "", nil); st != 200 || b != want {
		t.Fatalf("GET: %d %q, want %q", st, b, want)
	}

	// Closing the hog's sessions gives its slots back.
	for _, sid := range sids {
		if resp, b := doFrom(t, hog, "POST", handshake+"&sid="+sid, "1"); resp.StatusCode != 200 || b != "ok" {
			t.Fatalf("POST close: %d %q", resp.StatusCode, b)
		}
	}
	waitFor(t, 5*time.Second, "the hog's sessions to be released", func() bool { return ts.sio.perClient.Count(hogKey) == 0 })
	if resp, body := doFrom(t, hog, "GET", handshake, ""); resp.StatusCode != 200 || !strings.HasPrefix(body, "0{") {
		t.Fatalf("session after closing: %d %q", resp.StatusCode, body)
	}
	for _, u := range []string{u1, u2} {
		if st, b := httpDo(t, "POST", u, "1", nil); st != 200 || b != "ok" {
			t.Fatalf("POST close: %d %q", st, b)
		}
	}
	// Left: the hog's last session only; one entry, no growth.
	waitFor(t, 5*time.Second, "the other client's sessions to be released", func() bool { return ts.sio.perClient.Clients() == 1 })
}
