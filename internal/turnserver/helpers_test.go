package turnserver

import (
	"io"
	"log/slog"
	"strconv"
	"testing"
)

func discard() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// testLogger logs to t when -v is given.
func testLogger(t testing.TB) *slog.Logger {
	t.Helper()
	if !testing.Verbose() {
		return discard()
	}
	return slog.New(slog.NewTextHandler(tWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type tWriter struct{ t testing.TB }

func (w tWriter) Write(p []byte) (int, error) { w.t.Log(string(p)); return len(p), nil }

func itoa(i int) string { return strconv.Itoa(i) }
