package server

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/switchboard-rtc/switchboard/internal/certs"
	"github.com/switchboard-rtc/switchboard/internal/config"
	"github.com/switchboard-rtc/switchboard/internal/fdlimit"
	"github.com/switchboard-rtc/switchboard/internal/metrics"
	"github.com/switchboard-rtc/switchboard/internal/stats"
)

// tlsState is what the main listener's TLS holds besides the listener (tls.go): where the
// served certificates' expiry is read for /metrics and, with --acme-domains, the ACME manager
// and its plain-HTTP listener. A nil *tlsState is a server without TLS.
type tlsState struct {
	expiries func() []certs.Expiry
	acme     *certs.ACME // nil without --acme-domains
	plain    *plainHTTP  // nil without --acme-http-listen (or without ACME)
}

// plainHTTP is the --acme-http-listen listener: HTTP-01 challenges and the redirect to https.
type plainHTTP struct {
	ln   net.Listener
	http *http.Server
	done chan struct{} // closed when Serve has returned; nil until started
}

// newACME binds --acme-http-listen and prepares the ACME manager for the main listener ln.
func newACME(ln net.Listener, cfg config.Config, log *slog.Logger) (*tlsState, error) {
	st := &tlsState{}
	acfg := certs.ACMEConfig{
		Domains: cfg.ACMEDomains,
		Email:   cfg.ACMEEmail,
		CA:      cfg.ACMECA,
		CARoots: cfg.ACMECARoot,
		Storage: cfg.StorageDir(),
		Logger:  log,
	}
	if cfg.ACMETLSALPN {
		acfg.TLSAddr = ln.Addr()
		warnPort(log, ln.Addr(), 443, "TLS-ALPN-01", "--listen")
	}
	if cfg.ACMEHTTPOn() {
		pln, err := (&net.ListenConfig{KeepAlive: -1}).Listen(context.Background(), "tcp", cfg.ACMEHTTPListen)
		if err != nil {
			if errors.Is(err, syscall.EACCES) {
				return nil, fmt.Errorf("server: acme-http-listen %s: permission denied: ports below 1024 need root or CAP_NET_BIND_SERVICE (or --acme-http-listen off)", cfg.ACMEHTTPListen)
			}
			return nil, fmt.Errorf("server: acme-http-listen: %w", err)
		}
		st.plain = &plainHTTP{ln: pln}
		acfg.HTTPAddr = pln.Addr()
		warnPort(log, pln.Addr(), 80, "HTTP-01", "--acme-http-listen")
	}
	m, err := certs.NewACME(acfg)
	if err != nil {
		st.stop(context.Background())
		return nil, fmt.Errorf("server: %w", err)
	}
	st.acme, st.expiries = m, m.Expiries
	return st, nil
}

// warnPort warns when a challenge's listener is not on the port the CA connects to.
func warnPort(log *slog.Logger, a net.Addr, want int, challenge, flag string) {
	if ta, ok := a.(*net.TCPAddr); ok && ta.Port != want {
		log.Warn("ACME: the CA checks "+challenge+" on port "+strconv.Itoa(want)+" of the domain; "+flag+" is on port "+strconv.Itoa(ta.Port)+", so port "+strconv.Itoa(want)+" must be forwarded to it",
			"addr", a.String())
	}
}

// servePlain makes the --acme-http-listen server, with the main listener's bounds: the
// descriptor reserve, the HTTP connections per client (hc), the header and read timeouts,
// and one request per connection.
func (t *tlsState) servePlain(cfg config.Config, log *slog.Logger, st *stats.Stats, fds *fdlimit.Gauge, hc *httpConns, httpsPort int) {
	if t == nil || t.plain == nil {
		return
	}
	if cfg.PublicURL != "" { // the redirect goes where browsers reach the server
		if u, err := url.Parse(cfg.PublicURL); err == nil && u.Scheme == "https" {
			httpsPort = 443
			if p, err := strconv.Atoi(u.Port()); err == nil {
				httpsPort = p
			}
		}
	}
	t.plain.ln = fdlimit.NewListener(t.plain.ln, fds, log, func() { st.RefusedDescriptors.Add(1) })
	t.plain.http = &http.Server{
		Handler:           hc.handler(t.acme.HTTPHandler(httpsPort)),
		ConnContext:       hc.connContext,
		ConnState:         chainConnState(connState(fds), hc.connState),
		ReadHeaderTimeout: cfg.HeaderTimeout,
		ReadTimeout:       cfg.ReadTimeout,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       cfg.HeaderTimeout,
		MaxHeaderBytes:    16 << 10,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelDebug),
	}
	t.plain.http.SetKeepAlivesEnabled(false)
}

// start begins the certificates' management and serves the plain-HTTP listener.
func (t *tlsState) start(ctx context.Context, log *slog.Logger) {
	if t == nil || t.acme == nil {
		return
	}
	if p := t.plain; p != nil && p.http != nil {
		p.done = make(chan struct{})
		go func() {
			defer close(p.done)
			if err := p.http.Serve(p.ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				log.Error("acme-http-listen stopped", "err", err)
			}
		}()
		log.Info("ACME: serving HTTP-01 challenges and redirecting to https", "addr", p.ln.Addr().String())
	}
	t.acme.Start(ctx)
}

// stop closes the plain-HTTP listener (within ctx for requests in flight) and stops the ACME
// manager; it may be called more than once, started or not.
func (t *tlsState) stop(ctx context.Context) {
	if t == nil {
		return
	}
	if p := t.plain; p != nil {
		if p.done != nil {
			_ = p.http.Shutdown(ctx)
			_ = p.http.Close()
			<-p.done
		} else {
			_ = p.ln.Close()
		}
	}
	if t.acme != nil {
		t.acme.Stop()
	}
}

// collectors are the TLS metrics: the served certificates' expiry, and ACME's failures.
func (t *tlsState) collectors() []prometheus.Collector {
	if t == nil || t.expiries == nil {
		return nil
	}
	var failures func() []certs.Failure
	if t.acme != nil {
		failures = t.acme.Failures
	}
	return []prometheus.Collector{metrics.TLS(t.expiries, failures)}
}

// tlsNextProto ends a connection that negotiated acme-tls/1 (the CA's TLS-ALPN-01 check) as
// soon as its handshake is done: it never reaches the HTTP handlers.
func tlsNextProto() map[string]func(*http.Server, *tls.Conn, http.Handler) {
	return map[string]func(*http.Server, *tls.Conn, http.Handler){
		certs.ALPNChallenge: func(_ *http.Server, c *tls.Conn, _ http.Handler) { _ = c.Close() },
	}
}
