package metrics

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/switchboard-rtc/switchboard/internal/membudget"
)

var (
	descMemBudget  = desc("memory_budget_bytes", "The memory budget for what clients make the server hold (--memory-budget).")
	descMemHeld    = desc("memory_held_bytes", "Bytes held for clients now: send queues, partial frames, held events, backed-up kernel send buffers.")
	descMemPeak    = desc("memory_held_peak_bytes", "The most bytes held for clients at once since the start.")
	descMemDropped = desc("memory_dropped_total", "Holders the budget's reclaimer dropped as slow (the biggest first), by what they held: "+
		"ws-queue, ws-partial, poll-queue, poll-body, held-events.", "what")
	descMemRefused = desc("memory_refused_total", "Charges refused because they would have passed the budget (the holder was dropped as slow).")
)

// Memory returns a collector for the memory budget, for Handler.
func Memory(b *membudget.Budget) prometheus.Collector { return memCollector{b} }

type memCollector struct{ b *membudget.Budget }

func (c memCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- descMemBudget
	ch <- descMemHeld
	ch <- descMemPeak
	ch <- descMemDropped
	ch <- descMemRefused
}

func (c memCollector) Collect(ch chan<- prometheus.Metric) {
	ch <- prometheus.MustNewConstMetric(descMemBudget, prometheus.GaugeValue, float64(c.b.Limit()))
	ch <- prometheus.MustNewConstMetric(descMemHeld, prometheus.GaugeValue, float64(c.b.Used()))
	ch <- prometheus.MustNewConstMetric(descMemPeak, prometheus.GaugeValue, float64(c.b.Peak()))
	for _, k := range membudget.Kinds {
		ch <- prometheus.MustNewConstMetric(descMemDropped, prometheus.CounterValue, float64(c.b.Dropped(k)), k.String())
	}
	ch <- prometheus.MustNewConstMetric(descMemRefused, prometheus.CounterValue, float64(c.b.Refused()))
}
