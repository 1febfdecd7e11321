package metrics

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/switchboard-rtc/switchboard/internal/stats"
)

var (
	descJoinsRefused = desc("joins_refused_total", "New joins refused, by reason: rate (the client was over --joins-per-client; answered rate-limited).", "reason")
	descClientTable  = desc("client_table_entries", "Clients with an entry in a per-client rate table, by table (joins, turn-credentials); each holds at most 65,536.", "table")
	descClientEvict  = desc("client_table_evictions_total", "Entries pushed out of a full per-client rate table before they were idle, by table: the client got a fresh bucket.", "table")
	descForwarded    = desc("forwarded_ignored_total", "Requests from a trusted proxy whose forwarding headers were not used (counted for the proxy's own address), by reason: "+
		"malformed, conflict (Forwarded and X-Forwarded-For name different clients).", "reason")
)

// clientsCollector exposes the per-client rate limits' counters (docs/limits.md).
type clientsCollector struct{ st *stats.Stats }

func (c clientsCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- descJoinsRefused
	ch <- descClientTable
	ch <- descClientEvict
	ch <- descForwarded
}

func (c clientsCollector) Collect(ch chan<- prometheus.Metric) {
	p := &c.st.PerClient
	metric := func(d *prometheus.Desc, t prometheus.ValueType, v float64, label string) {
		ch <- prometheus.MustNewConstMetric(d, t, v, label)
	}
	metric(descJoinsRefused, prometheus.CounterValue, float64(p.JoinsRefused.Load()), "rate")
	metric(descClientTable, prometheus.GaugeValue, float64(p.JoinClients.Load()), "joins")
	metric(descClientTable, prometheus.GaugeValue, float64(p.TURNClients.Load()), "turn-credentials")
	metric(descClientEvict, prometheus.CounterValue, float64(p.JoinEvictions.Load()), "joins")
	metric(descClientEvict, prometheus.CounterValue, float64(p.TURNEvictions.Load()), "turn-credentials")
	metric(descForwarded, prometheus.CounterValue, float64(p.ForwardedMalformed.Load()), "malformed")
	metric(descForwarded, prometheus.CounterValue, float64(p.ForwardedConflict.Load()), "conflict")
}
