package turnserver

import (
	"context"
	"fmt"
	"log/slog"
	"sync"

	"github.com/pion/logging"
)

// loggerFactory adapts slog to pion's logging. Pion's info and warnings are about single
// clients' requests (a refused permission, a garbage datagram), so they log at debug; its
// errors at warn.
type loggerFactory struct{ log *slog.Logger }

func (f loggerFactory) NewLogger(scope string) logging.LeveledLogger {
	return pionLogger{f.log.With("pion", scope)}
}

// pionLogger formats a line only when its level is on: pion logs at debug for every relayed
// datagram, and formatting those lines was a seventh of the relay's CPU (issue 18).
type pionLogger struct{ log *slog.Logger }

func (l pionLogger) Trace(string)              {}
func (l pionLogger) Tracef(string, ...any)     {}
func (l pionLogger) Debug(m string)            { l.log.Debug(m) }
func (l pionLogger) Debugf(f string, a ...any) { l.logf(slog.LevelDebug, f, a) }
func (l pionLogger) Info(m string)             { l.log.Debug(m) }
func (l pionLogger) Infof(f string, a ...any)  { l.logf(slog.LevelDebug, f, a) }
func (l pionLogger) Warn(m string)             { l.log.Debug(m) }
func (l pionLogger) Warnf(f string, a ...any)  { l.logf(slog.LevelDebug, f, a) }
func (l pionLogger) Error(m string)            { l.log.Warn(m) }
func (l pionLogger) Errorf(f string, a ...any) { l.logf(slog.LevelWarn, f, a) }

func (l pionLogger) logf(level slog.Level, f string, a []any) {
	if l.log.Enabled(context.Background(), level) {
		l.log.Log(context.Background(), level, fmt.Sprintf(f, a...))
	}
}

// logGate lets the server's log lines through until shut: pion's loops log as they end, after
// what Close waits for, and nothing may be logged once Close has returned. A line being
// written holds the gate open; shut waits for it.
type logGate struct {
	mu  sync.RWMutex
	off bool
}

func (g *logGate) shut() {
	g.mu.Lock()
	g.off = true
	g.mu.Unlock()
}

func (g *logGate) wrap(h slog.Handler) slog.Handler { return gatedHandler{h: h, g: g} }

type gatedHandler struct {
	h slog.Handler
	g *logGate
}

func (h gatedHandler) Enabled(ctx context.Context, l slog.Level) bool { return h.h.Enabled(ctx, l) }

func (h gatedHandler) Handle(ctx context.Context, r slog.Record) error {
	h.g.mu.RLock()
	defer h.g.mu.RUnlock()
	if h.g.off {
		return nil
	}
	return h.h.Handle(ctx, r) //nolint:wrapcheck // the handler's own error
}

func (h gatedHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return gatedHandler{h: h.h.WithAttrs(as), g: h.g}
}

func (h gatedHandler) WithGroup(name string) slog.Handler {
	return gatedHandler{h: h.h.WithGroup(name), g: h.g}
}
