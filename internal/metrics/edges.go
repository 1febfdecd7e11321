package metrics

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/switchboard-rtc/switchboard/internal/stats"
)

var descFramesRateLimited = desc("frames_rate_limited_total",
	"WebSocket frames that are not whole messages (pings, pongs, fragments) dropped over the rate limit.")

// edgesCollector exposes the counters of the limits on a connection's edges (docs/limits.md).
type edgesCollector struct{ st *stats.Stats }

func (c edgesCollector) Describe(ch chan<- *prometheus.Desc) { ch <- descFramesRateLimited }

func (c edgesCollector) Collect(ch chan<- prometheus.Metric) {
	ch <- prometheus.MustNewConstMetric(descFramesRateLimited, prometheus.CounterValue, float64(c.st.FramesRateLimited.Load()))
}
