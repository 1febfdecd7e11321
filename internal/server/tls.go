package server

import (
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"strings"

	"github.com/switchboard-rtc/switchboard/internal/certs"
	"github.com/switchboard-rtc/switchboard/internal/config"
)

// withTLS wraps ln in TLS with wrap when cfg asks for it (--tls-cert/--tls-key,
// --tls-self-signed, --acme-domains), in the form wsserver's event loops can take over after
// an upgrade (turnTLS: and TURN over TLS with the same certificate); the state is nil
// without TLS (acme.go).
func withTLS(ln net.Listener, cfg config.Config, log *slog.Logger, wrap tlsWrapper) (net.Listener, *tlsState, error) {
	switch {
	case cfg.ACMEOn():
		st, err := newACME(ln, cfg, log)
		if err != nil {
			return nil, nil, err
		}
		tl, err := wrap(ln, st.acme.TLSConfig())
		if err != nil {
			st.stop(context.Background())
			return nil, nil, err
		}
		return tl, st, nil
	case cfg.TLSCert != "":
		f, err := certs.LoadFiles(cfg.TLSCert, cfg.TLSKey, log)
		if err != nil {
			return nil, nil, fmt.Errorf("server: TLS: %w", err)
		}
		tl, err := wrap(ln, certs.ServerConfig(f.GetCertificate))
		return tl, &tlsState{expiries: f.Expiries}, err
	case cfg.TLSSelfSigned:
		var hosts []string
		if cfg.PublicURL != "" {
			if u, err := url.Parse(cfg.PublicURL); err == nil {
				hosts = append(hosts, u.Hostname())
			}
		}
		if host, _, err := net.SplitHostPort(cfg.Listen); err == nil && host != "" {
			hosts = append(hosts, host)
		}
		c, err := certs.SelfSigned(hosts)
		if err != nil {
			return nil, nil, fmt.Errorf("server: TLS: %w", err)
		}
		log.Warn("serving a self-signed certificate: browsers will warn; compare this fingerprint with the one they show",
			"sha256", certs.Fingerprint(c))
		tl, err := wrap(ln, certs.ServerConfig(func(*tls.ClientHelloInfo) (*tls.Certificate, error) { return c, nil }))
		return tl, &tlsState{expiries: func() []certs.Expiry { return certs.ExpiriesOf(c) }}, err
	}
	return ln, nil, nil
}

// openURL is the address a person opens: https or http, with localhost for a listener on
// every interface or on loopback.
func openURL(cfg config.Config, addr net.Addr) string {
	if cfg.PublicURL != "" {
		return cfg.PublicURL
	}
	scheme := "http"
	if cfg.TLSOn() {
		scheme = "https"
	}
	host, port, err := net.SplitHostPort(addr.String())
	if err != nil {
		return scheme + "://" + addr.String() + "/"
	}
	if cfg.ACMEOn() { // the name the certificate is for
		name := strings.ToLower(cfg.ACMEDomains[0])
		if port == "443" {
			return "https://" + name + "/"
		}
		return "https://" + net.JoinHostPort(name, port) + "/"
	}
	if ip := net.ParseIP(host); ip == nil || ip.IsUnspecified() || ip.IsLoopback() {
		host = "localhost"
	}
	return scheme + "://" + net.JoinHostPort(host, port) + "/"
}
