package metrics

import (
	"github.com/prometheus/client_golang/prometheus"
)

var (
	descLedgerEntries = desc("resume_ledger_entries", "Spent resume tokens this node recorded in the ledger, not expired yet (restores and presences the server ended).")
	descLedgerRefused = desc("resume_ledger_refused_total", "Ledger spends refused: the ledger was full (full), or a client had used its share (client-share; its restores start over).", "reason")
)

// LedgerCounts is what ResumeLedger reads: *resume.Tokens.
type LedgerCounts interface {
	LedgerEntries() int
	LedgerRefused() (full, share uint64)
}

// ResumeLedger returns a collector for the spent-token ledger, for Handler.
func ResumeLedger(l LedgerCounts) prometheus.Collector { return ledgerCollector{l} }

type ledgerCollector struct{ l LedgerCounts }

func (c ledgerCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- descLedgerEntries
	ch <- descLedgerRefused
}

func (c ledgerCollector) Collect(ch chan<- prometheus.Metric) {
	full, share := c.l.LedgerRefused()
	ch <- prometheus.MustNewConstMetric(descLedgerEntries, prometheus.GaugeValue, float64(c.l.LedgerEntries()))
	ch <- prometheus.MustNewConstMetric(descLedgerRefused, prometheus.CounterValue, float64(full), "full")
	ch <- prometheus.MustNewConstMetric(descLedgerRefused, prometheus.CounterValue, float64(share), "client-share")
}
