package server

import (
	"bufio"
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/switchboard-rtc/switchboard/internal/config"
)

// runEdgeServer runs a real server on loopback with cfg changed by mod, and stops it at cleanup.
func runEdgeServer(t *testing.T, mod func(*config.Config)) *Server {
	t.Helper()
	cfg := config.Default()
	cfg.Listen = "127.0.0.1:0"
	cfg.ShutdownTimeout = 3 * time.Second
	cfg.TURN = false
	mod(&cfg)
	s, err := New(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run: %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Errorf("server did not stop")
		}
	})
	return s
}

// rawGet sends GET path with the given Host (and extra header lines) over a new connection to
// addr and returns the status and body.
func rawGet(t *testing.T, addr net.Addr, host, path, extra string) (int, string) {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr.String(), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
	req := "GET " + path + " HTTP/1.1\r\nHost: " + host + "\r\n" + extra + "Connection: close\r\n\r\n"
	if _, err := conn.Write([]byte(req)); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusSwitchingProtocols {
		return resp.StatusCode, ""
	}
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// metricsFrom calls the main listener's handler as a client at remote would reach it.
func metricsFrom(s *Server, remote string) int {
	r := httptest.NewRequest(http.MethodGet, "http://"+s.Addr().String()+"/metrics", nil)
	r.RemoteAddr = remote
	w := httptest.NewRecorder()
	s.http.Handler.ServeHTTP(w, r)
	return w.Code
}

// By default /metrics on the main listener is served to loopback clients only: 404 to others.
func TestMetricsLoopbackOnly(t *testing.T) {
	s := runEdgeServer(t, func(*config.Config) {})
	code, body := rawGet(t, s.Addr(), s.Addr().String(), "/metrics", "")
	if code != http.StatusOK || !strings.Contains(body, "switchboard_connections") {
		t.Fatalf("loopback client: %d %.80q", code, body)
	}
	for _, remote := range []string{"203.0.113.5:40000", "[2001:db8::1]:40000", "10.0.0.7:1", "[::ffff:192.0.2.1]:2"} {
		if code := metricsFrom(s, remote); code != http.StatusNotFound {
			t.Errorf("client %s: %d, want 404", remote, code)
		}
	}
	for _, remote := range []string{"127.0.0.1:40000", "127.9.9.9:1", "[::1]:40000", "[::ffff:127.0.0.1]:3"} {
		if code := metricsFrom(s, remote); code != http.StatusOK {
			t.Errorf("client %s: %d, want 200", remote, code)
		}
	}
	if got := s.hub.Stats().MetricsRefused.Load(); got != 4 {
		t.Errorf("metrics refused %d, want 4", got)
	}
	// Other pages are for everyone.
	r := httptest.NewRequest(http.MethodGet, "http://"+s.Addr().String()+"/healthz", nil)
	r.RemoteAddr = "203.0.113.5:40000"
	w := httptest.NewRecorder()
	s.http.Handler.ServeHTTP(w, r)
	if w.Code != http.StatusOK {
		t.Errorf("/healthz from a remote client: %d", w.Code)
	}
}

// --metrics-public serves /metrics on the main listener to any client.
func TestMetricsPublic(t *testing.T) {
	s := runEdgeServer(t, func(c *config.Config) { c.MetricsPublic = true })
	if code := metricsFrom(s, "203.0.113.5:40000"); code != http.StatusOK {
		t.Fatalf("remote client with --metrics-public: %d", code)
	}
}

// --metrics-listen serves /metrics (and nothing else) on its own listener, to any client;
// the main listener keeps its loopback rule.
func TestMetricsListen(t *testing.T) {
	s := runEdgeServer(t, func(c *config.Config) { c.MetricsListen = "127.0.0.1:0" })
	ma := s.MetricsAddr()
	if ma == nil || ma.String() == s.Addr().String() {
		t.Fatalf("metrics address %v", ma)
	}
	code, body := rawGet(t, ma, ma.String(), "/metrics", "")
	if code != http.StatusOK || !strings.Contains(body, "switchboard_connections") {
		t.Fatalf("metrics listener: %d %.80q", code, body)
	}
	if code, _ := rawGet(t, ma, ma.String(), "/", ""); code != http.StatusNotFound {
		t.Errorf("/ on the metrics listener: %d, want 404", code)
	}
	if code := metricsFrom(s, "203.0.113.5:40000"); code != http.StatusNotFound {
		t.Errorf("main listener, remote client: %d, want 404", code)
	}
	// The separate listener serves a remote client too (it has no gate).
	r := httptest.NewRequest(http.MethodGet, "http://"+ma.String()+"/metrics", nil)
	r.RemoteAddr = "203.0.113.5:40000"
	w := httptest.NewRecorder()
	s.metrics.http.Handler.ServeHTTP(w, r)
	if w.Code != http.StatusOK {
		t.Errorf("metrics listener, remote client: %d", w.Code)
	}
}

// --public-url pins the Host of every request but the health checks, and the Origin of
// WebSocket and Socket.IO handshakes.
func TestPublicURLPinsHost(t *testing.T) {
	s := runEdgeServer(t, func(c *config.Config) { c.PublicURL = "https://call.example.com" })
	addr := s.Addr()
	const ws = "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
	for _, c := range []struct {
		host, path, extra string
		want              int
	}{
		{"call.example.com", "/", "", http.StatusOK},
		{"call.example.com:443", "/", "", http.StatusOK},
		{addr.String(), "/", "", http.StatusMisdirectedRequest},
		{"rebind.evil.test", "/", "", http.StatusMisdirectedRequest},
		{"rebind.evil.test", "/healthz", "", http.StatusOK},
		{addr.String(), "/readyz", "", http.StatusOK},
		{"call.example.com", "/ws", ws + "Origin: https://call.example.com\r\n", http.StatusSwitchingProtocols},
		{"call.example.com", "/ws", ws + "Origin: http://call.example.com\r\n", http.StatusForbidden},
		{"rebind.evil.test", "/ws", ws + "Origin: http://rebind.evil.test\r\n", http.StatusMisdirectedRequest},
		{"call.example.com", "/socket.io/?EIO=4&transport=polling", "Origin: https://call.example.com\r\n", http.StatusOK},
		{"call.example.com", "/socket.io/?EIO=4&transport=polling", "Origin: https://evil.test\r\n", http.StatusForbidden},
		{"rebind.evil.test", "/socket.io/?EIO=4&transport=polling", "Origin: http://rebind.evil.test\r\n", http.StatusMisdirectedRequest},
	} {
		if got, body := rawGet(t, addr, c.host, c.path, c.extra); got != c.want {
			t.Errorf("Host %s %s: %d %.60q, want %d", c.host, c.path, got, body, c.want)
		}
	}
	if got := s.hub.Stats().HostsRefused.Load(); got != 4 {
		t.Errorf("hosts refused %d, want 4", got)
	}
}
