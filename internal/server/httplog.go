package server

import (
	"context"
	"log"
	"log/slog"
	"strings"
)

// httpErrorLog is net/http's error log for the main listener: its lines at warn, except a
// failed TLS handshake, at debug: any client causes one per connection it opens (a scanner,
// a client that does not trust the certificate, garbage), so at warn the log would grow at
// the rate clients connect.
func httpErrorLog(l *slog.Logger) *log.Logger {
	return log.New(httpLogWriter{l}, "", 0)
}

type httpLogWriter struct{ log *slog.Logger }

func (w httpLogWriter) Write(p []byte) (int, error) {
	msg := strings.TrimSuffix(string(p), "\n")
	level := slog.LevelWarn
	if strings.HasPrefix(msg, "http: TLS handshake error") {
		level = slog.LevelDebug
	}
	w.log.Log(context.Background(), level, msg)
	return len(p), nil
}
