package metrics

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/switchboard-rtc/switchboard/internal/stats"
)

// TURNStats is what the embedded TURN server exposes, read at scrape time.
type TURNStats interface {
	// Allocations is the number of live allocations.
	Allocations() int
	// Denied counts datagrams, connections and requests refused by the peer filter.
	Denied() int64
	// AuthFailures counts requests with refused credentials.
	AuthFailures() int64
	// Refusals counts what the per-client limits refused or cut, by reason
	// (client-allocations, tcp-per-client, tcp-cap, tcp-allocate-timeout).
	Refusals() map[string]int64
}

var (
	descTURNAllocations = desc("turn_allocations", "Live TURN allocations.")
	descTURNDenied      = desc("turn_denied_total", "TURN relay packets, connections and requests refused by the peer address filter.")
	descTURNAuth        = desc("turn_auth_failures_total", "TURN requests with refused credentials.")
	descTURNRefused     = desc("turn_refused_total", "TURN allocations and client TCP connections refused or cut by a per-client limit or the connection cap, and TURN credentials withheld from a client over --turn-credentials-per-client (credentials), by reason (docs/limits.md).", "reason")
)

// TURN returns a collector for the embedded TURN server's counters (s; nil when only an
// external TURN server is used) and the TURN credentials the hub withheld (st's
// PerClient.TURNCredentialsRefused, reason credentials), for Handler.
func TURN(s TURNStats, st *stats.Stats) prometheus.Collector { return turnCollector{s, st} }

type turnCollector struct {
	s  TURNStats
	st *stats.Stats
}

func (c turnCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- descTURNAllocations
	ch <- descTURNDenied
	ch <- descTURNAuth
	ch <- descTURNRefused
}

func (c turnCollector) Collect(ch chan<- prometheus.Metric) {
	ch <- prometheus.MustNewConstMetric(descTURNRefused, prometheus.CounterValue, float64(c.st.PerClient.TURNCredentialsRefused.Load()), "credentials")
	if c.s == nil {
		return
	}
	ch <- prometheus.MustNewConstMetric(descTURNAllocations, prometheus.GaugeValue, float64(c.s.Allocations()))
	ch <- prometheus.MustNewConstMetric(descTURNDenied, prometheus.CounterValue, float64(c.s.Denied()))
	ch <- prometheus.MustNewConstMetric(descTURNAuth, prometheus.CounterValue, float64(c.s.AuthFailures()))
	for reason, n := range c.s.Refusals() {
		ch <- prometheus.MustNewConstMetric(descTURNRefused, prometheus.CounterValue, float64(n), reason)
	}
}
