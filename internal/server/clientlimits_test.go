package server_test

import (
	"context"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/switchboard-rtc/switchboard/internal/config"
)

// fromAddr returns an HTTP client whose connections come from the loopback address src.
func fromAddr(t *testing.T, src string) *http.Client {
	t.Helper()
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}, Timeout: 5 * time.Second}
	tr := &http.Transport{DialContext: d.DialContext}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: waitFor}
}

// wsFrom opens a WebSocket with hc; it returns the status of a refused upgrade.
func wsFrom(t *testing.T, hc *http.Client, url string) (*websocket.Conn, int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	c, resp, err := websocket.Dial(ctx, url, &websocket.DialOptions{HTTPClient: hc})
	if err != nil {
		if resp == nil {
			t.Fatalf("dial %s: %v", url, err)
		}
		return nil, resp.StatusCode
	}
	t.Cleanup(func() { c.CloseNow() })
	return c, http.StatusSwitchingProtocols
}

func getFrom(t *testing.T, hc *http.Client, url string) (int, string) {
	t.Helper()
	resp, err := hc.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestPerClientLimits: on a real server, one address uses up its Engine.IO sessions and its
// WebSocket connections (a native one and a Socket.IO one) and is refused past them, counted
// by reason in /metrics, while another address still connects, joins and opens a session.
func TestPerClientLimits(t *testing.T) {
	ts := startServer(t, func(c *config.Config) {
		c.ConnsPerClient = 2
		c.SIOSessionsPerClient = 2
	})
	host := strings.TrimPrefix(ts.base, "http://")
	sioWS := "ws://" + host + "/socket.io/?EIO=4&transport=websocket"
	sioPoll := ts.base + "/socket.io/?EIO=4&transport=polling"
	hog := fromAddr(t, "127.0.0.2")

	if _, st := wsFrom(t, hog, ts.ws); st != http.StatusSwitchingProtocols {
		t.Fatalf("hog's /ws: %d", st)
	}
	sc, st := wsFrom(t, hog, sioWS)
	if st != http.StatusSwitchingProtocols {
		t.Fatalf("hog's Socket.IO WebSocket: %d", st)
	}
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	if _, open, err := sc.Read(ctx); err != nil || !strings.HasPrefix(string(open), "0{") {
		t.Fatalf("Socket.IO open packet: %q, %v", open, err)
	}
	if st, body := getFrom(t, hog, sioPoll); st != 200 || !strings.HasPrefix(body, "0{") {
		t.Fatalf("hog's polling session: %d %q", st, body)
	}
	// Two sessions (WebSocket, polling) and two connections (/ws, Socket.IO): both used up.
	if st, body := getFrom(t, hog, sioPoll); st != http.StatusTooManyRequests || !strings.Contains(body, `"code":4`) {
		t.Fatalf("hog's third session: %d %q, want 429 with code 4", st, body)
	}
	if _, st := wsFrom(t, hog, ts.ws); st != http.StatusTooManyRequests {
		t.Fatalf("hog's third connection: %d, want 429", st)
	}

	// Another address is served.
	other := fromAddr(t, "127.0.0.3")
	c, st := wsFrom(t, other, ts.ws)
	if st != http.StatusSwitchingProtocols {
		t.Fatalf("other client's /ws: %d", st)
	}
	if err := c.Write(ctx, websocket.MessageText, []byte(`{"type":"join","room":"r"}`)); err != nil {
		t.Fatal(err)
	}
	if _, w, err := c.Read(ctx); err != nil || !strings.Contains(string(w), `"type":"welcome"`) {
		t.Fatalf("other client's join: %q, %v", w, err)
	}
	if st, body := getFrom(t, other, sioPoll); st != 200 || !strings.HasPrefix(body, "0{") {
		t.Fatalf("other client's polling session: %d %q", st, body)
	}

	_, metrics := getFrom(t, http.DefaultClient, ts.base+"/metrics")
	for _, want := range []string{
		`switchboard_connections_refused_total{reason="client-sessions"} 1`,
		`switchboard_connections_refused_total{reason="client-connections"} 1`,
	} {
		if !strings.Contains(metrics, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
}
