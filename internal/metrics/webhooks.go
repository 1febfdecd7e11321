package metrics

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/switchboard-rtc/switchboard/internal/stats"
)

var (
	descWebhooks = desc("webhooks_total", "Webhook deliveries per URL, by result: delivered (2xx), rejected (refused with a 4xx, not retried), "+
		"dropped (pushed out of a full queue or left at shutdown), retried (failed attempts retried).", "result")
	descWebhooksQueued = desc("webhooks_queued", "Webhook events waiting for delivery, summed over the URLs.")
)

// webhookCollector reads the webhook counters at scrape time.
type webhookCollector struct{ st *stats.Stats }

func (c webhookCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- descWebhooks
	ch <- descWebhooksQueued
}

func (c webhookCollector) Collect(ch chan<- prometheus.Metric) {
	st := c.st
	for _, r := range []struct {
		label string
		v     uint64
	}{
		{"delivered", st.WebhooksDelivered.Load()},
		{"rejected", st.WebhooksRejected.Load()},
		{"dropped", st.WebhooksDropped.Load()},
		{"retried", st.WebhookRetries.Load()},
	} {
		ch <- prometheus.MustNewConstMetric(descWebhooks, prometheus.CounterValue, float64(r.v), r.label)
	}
	ch <- prometheus.MustNewConstMetric(descWebhooksQueued, prometheus.GaugeValue, float64(st.WebhooksQueued.Load()))
}
