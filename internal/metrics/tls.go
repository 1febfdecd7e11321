package metrics

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/switchboard-rtc/switchboard/internal/certs"
)

var (
	descCertExpiry   = desc("tls_certificate_expiry_seconds", "When the certificate served for a domain expires (its NotAfter, Unix time): files (--tls-cert), self-signed or ACME.", "domain")
	descACMEFailures = desc("acme_failures_total", "Attempts to obtain or renew a domain's certificate from the ACME CA that failed (the reason is logged).", "domain")
	descACMELastFail = desc("acme_last_failure_seconds", "When the last attempt to obtain or renew a domain's certificate failed (Unix time); absent while none has.", "domain")
)

// TLS returns a collector of the served certificates' expiry (expiries) and, with ACME, of
// the failures to obtain or renew them (failures; nil without ACME), read at scrape time.
func TLS(expiries func() []certs.Expiry, failures func() []certs.Failure) prometheus.Collector {
	return tlsCollector{expiries, failures}
}

type tlsCollector struct {
	expiries func() []certs.Expiry
	failures func() []certs.Failure
}

func (c tlsCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- descCertExpiry
	ch <- descACMEFailures
	ch <- descACMELastFail
}

func (c tlsCollector) Collect(ch chan<- prometheus.Metric) {
	seen := map[string]bool{} // a name listed twice in a certificate is one series
	for _, e := range c.expiries() {
		if seen[e.Domain] {
			continue
		}
		seen[e.Domain] = true
		ch <- prometheus.MustNewConstMetric(descCertExpiry, prometheus.GaugeValue, float64(e.NotAfter.Unix()), e.Domain)
	}
	if c.failures == nil {
		return
	}
	for _, f := range c.failures() {
		ch <- prometheus.MustNewConstMetric(descACMEFailures, prometheus.CounterValue, float64(f.Count), f.Domain)
		if f.Count > 0 {
			ch <- prometheus.MustNewConstMetric(descACMELastFail, prometheus.GaugeValue, float64(f.Last.UnixNano())/1e9, f.Domain)
		}
	}
}
