package server_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"io"
	"math/big"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/switchboard-rtc/switchboard/internal/certs"
	"github.com/switchboard-rtc/switchboard/internal/config"
)

// TestCertificateExpiryMetric (issue 13): switchboard_tls_certificate_expiry_seconds is the
// served certificate's NotAfter for --tls-self-signed and for --tls-cert files, following a
// renewal of the files; a server without TLS has no such series, and no ACME series.
func TestCertificateExpiryMetric(t *testing.T) {
	scrape := func(ts *testServer) string {
		t.Helper()
		resp, err := http.Get("http://" + ts.MetricsAddr().String() + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return string(b)
	}
	expiry := func(ts *testServer, domain string) int64 {
		t.Helper()
		prefix := `switchboard_tls_certificate_expiry_seconds{domain="` + domain + `"} `
		for _, line := range strings.Split(scrape(ts), "\n") {
			if v, ok := strings.CutPrefix(line, prefix); ok {
				f, err := strconv.ParseFloat(v, 64)
				if err != nil {
					t.Fatal(err)
				}
				return int64(f)
			}
		}
		return -1
	}
	served := func(ts *testServer) *x509.Certificate {
		t.Helper()
		c, err := tls.Dial("tcp", ts.Addr().String(), &tls.Config{InsecureSkipVerify: true})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		return c.ConnectionState().PeerCertificates[0]
	}

	plain := startServer(t, func(c *config.Config) { c.MetricsListen = "127.0.0.1:0" })
	if body := scrape(plain); strings.Contains(body, "switchboard_tls_") || strings.Contains(body, "switchboard_acme_") {
		t.Error("TLS series on a server without TLS")
	}

	self := startServer(t, func(c *config.Config) { c.MetricsListen, c.TLSSelfSigned = "127.0.0.1:0", true })
	if got, want := expiry(self, "localhost"), served(self).NotAfter.Unix(); got != want {
		t.Errorf("self-signed: expiry %d, want %d", got, want)
	}
	if strings.Contains(scrape(self), "switchboard_acme_") {
		t.Error("ACME series without ACME")
	}

	dir := t.TempDir()
	cp, kp := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	writeCert(t, cp, kp, "files.example", time.Now().Add(48*time.Hour))
	files := startServer(t, func(c *config.Config) { c.MetricsListen, c.TLSCert, c.TLSKey = "127.0.0.1:0", cp, kp })
	if got, want := expiry(files, "files.example"), served(files).NotAfter.Unix(); got != want {
		t.Errorf("files: expiry %d, want %d", got, want)
	}
	renewed := time.Now().Add(90 * 24 * time.Hour).Truncate(time.Second)
	writeCert(t, cp, kp, "files.example", renewed)
	later := time.Now().Add(time.Minute)
	_ = os.Chtimes(cp, later, later)
	eventually(t, "the renewed files' expiry", func() bool { return expiry(files, "files.example") == renewed.Unix() })
	if got := served(files).NotAfter.Unix(); got != renewed.Unix() {
		t.Errorf("served after the renewal: %d, want %d", got, renewed.Unix())
	}
}

// writeCert writes a self-signed certificate for name expiring at notAfter.
func writeCert(t *testing.T, certPath, keyPath, name string, notAfter time.Time) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()),
		Subject:      pkix.Name{CommonName: name},
		DNSNames:     []string{name},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     notAfter,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	if err := certs.WritePEM(&tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, certPath, keyPath); err != nil {
		t.Fatal(err)
	}
}
