package server

import (
	"net/http"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/switchboard-rtc/switchboard/internal/clientaddr"
	"github.com/switchboard-rtc/switchboard/internal/config"
	"github.com/switchboard-rtc/switchboard/internal/hub"
	"github.com/switchboard-rtc/switchboard/internal/metrics"
	"github.com/switchboard-rtc/switchboard/internal/stats"
)

// Per-client rates and trusted proxies (docs/limits.md): the client of a request is its TCP
// peer or, from a --trusted-proxies address, the one its forwarding headers name; the same
// clientaddr.Proxies gives it to wsserver (--conns-per-client, and the session's client for
// the hub), sioserver (--sio-sessions-per-client) and the /metrics gate.

// proxies returns cfg's trusted proxies, counting in st the forwarding headers it ignores.
func proxies(cfg config.Config, st *stats.Stats) (*clientaddr.Proxies, error) {
	return cfg.Proxies(func(reason string) {
		switch reason {
		case clientaddr.IgnoredMalformed:
			st.PerClient.ForwardedMalformed.Add(1)
		case clientaddr.IgnoredConflict:
			st.PerClient.ForwardedConflict.Add(1)
		}
	})
}

// hubClients returns the hub's per-client rates from cfg.
func hubClients(cfg config.Config) hub.ClientLimits {
	return hub.ClientLimits{
		JoinRate:      cfg.JoinsPerClient,
		JoinBurst:     cfg.JoinBurstPerClient,
		TURNPerMinute: cfg.TURNCredentialsPerClient,
	}
}

// turnMetrics returns the TURN collector: the embedded server's counters and the credentials
// the hub withheld; none when no TURN credentials are handed out at all.
func (s *Server) turnMetrics(st *stats.Stats) []prometheus.Collector {
	switch {
	case s.turn != nil:
		return []prometheus.Collector{metrics.TURN(s.turn, st)}
	case len(s.cfg.TURNURLs) > 0:
		return []prometheus.Collector{metrics.TURN(nil, st)}
	}
	return nil
}

// loopbackClient reports whether r comes from a loopback client. From a trusted proxy that is
// the client its forwarding headers name (headers that cannot be used leave the client
// unknown: not loopback). From anyone else it is the TCP peer, and only when r carries no
// forwarding header: a reverse proxy on the same host (not in --trusted-proxies) connects
// from loopback on behalf of anyone on the internet, and says so in those headers.
func (s *Server) loopbackClient(r *http.Request) bool {
	peer := clientaddr.PeerIP(r)
	if !s.proxies.Trusted(peer) {
		return peer.IsLoopback() && !clientaddr.Forwarded(r.Header)
	}
	c := s.proxies.Resolve(peer, r.Header)
	return c.From != clientaddr.FromFallback && c.IP.IsLoopback()
}
