package server

import (
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"strings"

	"github.com/switchboard-rtc/switchboard/internal/clientaddr"
	"github.com/switchboard-rtc/switchboard/internal/config"
	"github.com/switchboard-rtc/switchboard/internal/fdlimit"
	"github.com/switchboard-rtc/switchboard/internal/stats"
	"github.com/switchboard-rtc/switchboard/internal/turnserver"
	"github.com/switchboard-rtc/switchboard/internal/wsserver"
)

// tlsWrapper wraps the main listener in TLS once withTLS has the certificate's configuration.
type tlsWrapper func(ln net.Listener, tc *tls.Config) (net.Listener, error)

// turnTLS returns withTLS's wrapper, which also sets up TURN over TLS (--turn-tls-listen)
// with the same certificate: by default the HTTPS port is shared (SharedTLSListener hands the
// connections whose first bytes are STUN to ts); with host:port TURN listens there on its own;
// with "off", without TLS or without the embedded TURN server (ts nil), there is none. The
// welcome's turns: URLs name a host the certificate is valid for (turnsHost) and the port.
func turnTLS(cfg config.Config, ts *turnserver.Server, st *stats.Stats, proxies *clientaddr.Proxies, fds *fdlimit.Gauge, log *slog.Logger) tlsWrapper {
	return func(ln net.Listener, tc *tls.Config) (net.Listener, error) {
		switch {
		case ts == nil || !cfg.TLSOn() || cfg.TURNTLSListen == config.TURNTLSOff:
			return wsserver.TLSListener(ln, tc), nil
		case cfg.TURNTLSOwnPort():
			addr, err := ts.ListenTLS(cfg.TURNTLSListen, tc)
			if err != nil {
				return nil, fmt.Errorf("server: turn-tls-listen: %w", err)
			}
			ts.AdvertiseTLS(turnsHost(cfg, ts.PublicIP()), addr.Port)
			log.Info("turn over TLS serving on its own port", "addr", addr.String(), "url", "turns:"+ts.TLSURL())
			return wsserver.TLSListener(ln, tc), nil
		}
		ts.AdvertiseTLS(turnsHost(cfg, ts.PublicIP()), httpsPort(cfg, ln.Addr()))
		log.Info("turn over TLS sharing the HTTPS port", "addr", ln.Addr().String(), "url", "turns:"+ts.TLSURL())
		closed := func() {}
		if fds != nil {
			closed = func() { fds.Note(-1) }
		}
		return wsserver.SharedTLSListener(ln, tc, wsserver.ShareConfig{
			STUN:             ts.HandleTLS,
			HandshakeTimeout: cfg.HeaderTimeout,
			PendingPerClient: cfg.HTTPConnsPerClient,
			Clients:          cfg.Clients(),
			Exempt:           proxies.Trusted,
			Stats:            st,
			Closed:           closed,
			Logger:           log,
		}), nil
	}
}

// acmeDomain is the first of the ACME domains, the name the certificate is issued for when
// --acme-domains is set; "" without ACME.
func acmeDomain(cfg config.Config) string {
	if !cfg.ACMEOn() {
		return ""
	}
	return strings.ToLower(cfg.ACMEDomains[0])
}

// turnsHost is the host turns: URLs name: one the certificate is valid for — the
// --public-url host, else the first ACME domain, else the TURN public IP (a certificate with
// that IP among its names, such as --tls-self-signed's for the listen address).
func turnsHost(cfg config.Config, publicIP netip.Addr) string {
	if cfg.PublicURL != "" {
		if u, err := url.Parse(cfg.PublicURL); err == nil && u.Hostname() != "" {
			return u.Hostname()
		}
	}
	if d := acmeDomain(cfg); d != "" {
		return d
	}
	return publicIP.String()
}

// httpsPort is the port clients reach HTTPS at: --public-url's, 443 for an https
// --public-url without one, else the port the listener is bound to.
func httpsPort(cfg config.Config, addr net.Addr) int {
	if cfg.PublicURL != "" {
		if u, err := url.Parse(cfg.PublicURL); err == nil {
			if p, err := strconv.Atoi(u.Port()); err == nil {
				return p
			}
			if u.Scheme == "https" {
				return 443
			}
		}
	}
	if ta, ok := addr.(*net.TCPAddr); ok {
		return ta.Port
	}
	_, p, _ := net.SplitHostPort(addr.String())
	port, _ := strconv.Atoi(p)
	return port
}

// connTLSContext chains next (may be nil) with wsserver.ConnTLSContext, which keeps the TLS
// state of a connection the shared port sniffed for withConnTLS.
func connTLSContext(next func(context.Context, net.Conn) context.Context) func(context.Context, net.Conn) context.Context {
	return func(ctx context.Context, c net.Conn) context.Context {
		if next != nil {
			ctx = next(ctx, c)
		}
		return wsserver.ConnTLSContext(ctx, c)
	}
}

// withConnTLS gives r its connection's TLS state when net/http could not (a connection whose
// first bytes the shared port read: net/http fills Request.TLS only for a *tls.Conn), so the
// scheme and Origin checks see TLS.
func withConnTLS(r *http.Request) *http.Request {
	if r.TLS != nil {
		return r
	}
	if st := wsserver.ConnTLS(r.Context()); st != nil {
		r2 := *r
		r2.TLS = st
		return &r2
	}
	return r
}
