package server

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"
)

// edges wraps the main listener's routes: with --public-url, a request for another Host is
// refused with 421 (DNS rebinding: a page whose name resolves to this server is same-origin to
// itself, so only the Host tells it apart); /healthz and /readyz answer whatever the Host, for
// probes that address the server by IP.
func (s *Server) edges(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		r = withConnTLS(r) // turntls.go
		switch r.URL.Path {
		case "/healthz", "/readyz":
		default:
			if !s.ws.HostAllowed(r) {
				s.hub.Stats().HostsRefused.Add(1)
				http.Error(w, "this server is not "+r.Host, http.StatusMisdirectedRequest)
				return
			}
		}
		next.ServeHTTP(w, r)
	})
}

// metricsGate serves /metrics on the main listener to loopback clients only (loopbackClient,
// clients.go), unless --metrics-public: the counters (connections, descriptors, memory) help an attacker size an
// attack. Others get 404, as if there were no such page. --metrics-listen serves them to
// anyone who reaches that address.
func (s *Server) metricsGate(h http.Handler) http.Handler {
	if s.cfg.MetricsPublic {
		return h
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !s.loopbackClient(r) {
			s.hub.Stats().MetricsRefused.Add(1)
			http.NotFound(w, r)
			return
		}
		h.ServeHTTP(w, r)
	})
}

// metricsServer is /metrics on its own listener (--metrics-listen).
type metricsServer struct {
	ln   net.Listener
	http *http.Server
	done chan struct{} // closed when Serve has returned; nil until started
}

// listenMetrics binds --metrics-listen, or returns nil without it.
func listenMetrics(addr string, h http.Handler) (*metricsServer, error) {
	if addr == "" {
		return nil, nil
	}
	lc := net.ListenConfig{}
	ln, err := lc.Listen(context.Background(), "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("server: metrics-listen: %w", err)
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", h)
	return &metricsServer{ln: ln, http: &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       10 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       60 * time.Second,
		MaxHeaderBytes:    16 << 10,
	}}, nil
}

// start serves the metrics listener on a goroutine that stop ends.
func (m *metricsServer) start(s *Server) {
	if m == nil {
		return
	}
	m.done = make(chan struct{})
	go func() {
		defer close(m.done)
		if err := m.http.Serve(m.ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.log.Error("metrics listener stopped", "err", err)
		}
	}()
	s.log.Info("metrics serving", "addr", m.ln.Addr().String())
}

// stop ends the metrics listener (whether or not it was started) and waits for its goroutine.
func (m *metricsServer) stop(ctx context.Context) {
	if m == nil {
		return
	}
	if m.done == nil {
		_ = m.ln.Close()
		return
	}
	_ = m.http.Shutdown(ctx)
	_ = m.http.Close()
	<-m.done
}

// MetricsAddr returns the address of the --metrics-listen listener, or nil without one.
func (s *Server) MetricsAddr() net.Addr {
	if s.metrics == nil {
		return nil
	}
	return s.metrics.ln.Addr()
}
