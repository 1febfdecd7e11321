package wsserver

import (
	"net/http"
	"net/netip"
	"strconv"
)

// ClientRetryAfter is the Retry-After, in seconds, of an upgrade refused because its client
// holds its share of connections (Config.ConnsPerClient).
const ClientRetryAfter = 10

// clientKey returns the client key (Config.Clients) of r's TCP peer address, or behind a
// trusted proxy of the address its forwarding headers name (Config.Proxies).
func (s *Server) clientKey(r *http.Request) netip.Prefix {
	return s.cfg.Clients.Key(s.cfg.Proxies.ClientIP(r))
}

// admitClient counts a new connection for the client of r and reports true, or answers the
// upgrade 429 and reports false when that client already holds Config.ConnsPerClient.
func (s *Server) admitClient(w http.ResponseWriter, r *http.Request) (netip.Prefix, bool) {
	key := s.clientKey(r)
	if s.perClient.Acquire(key) {
		return key, true
	}
	s.stats.HandshakesRefused.Add(1)
	s.stats.RefusedClientConns.Add(1)
	w.Header().Set("Retry-After", strconv.Itoa(ClientRetryAfter))
	http.Error(w, "too many connections from this address", http.StatusTooManyRequests)
	return key, false
}

// ClientConns returns how many WebSocket connections the client key holds open, and how many
// clients hold any (tests and diagnostics).
func (s *Server) ClientConns(key netip.Prefix) (conns, clients int) {
	return s.perClient.Count(key), s.perClient.Clients()
}
