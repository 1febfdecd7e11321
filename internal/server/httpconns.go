package server

import (
	"context"
	"net"
	"net/http"
	"net/netip"
	"sync"

	"github.com/switchboard-rtc/switchboard/internal/clientaddr"
	"github.com/switchboard-rtc/switchboard/internal/stats"
)

// httpConns caps the HTTP connections one client holds open on the main listener
// (--http-conns-per-client): a client past it has every request on its new connection
// answered 429 with Retry-After and the connection closed, before any body is read, so one
// address cannot hold thousands of descriptors and goroutines by dripping requests. A
// connection upgraded to a WebSocket leaves this count for --conns-per-client's. A trusted
// proxy (--trusted-proxies) is not capped: it carries many clients.
type httpConns struct {
	counter *clientaddr.Counter
	clients clientaddr.Aggregator
	proxies *clientaddr.Proxies
	st      *stats.Stats

	mu   sync.Mutex
	held map[net.Conn]netip.Prefix
}

type refusedConnKey struct{}

func newHTTPConns(max int, clients clientaddr.Aggregator, proxies *clientaddr.Proxies, st *stats.Stats) *httpConns {
	return &httpConns{counter: clientaddr.NewCounter(max), clients: clients, proxies: proxies, st: st, held: make(map[net.Conn]netip.Prefix)}
}

// connContext counts a new connection against its client, or marks it refused.
func (h *httpConns) connContext(ctx context.Context, c net.Conn) context.Context {
	ap, err := netip.ParseAddrPort(c.RemoteAddr().String())
	if err != nil {
		return ctx
	}
	ip := ap.Addr().Unmap()
	if h.proxies.Trusted(ip) {
		return ctx
	}
	key := h.clients.Key(ip)
	if !h.counter.Acquire(key) {
		return context.WithValue(ctx, refusedConnKey{}, true)
	}
	h.mu.Lock()
	h.held[c] = key
	h.mu.Unlock()
	return ctx
}

// connState gives the slot back when the connection closes or becomes a WebSocket.
func (h *httpConns) connState(c net.Conn, s http.ConnState) {
	if s != http.StateClosed && s != http.StateHijacked {
		return
	}
	h.mu.Lock()
	key, ok := h.held[c]
	delete(h.held, c)
	h.mu.Unlock()
	if ok {
		h.counter.Release(key)
	}
}

// handler answers 429 on a refused connection.
func (h *httpConns) handler(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if refused, _ := r.Context().Value(refusedConnKey{}).(bool); refused {
			h.st.RefusedClientHTTP.Add(1)
			w.Header().Set("Retry-After", "10")
			w.Header().Set("Connection", "close")
			http.Error(w, "too many connections from this address", http.StatusTooManyRequests)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// chainConnState runs both hooks (either may be nil).
func chainConnState(a, b func(net.Conn, http.ConnState)) func(net.Conn, http.ConnState) {
	switch {
	case a == nil:
		return b
	case b == nil:
		return a
	}
	return func(c net.Conn, s http.ConnState) { a(c, s); b(c, s) }
}
