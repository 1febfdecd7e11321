package bench

import (
	"bytes"
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/switchboard-rtc/switchboard/internal/testserver"
)

// readyWriter is the mode's stdout: it signals the READY line.
type readyWriter struct {
	mu    sync.Mutex
	buf   bytes.Buffer
	ready chan struct{}
	once  sync.Once
}

func (w *readyWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	n, _ := w.buf.Write(p)
	if strings.Contains(w.buf.String(), "READY ") {
		w.once.Do(func() { close(w.ready) })
	}
	return n, nil
}

func (w *readyWriter) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.String()
}

// The resume mode's clients come back after a network cut, each with its presence, and hear
// no peer-left: every figure of the report comes from what happened.
func TestResumeModeAfterCut(t *testing.T) {
	base := testserver.Start(t, nil)
	cut := testserver.NewCutter(t, strings.TrimPrefix(base, "http://"))
	out := &readyWriter{ready: make(chan struct{})}
	var errOut bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	done := make(chan error, 1)
	go func() {
		done <- Main(ctx, []string{"resume", "--url", "ws://" + cut.Addr() + "/ws", "--conns", "40", "--room-size", "4",
			"--source-ips", "4", "--resume-timeout", "20s", "--settle", "500ms"}, out, &errOut)
	}()
	select {
	case <-out.ready:
	case err := <-done:
		t.Fatalf("resume mode ended before READY: %v\n%s\n%s", err, out, &errOut)
	case <-ctx.Done():
		t.Fatalf("no READY: %s\n%s", out, &errOut)
	}
	if n := cut.Cut(); n != 40 {
		t.Fatalf("cut %d connections, want 40", n)
	}
	if err := <-done; err != nil {
		t.Fatalf("resume mode: %v\n%s", err, &errOut)
	}
	m := resultFields(t, out.String())
	if num(t, m, "resumed") != 40 || num(t, m, "failed") != 0 || num(t, m, "new") != 0 || num(t, m, "peer_left") != 0 {
		t.Fatalf("want 40 resumed, none failed or new, no peer-left:\n%s\n%s", out, &errOut)
	}
	if num(t, m, "back_max_ms") <= 0 || num(t, m, "back_p50_ms") > num(t, m, "back_max_ms") {
		t.Fatalf("times out of order:\n%s", out)
	}
}
