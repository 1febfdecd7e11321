package sioserver

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"testing"
	"time"

	"github.com/switchboard-rtc/switchboard/internal/hub"
	"github.com/switchboard-rtc/switchboard/internal/wsserver"
)

// testServer is a hub with the native endpoint at /ws and Socket.IO at /socket.io/ on a
// loopback port.
type testServer struct {
	hub *hub.Hub
	ws  *wsserver.Server
	sio *Server
	url string // http://127.0.0.1:PORT/
}

func startServer(t *testing.T, hcfg hub.Config, mod func(*Config)) *testServer {
	t.Helper()
	return startServerBeat(t, hcfg, time.Second, 2*time.Second, mod)
}

// startServerBeat is startServer with the ping interval and timeout of both endpoints (the
// WebSocket endpoint's PeerTimeout is their sum, as in the server).
func startServerBeat(t *testing.T, hcfg hub.Config, interval, timeout time.Duration, mod func(*Config)) *testServer {
	t.Helper()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	hcfg.Logger = log
	h, err := hub.New(hcfg)
	if err != nil {
		t.Fatal(err)
	}
	ws, err := wsserver.New(wsserver.Config{Hub: h, Logger: log, PingInterval: interval, PeerTimeout: interval + timeout})
	if err != nil {
		t.Fatal(err)
	}
	cfg := Config{Hub: h, WS: ws, Logger: log, PingInterval: interval, PingTimeout: timeout}
	if mod != nil {
		mod(&cfg)
	}
	sio, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle("GET /ws", ws)
	mux.Handle("/socket.io/", sio)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hs := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	done := make(chan error, 1)
	go func() { done <- hs.Serve(ln) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = sio.Shutdown(ctx)
		if err := hs.Shutdown(ctx); err != nil {
			t.Errorf("http shutdown: %v", err)
		}
		if err := ws.Shutdown(ctx); err != nil {
			t.Errorf("ws shutdown: %v", err)
		}
		if err := <-done; !errors.Is(err, http.ErrServerClosed) {
			t.Errorf("serve: %v", err)
		}
	})
	return &testServer{hub: h, ws: ws, sio: sio, url: "http://" + ln.Addr().String() + "/"}
}

// waitFor checks cond every 10 ms until it holds, failing the test after timeout.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		select {
		case <-deadline.C:
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		case <-tick.C:
		}
	}
}

// newSess registers a session for the zero client key (nil when refused).
func newSess(srv *Server, now time.Time) *session {
	ss, _ := srv.newSession(now, netip.Prefix{})
	return ss
}
