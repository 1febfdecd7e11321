package wsserver

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"go.uber.org/goleak"

	"github.com/switchboard-rtc/switchboard/internal/hub"
)

func newTestServer(t *testing.T) (*Server, string) {
	t.Helper()
	s, hs := startTestServer(t, hub.Config{}, Config{})
	return s, "ws" + strings.TrimPrefix(hs.URL, "http")
}

// startTestServer runs a Server for cfg (its Hub made from hcfg) behind an httptest server on
// loopback, both closed when the test ends. Loggers default to discarding.
func startTestServer(tb testing.TB, hcfg hub.Config, cfg Config) (*Server, *httptest.Server) {
	tb.Helper()
	if hcfg.Logger == nil {
		hcfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if cfg.Logger == nil {
		cfg.Logger = hcfg.Logger
	}
	h, err := hub.New(hcfg)
	if err != nil {
		tb.Fatal(err)
	}
	cfg.Hub = h
	s, err := New(cfg)
	if err != nil {
		tb.Fatal(err)
	}
	hs := httptest.NewServer(s)
	tb.Cleanup(func() {
		hs.Close()
		_ = s.Close()
	})
	return s, hs
}

func dialT(t *testing.T, url string) *websocket.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, _, err := websocket.Dial(ctx, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.CloseNow() })
	return c
}

func readT(t *testing.T, c *websocket.Conn) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, b, err := c.Read(ctx)
	return string(b), err
}

func writeT(t *testing.T, c *websocket.Conn, s string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := c.Write(ctx, websocket.MessageText, []byte(s)); err != nil {
		t.Fatal(err)
	}
}

// A panic while handling one connection closes that connection (1011) and nothing else.
func TestPanicClosesOnlyThatConnection(t *testing.T) {
	testHookMessage = func(p []byte) {
		if bytes.Contains(p, []byte("boom")) {
			panic("injected bug")
		}
	}
	t.Cleanup(func() { testHookMessage = nil }) // runs after the server's cleanup stops the loops
	s, url := newTestServer(t)
	victim, bystander := dialT(t, url), dialT(t, url)
	writeT(t, bystander, `{"type":"join","room":"r"}`)
	if m, err := readT(t, bystander); err != nil || !strings.Contains(m, "welcome") {
		t.Fatalf("welcome: %q %v", m, err)
	}
	writeT(t, victim, `{"type":"join","room":"r"}`)
	if m, err := readT(t, victim); err != nil || !strings.Contains(m, "welcome") {
		t.Fatalf("welcome: %q %v", m, err)
	}
	if m, _ := readT(t, bystander); !strings.Contains(m, "peer-joined") {
		t.Fatalf("peer-joined: %q", m)
	}
	writeT(t, victim, `{"type":"message","broadcast":true,"data":"boom"}`)
	_, err := readT(t, victim)
	if err == nil {
		t.Fatal("victim still open after a panic")
	}
	if m, _ := readT(t, bystander); !strings.Contains(m, "peer-left") {
		t.Fatalf("bystander should see the victim leave, got %q", m)
	}
	writeT(t, bystander, `{"type":"leave","id":1}`)
	if m, err := readT(t, bystander); err != nil || !strings.Contains(m, `"ack"`) {
		t.Fatalf("bystander broken after another connection's panic: %q %v", m, err)
	}
	if got := s.stats.Panics.Load(); got != 1 {
		t.Fatalf("panics counted: %d", got)
	}
}

// Close stops every loop goroutine and closes every socket.
func TestCloseLeaksNoGoroutines(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	h, err := hub.New(hub.Config{Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	s, err := New(Config{Hub: h, Logger: log, Loops: 3})
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(s)
	url := "ws" + strings.TrimPrefix(hs.URL, "http")
	var conns []*websocket.Conn
	for i := 0; i < 5; i++ {
		c := dialT(t, url)
		writeT(t, c, `{"type":"join","room":"r"}`)
		conns = append(conns, c)
	}
	// Clients read (and so answer the close handshake) while the server shuts down.
	closes := make(chan error, len(conns))
	for _, c := range conns {
		go func() {
			for {
				if _, _, err := c.Read(context.Background()); err != nil {
					closes <- err
					return
				}
			}
		}()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	start := time.Now()
	if err := s.Shutdown(ctx); err != nil {
		t.Fatalf("shutdown: %v", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("shutdown took %v with cooperative clients", d)
	}
	for range conns {
		if err := <-closes; websocket.CloseStatus(err) != websocket.StatusGoingAway {
			t.Fatalf("close: %v", err)
		}
	}
	hs.Close()
	if n := h.Stats().Connections.Load(); n != 0 {
		t.Fatalf("%d connections left", n)
	}
}
