package metrics

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/switchboard-rtc/switchboard/internal/stats"
)

var (
	descFramesRateLimited = desc("frames_rate_limited_total",
		"WebSocket frames that are not whole messages (pings, pongs, fragments) dropped over the rate limit.")
	descHostsRefused   = desc("hosts_refused_total", "Requests for a Host other than --public-url's, refused with 421.")
	descMetricsRefused = desc("metrics_refused_total", "Requests for /metrics on the main listener from non-loopback clients, answered 404.")
	descConnsRefused   = desc("connections_refused_total", "Connections refused to keep the process within its limits, by reason: "+
		"descriptors (within --fd-reserve of the descriptor limit: upgrade answered 503, or closed at accept), "+
		"client-sessions (an Engine.IO handshake from a client holding --sio-sessions-per-client, 429), "+
		"client-connections (a WebSocket upgrade from a client holding --conns-per-client, 429), "+
		"client-http (a request on an HTTP connection past --http-conns-per-client, 429), "+
		"memory (nine tenths of --memory-budget held: upgrade or Engine.IO handshake answered 503), "+
		"tls-handshakes (a connection to a port HTTPS shares with TURN from a client with --http-conns-per-client TLS handshakes under way, or when 4096 are, closed at accept).", "reason")
)

// edgesCollector exposes the counters of the limits on a connection's edges (docs/limits.md).
type edgesCollector struct{ st *stats.Stats }

func (c edgesCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- descFramesRateLimited
	ch <- descHostsRefused
	ch <- descMetricsRefused
	ch <- descConnsRefused
}

func (c edgesCollector) Collect(ch chan<- prometheus.Metric) {
	counter := func(d *prometheus.Desc, v uint64) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v))
	}
	counter(descFramesRateLimited, c.st.FramesRateLimited.Load())
	counter(descHostsRefused, c.st.HostsRefused.Load())
	counter(descMetricsRefused, c.st.MetricsRefused.Load())
	ch <- prometheus.MustNewConstMetric(descConnsRefused, prometheus.CounterValue, float64(c.st.RefusedDescriptors.Load()), "descriptors")
	ch <- prometheus.MustNewConstMetric(descConnsRefused, prometheus.CounterValue, float64(c.st.RefusedClientSessions.Load()), "client-sessions")
	ch <- prometheus.MustNewConstMetric(descConnsRefused, prometheus.CounterValue, float64(c.st.RefusedClientConns.Load()), "client-connections")
	ch <- prometheus.MustNewConstMetric(descConnsRefused, prometheus.CounterValue, float64(c.st.RefusedMemory.Load()), "memory")
	ch <- prometheus.MustNewConstMetric(descConnsRefused, prometheus.CounterValue, float64(c.st.RefusedClientHTTP.Load()), "client-http")
	ch <- prometheus.MustNewConstMetric(descConnsRefused, prometheus.CounterValue, float64(c.st.RefusedTLSHandshakes.Load()), "tls-handshakes")
}
