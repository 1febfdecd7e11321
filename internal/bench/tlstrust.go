package bench

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net/http"
	"os"
)

// tlsTrust is how the load tool checks a wss:// server's certificate: against the system's
// roots (the zero value), against the certificates of a PEM file (--ca: a test CA, or a
// self-signed server certificate saved with its key), or not at all (--insecure). It is for
// benchmarks only: the load tool never carries anything worth protecting.
type tlsTrust struct {
	roots    *x509.CertPool
	insecure bool
}

// loadCA reads the PEM certificates of path into a pool.
func loadCA(path string) (*x509.CertPool, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("--ca: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(b) {
		return nil, fmt.Errorf("--ca %s: no PEM certificate in it", path)
	}
	return pool, nil
}

// config returns a client TLS configuration for serverName under t, speaking HTTP/1.1 (the
// WebSocket handshake's protocol).
func (t tlsTrust) config(serverName string) *tls.Config {
	return &tls.Config{
		ServerName:         serverName,
		RootCAs:            t.roots,
		InsecureSkipVerify: t.insecure, //nolint:gosec // --insecure: a benchmark's own choice
		NextProtos:         []string{"http/1.1"},
	}
}

// withTrust makes d check wss:// servers under t; ws:// URLs are unaffected.
func (d *rawDialer) withTrust(t tlsTrust) {
	if d.tlsConf != nil {
		d.tlsConf = t.config(d.tlsConf.ServerName)
	}
}

// withTrust makes d check wss:// servers under t; ws:// URLs are unaffected.
func (d *dialer) withTrust(t tlsTrust) error {
	for _, c := range d.clients {
		tr, ok := c.Transport.(*http.Transport)
		if !ok {
			return errors.New("bench: dialer without an http.Transport")
		}
		tr.TLSClientConfig = t.config("")
	}
	return nil
}
