package server

import (
	"log/slog"
	"net"
	"net/http"

	"github.com/switchboard-rtc/switchboard/internal/config"
	"github.com/switchboard-rtc/switchboard/internal/fdlimit"
	"github.com/switchboard-rtc/switchboard/internal/wsserver"
)

// newGauge returns the gauge of the process's descriptors that keeps --fd-reserve of them
// from WebSocket upgrades, or nil when the reserve is 0 or the descriptors cannot be counted
// (then only the accept errors are tamed and a failed dup still answers 503).
func newGauge(cfg config.Config, log *slog.Logger) *fdlimit.Gauge {
	if cfg.FDReserve == 0 {
		return nil
	}
	limit, err := fdlimit.Limit()
	if err == nil && cfg.FDReserve >= limit/2 {
		log.Warn("fd-reserve is half the descriptor limit or more: WebSocket connections are refused early",
			"fd-reserve", cfg.FDReserve, "limit", limit)
	}
	var g *fdlimit.Gauge
	if err == nil {
		g, err = fdlimit.New(limit, cfg.FDReserve)
	}
	if err != nil {
		log.Warn("descriptor reserve off: cannot count open descriptors", "err", err)
		return nil
	}
	return g
}

// descriptors is g as the WebSocket server's Descriptors: nil stays a nil interface.
func descriptors(g *fdlimit.Gauge) wsserver.Descriptors {
	if g == nil {
		return nil
	}
	return g
}

// connState notes on g every HTTP connection that closes. Each was noted open by the
// listener (fdlimit.Listener); a hijacked one is not reported closed here: the WebSocket
// server that hijacked it notes it when it ends.
func connState(g *fdlimit.Gauge) func(net.Conn, http.ConnState) {
	if g == nil {
		return nil
	}
	return func(_ net.Conn, st http.ConnState) {
		if st == http.StateClosed {
			g.Note(-1)
		}
	}
}

func closeGauge(g *fdlimit.Gauge) {
	if g != nil {
		_ = g.Close()
	}
}
