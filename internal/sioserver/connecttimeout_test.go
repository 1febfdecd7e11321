package sioserver

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/switchboard-rtc/switchboard/internal/hub"
	"github.com/switchboard-rtc/switchboard/internal/stats"
)

// TestConnectTimeout: Engine.IO sessions that never send a Socket.IO CONNECT — on polling or
// on a WebSocket — are closed after ConnectTimeout (Socket.IO's connectTimeout), well before
// the ping timeout would; a session that connected stays.
func TestConnectTimeout(t *testing.T) {
	const connectTimeout = 400 * time.Millisecond
	// The ping timeout (1 s + 2 s) is far longer than the connect timeout.
	ts := startServer(t, hub.Config{}, func(c *Config) { c.ConnectTimeout = connectTimeout })
	connected, _ := pollingSession(t, ts.url)
	start := time.Now()

	// A polling session that never connects: its waiting GET gets the close packet.
	st, body := httpDo(t, "GET", ts.url+"socket.io/?EIO=4&transport=polling", "", nil)
	var o struct{ SID string }
	if st != 200 || !strings.HasPrefix(body, "0{") || json.Unmarshal([]byte(body[1:]), &o) != nil {
		t.Fatalf("handshake: %d %q", st, body)
	}
	u := ts.url + "socket.io/?EIO=4&transport=polling&sid=" + o.SID
	// A WebSocket session that never connects: closed the same way.
	ws := dialSIO(t, ts.url, nil)

	for closed := false; !closed; {
		st, body := httpDo(t, "GET", u, "", nil)
		switch {
		case st == 400: // already gone
			closed = true
		case st != 200:
			t.Fatalf("poll: %d %q", st, body)
		default:
			closed = body == "1" || strings.HasSuffix(body, "\x1e1")
		}
		if time.Since(start) > connectTimeout+3*time.Second {
			t.Fatalf("polling session still open after %v", time.Since(start))
		}
	}
	ws.expectClosed()
	if el := time.Since(start); el > connectTimeout+2*time.Second {
		t.Errorf("closed after %v, connect timeout %v", el, connectTimeout)
	}
	if got := ts.hub.Stats().Timeouts[stats.TimeoutConnect].Load(); got != 2 {
		t.Errorf("sio-connect timeouts counted %d, want 2", got)
	}
	// The connected session outlived both: it still relays to itself through the server.
	if ts.sio.session(connected[strings.Index(connected, "sid=")+4:]) == nil {
		t.Fatal("a connected session was closed by the connect timeout")
	}
	if st, b := httpDo(t, "POST", connected, "3", nil); st != 200 || b != "ok" {
		t.Fatalf("connected session POST: %d %q", st, b)
	}
}

// TestUpgradeTimeout: a WebSocket opened to upgrade a polling session that answers the probe
// but never sends the upgrade packet is closed after UpgradeTimeout (checked on the 1 s ping
// beat, before the 3 s peer timeout would drop it silently); the polling session goes on.
func TestUpgradeTimeout(t *testing.T) {
	ts := startServer(t, hub.Config{}, func(c *Config) { c.UpgradeTimeout = 300 * time.Millisecond })
	u, _ := pollingSession(t, ts.url)
	sid := u[strings.Index(u, "sid=")+4:]
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(ts.url, "http")+"socket.io/?EIO=4&transport=websocket&sid="+sid, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.CloseNow()
	if err := c.Write(ctx, websocket.MessageText, []byte("2probe")); err != nil {
		t.Fatal(err)
	}
	if _, b, err := c.Read(ctx); err != nil || string(b) != "3probe" {
		t.Fatalf("probe answer %q %v", b, err)
	}
	start := time.Now()
	_, b, err := c.Read(ctx)
	var ce websocket.CloseError
	if !errors.As(err, &ce) || ce.Reason != "upgrade timeout" {
		t.Fatalf("after the probe: %q %v, want a close with reason upgrade timeout", b, err)
	}
	if el := time.Since(start); el > 2500*time.Millisecond {
		t.Errorf("probe closed after %v", el)
	}
	if got := ts.hub.Stats().Timeouts[stats.TimeoutUpgrade].Load(); got != 1 {
		t.Errorf("sio-upgrade timeouts counted %d, want 1", got)
	}
	if st, b := httpDo(t, "POST", u, "3", nil); st != 200 || b != "ok" {
		t.Fatalf("the polling session after the failed upgrade: POST %d %q", st, b)
	}
}
