package metrics

import "github.com/prometheus/client_golang/prometheus"

// TURNStats is what the embedded TURN server exposes, read at scrape time.
type TURNStats interface {
	// Allocations is the number of live allocations.
	Allocations() int
	// Denied counts datagrams, connections and requests refused by the peer filter.
	Denied() int64
	// AuthFailures counts requests with refused credentials.
	AuthFailures() int64
}

var (
	descTURNAllocations = desc("turn_allocations", "Live TURN allocations.")
	descTURNDenied      = desc("turn_denied_total", "TURN relay packets, connections and requests refused by the peer address filter.")
	descTURNAuth        = desc("turn_auth_failures_total", "TURN requests with refused credentials.")
)

// TURN returns a collector for the embedded TURN server's counters, for Handler.
func TURN(s TURNStats) prometheus.Collector { return turnCollector{s} }

type turnCollector struct{ s TURNStats }

func (c turnCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- descTURNAllocations
	ch <- descTURNDenied
	ch <- descTURNAuth
}

func (c turnCollector) Collect(ch chan<- prometheus.Metric) {
	ch <- prometheus.MustNewConstMetric(descTURNAllocations, prometheus.GaugeValue, float64(c.s.Allocations()))
	ch <- prometheus.MustNewConstMetric(descTURNDenied, prometheus.CounterValue, float64(c.s.Denied()))
	ch <- prometheus.MustNewConstMetric(descTURNAuth, prometheus.CounterValue, float64(c.s.AuthFailures()))
}
