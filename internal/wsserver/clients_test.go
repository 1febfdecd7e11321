package wsserver

import (
	"context"
	"encoding/json"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/switchboard-rtc/switchboard/internal/hub"
)

// dialFrom opens a WebSocket from the loopback address src (a client of its own); it returns
// the connection, or nil and the HTTP status of a refused upgrade.
func dialFrom(t *testing.T, url, src string) (*websocket.Conn, *http.Response) {
	t.Helper()
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}, Timeout: 5 * time.Second}
	tr := &http.Transport{DialContext: d.DialContext}
	t.Cleanup(tr.CloseIdleConnections)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, resp, err := websocket.Dial(ctx, url, &websocket.DialOptions{HTTPClient: &http.Client{Transport: tr}})
	if err != nil {
		if resp == nil {
			t.Fatalf("dial from %s: %v", src, err)
		}
		return nil, resp
	}
	t.Cleanup(func() { c.CloseNow() })
	return c, resp
}

func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.NewTimer(5 * time.Second)
	defer deadline.Stop()
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		select {
		case <-deadline.C:
			t.Fatalf("timed out waiting for %s", what)
		case <-tick.C:
		}
	}
}

// TestConnsPerClient: one address opens connections up to its share and the next upgrade
// gets 429 with Retry-After before any 101, while another address still connects, joins and
// relays; closing gives the slots back and leaves no entry behind.
func TestConnsPerClient(t *testing.T) {
	const share = 3
	s, hs := startTestServer(t, hub.Config{}, Config{ConnsPerClient: share})
	url := "ws" + strings.TrimPrefix(hs.URL, "http")
	hogKey := netip.MustParsePrefix("127.0.0.2/32")

	var hog []*websocket.Conn
	for i := range share {
		c, resp := dialFrom(t, url, "127.0.0.2")
		if c == nil {
			t.Fatalf("connection %d refused: %d", i, resp.StatusCode)
		}
		hog = append(hog, c)
	}
	if c, resp := dialFrom(t, url, "127.0.0.2"); c != nil || resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("connection past the share: open %v, status %d, Retry-After %q; want 429 with Retry-After",
			c != nil, resp.StatusCode, resp.Header.Get("Retry-After"))
	}
	if got := s.hub.Stats().RefusedClientConns.Load(); got != 1 {
		t.Errorf("RefusedClientConns = %d, want 1", got)
	}
	if n, _ := s.ClientConns(hogKey); n != share {
		t.Errorf("hog holds %d connections, want %d", n, share)
	}

	// Another client connects, joins and relays.
	a, _ := dialFrom(t, url, "127.0.0.3")
	b, _ := dialFrom(t, url, "127.0.0.3")
	if a == nil || b == nil {
		t.Fatal("another client was refused")
	}
	writeT(t, a, `{"type":"join","room":"r"}`)
	welcomeA := readJSON(t, a)
	writeT(t, b, `{"type":"join","room":"r"}`)
	welcomeB := readJSON(t, b)
	var idA, idB string
	_ = json.Unmarshal(welcomeA["peer"], &idA)
	_ = json.Unmarshal(welcomeB["peer"], &idB)
	if idA == "" || idB == "" {
		t.Fatalf("welcomes: %v / %v", welcomeA, welcomeB)
	}
	if ev := readJSON(t, a); string(ev["type"]) != `"peer-joined"` {
		t.Fatalf("a got %v, want peer-joined", ev)
	}
	writeT(t, a, `{"type":"offer","target":"`+idB+`","data":{"sdp":"x"}}`)
	ev := readJSON(t, b)
	if string(ev["type"]) != `"offer"` || string(ev["from"]) != `"`+idA+`"` {
		t.Fatalf("b got %v, want the offer from %s", ev, idA)
	}

	// Closing the hog's connections frees its slots and its entry.
	for _, c := range hog {
		_ = c.Close(websocket.StatusNormalClosure, "")
	}
	waitUntil(t, "the hog's slots", func() bool { n, clients := s.ClientConns(hogKey); return n == 0 && clients == 1 })
	if c, resp := dialFrom(t, url, "127.0.0.2"); c == nil {
		t.Fatalf("connection after closing refused: %d", resp.StatusCode)
	} else {
		_ = c.Close(websocket.StatusNormalClosure, "")
	}
	_ = a.Close(websocket.StatusNormalClosure, "")
	_ = b.Close(websocket.StatusNormalClosure, "")
	waitUntil(t, "every slot", func() bool { _, clients := s.ClientConns(hogKey); return clients == 0 })
}

func readJSON(t *testing.T, c *websocket.Conn) map[string]json.RawMessage {
	t.Helper()
	s, err := readT(t, c)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal([]byte(s), &m); err != nil {
		t.Fatalf("%q: %v", s, err)
	}
	return m
}
