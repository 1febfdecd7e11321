package server

import (
	"log/slog"

	"github.com/switchboard-rtc/switchboard/internal/config"
	"github.com/switchboard-rtc/switchboard/internal/fdlimit"
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
func descriptors(g *fdlimit.Gauge) interface{ Full() bool } {
	if g == nil {
		return nil
	}
	return g
}

func closeGauge(g *fdlimit.Gauge) {
	if g != nil {
		_ = g.Close()
	}
}
