// Package testserver starts a real `switchboard serve` on a loopback port for tests of the
// parts built on it (the SDK, the peer commands, file transfer, media).
package testserver

import (
	"context"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/switchboard-rtc/switchboard/internal/config"
	"github.com/switchboard-rtc/switchboard/internal/server"
)

// Start runs a server with the default configuration (without the embedded TURN server),
// changed by mod if not nil, on 127.0.0.1 and a free port, stops it when the test ends, and returns its base URL
// (http://127.0.0.1:PORT).
func Start(tb testing.TB, mod func(*config.Config)) string {
	tb.Helper()
	srv := Run(tb, mod)
	return "http://" + srv.Addr().String()
}

// Run is Start for tests that need the server itself (its hub, its TURN server).
func Run(tb testing.TB, mod func(*config.Config)) *server.Server {
	tb.Helper()
	srv, _ := RunStoppable(tb, mod)
	return srv
}

// RunStoppable is Run with a function that stops the server before the test ends (it is
// also run then, once): a test that restarts a server on the same address (mod sets Listen)
// stops the first and runs another.
func RunStoppable(tb testing.TB, mod func(*config.Config)) (*server.Server, func()) {
	tb.Helper()
	cfg := config.Default()
	cfg.Listen = "127.0.0.1:0"
	cfg.ShutdownTimeout = 3 * time.Second
	// TURN is off unless mod turns it on; then it listens on a free loopback port.
	cfg.TURN = false
	cfg.TURNListen = "127.0.0.1:0"
	// One address plays every client of these tests: the per-client rates are out of the way
	// unless mod sets them.
	cfg.JoinsPerClient, cfg.JoinBurstPerClient, cfg.TURNCredentialsPerClient = 1e6, 1e6, 1e6
	cfg.HTTPConnsPerClient = 1e6
	if mod != nil {
		mod(&cfg)
	}
	srv, err := server.New(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		tb.Fatalf("testserver: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx) }()
	var once sync.Once
	stop := func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				tb.Errorf("testserver: %v", err)
			}
		})
	}
	tb.Cleanup(stop)
	return srv, stop
}
