package certs

import (
	"context"
	"log/slog"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// errorEvery is how often at most one of certmagic's own error lines reaches the log at warn
// level; the others go to debug. Some of them follow from what a client sends (a handshake
// asking for acme-tls/1 with no challenge under way), so they must not flood the log.
const errorEvery = 10 * time.Second

// zapToSlog is a zapcore.Core that hands certmagic's log lines (it logs through zap) to our
// slog logger: everything at debug, except an error now and then at warn (errorEvery). The
// lines a person needs (obtained, failed and why) are logged by the ACME manager from
// certmagic's events. Once off is set (the manager stopped), nothing is logged.
type zapToSlog struct {
	log   *slog.Logger
	attrs []slog.Attr
	off   *atomic.Bool
	last  *lastError
}

type lastError struct {
	mu sync.Mutex
	at time.Time
}

func newZapLogger(log *slog.Logger, off *atomic.Bool) *zap.Logger {
	return zap.New(&zapToSlog{log: log, off: off, last: new(lastError)})
}

func (c *zapToSlog) level(l zapcore.Level) slog.Level {
	if l < zapcore.ErrorLevel {
		return slog.LevelDebug
	}
	c.last.mu.Lock()
	defer c.last.mu.Unlock()
	if now := time.Now(); now.Sub(c.last.at) >= errorEvery {
		c.last.at = now
		return slog.LevelWarn
	}
	return slog.LevelDebug
}

func (c *zapToSlog) Enabled(l zapcore.Level) bool {
	if c.off.Load() {
		return false
	}
	if l >= zapcore.ErrorLevel && c.log.Enabled(context.Background(), slog.LevelWarn) {
		return true
	}
	return c.log.Enabled(context.Background(), slog.LevelDebug)
}

func (c *zapToSlog) With(fields []zapcore.Field) zapcore.Core {
	d := *c
	d.attrs = append(append([]slog.Attr(nil), c.attrs...), toAttrs(fields)...)
	return &d
}

func (c *zapToSlog) Check(e zapcore.Entry, ce *zapcore.CheckedEntry) *zapcore.CheckedEntry {
	if c.Enabled(e.Level) {
		return ce.AddCore(e, c)
	}
	return ce
}

func (c *zapToSlog) Write(e zapcore.Entry, fields []zapcore.Field) error {
	if c.off.Load() {
		return nil
	}
	lvl := c.level(e.Level)
	if !c.log.Enabled(context.Background(), lvl) {
		return nil
	}
	attrs := make([]slog.Attr, 0, len(c.attrs)+len(fields)+1)
	if e.LoggerName != "" {
		attrs = append(attrs, slog.String("logger", e.LoggerName))
	}
	attrs = append(append(attrs, c.attrs...), toAttrs(fields)...)
	c.log.LogAttrs(context.Background(), lvl, "certmagic: "+e.Message, attrs...)
	return nil
}

func (c *zapToSlog) Sync() error { return nil }

// toAttrs turns zap fields into slog attributes, in key order.
func toAttrs(fields []zapcore.Field) []slog.Attr {
	if len(fields) == 0 {
		return nil
	}
	enc := zapcore.NewMapObjectEncoder()
	for _, f := range fields {
		f.AddTo(enc)
	}
	keys := make([]string, 0, len(enc.Fields))
	for k := range enc.Fields {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	out := make([]slog.Attr, 0, len(keys))
	for _, k := range keys {
		out = append(out, slog.Any(k, enc.Fields[k]))
	}
	return out
}
