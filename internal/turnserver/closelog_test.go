package turnserver

import (
	"context"
	"crypto/tls"
	"log/slog"
	"net"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// afterClose is a log destination that keeps what is written once closed is set. written
// counts every line without synchronization of its own (slog's handler serializes the
// writes): the test reads it once Close has returned, so under the race detector a line
// not ordered before Close's return is reported even when it came just before.
type afterClose struct {
	closed  atomic.Bool
	written int
	mu      sync.Mutex
	lines   []string
}

func (w *afterClose) Write(p []byte) (int, error) {
	w.written++
	if w.closed.Load() {
		w.mu.Lock()
		w.lines = append(w.lines, strings.TrimSpace(string(p)))
		w.mu.Unlock()
	}
	return len(p), nil
}

// TestNothingLoggedAfterClose: once Close has returned, the server logs nothing more (pion's
// loops log their exit at debug level as they end: with a test's logger, a line after the
// test ended panics the test binary). Servers with a TCP and a TLS client are closed in turn;
// once their goroutines are gone, no line may have come after a Close.
func TestNothingLoggedAfterClose(t *testing.T) {
	before := runtime.NumGoroutine()
	var writers []*afterClose
	for range 30 {
		w := new(afterClose)
		writers = append(writers, w)
		s, err := New(Config{Listen: "127.0.0.1:0", Secret: []byte(testSecret),
			Logger: slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelDebug}))})
		if err != nil {
			t.Fatal(err)
		}
		srvCfg, cliCfg := testTLS(t)
		addr, err := s.ListenTLS("127.0.0.1:0", srvCfg)
		if err != nil {
			t.Fatal(err)
		}
		tcp, err := net.Dial("tcp4", s.TCPAddr().String())
		if err != nil {
			t.Fatal(err)
		}
		tl, err := tls.Dial("tcp4", addr.String(), cliCfg)
		if err != nil {
			t.Fatal(err)
		}
		waitUntil(t, "two connections tracked", func() bool { return s.table.count() == 2 })
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		err = s.Close(ctx)
		cancel()
		w.closed.Store(true)
		if w.written == 0 {
			t.Error("nothing logged at debug level while the server ran")
		}
		if err != nil {
			t.Fatal(err)
		}
		_ = tcp.Close()
		_ = tl.Close()
	}
	// The servers' goroutines end (goleak checks the same at the end of the package).
	waitUntil(t, "the servers' goroutines to end", func() bool { return runtime.NumGoroutine() <= before })
	var after []string
	for _, w := range writers {
		w.mu.Lock()
		after = append(after, w.lines...)
		w.mu.Unlock()
	}
	if len(after) > 0 {
		t.Errorf("%d lines logged after Close returned, in 30 servers:\n%s", len(after), strings.Join(after, "\n"))
	}
}
