package metrics

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/switchboard-rtc/switchboard/internal/stats"
)

var descTimeouts = desc("timeouts_total", "Requests and connections cut by a timeout, by what timed out (docs/limits.md).", "what")

// timeoutCollector reads stats.Stats.Timeouts at scrape time.
type timeoutCollector struct{ st *stats.Stats }

func (c timeoutCollector) Describe(ch chan<- *prometheus.Desc) { ch <- descTimeouts }

func (c timeoutCollector) Collect(ch chan<- prometheus.Metric) {
	for k := stats.TimeoutKind(0); k < stats.NumTimeoutKinds; k++ {
		ch <- prometheus.MustNewConstMetric(descTimeouts, prometheus.CounterValue, float64(c.st.Timeouts[k].Load()), k.String())
	}
}
