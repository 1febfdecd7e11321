// Package certs provides the server's TLS certificates: a key pair read from files and read
// again when they change (so an outside renewal needs no restart), or a self-signed one for a
// LAN demo whose SHA-256 fingerprint a person can compare with what the browser shows. All the
// cryptography is the standard library's.
package certs

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"log/slog"
	"math/big"
	"net"
	"os"
	"strings"
	"sync"
	"time"
)

// checkEvery is how often a Files source looks at its files' modification times.
const checkEvery = time.Second

// Files serves the key pair in two PEM files and loads them again when either changes.
type Files struct {
	certPath, keyPath string
	log               *slog.Logger
	every             time.Duration // how often the files are looked at (checkEvery)

	mu        sync.Mutex
	cert      *tls.Certificate
	certMod   time.Time
	keyMod    time.Time
	checkedAt time.Time
}

// LoadFiles reads the key pair at certPath and keyPath.
func LoadFiles(certPath, keyPath string, log *slog.Logger) (*Files, error) {
	if log == nil {
		log = slog.Default()
	}
	f := &Files{certPath: certPath, keyPath: keyPath, log: log, every: checkEvery}
	if err := f.load(); err != nil {
		return nil, err
	}
	return f, nil
}

func (f *Files) load() error {
	cm, km, err := f.modTimes()
	if err != nil {
		return err
	}
	cert, err := tls.LoadX509KeyPair(f.certPath, f.keyPath)
	if err != nil {
		return fmt.Errorf("certs: %s and %s: %w", f.certPath, f.keyPath, err)
	}
	f.cert, f.certMod, f.keyMod = &cert, cm, km
	return nil
}

func (f *Files) modTimes() (time.Time, time.Time, error) {
	ci, err := os.Stat(f.certPath)
	if err != nil {
		return time.Time{}, time.Time{}, fmt.Errorf("certs: %w", err)
	}
	ki, err := os.Stat(f.keyPath)
	if err != nil {
		return time.Time{}, time.Time{}, fmt.Errorf("certs: %w", err)
	}
	return ci.ModTime(), ki.ModTime(), nil
}

// GetCertificate implements tls.Config.GetCertificate: the current key pair, loaded again
// first if a file changed since it was read (looked at once a second at most). A pair that
// fails to load (a renewal half written) keeps the previous one in service and is logged.
func (f *Files) GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	now := time.Now()
	if now.Sub(f.checkedAt) >= f.every {
		f.checkedAt = now
		cm, km, err := f.modTimes()
		if err == nil && (!cm.Equal(f.certMod) || !km.Equal(f.keyMod)) {
			old := f.cert
			if err := f.load(); err != nil {
				f.log.Warn("TLS certificate files changed but cannot be loaded; keeping the previous one", "err", err)
				f.cert = old
			} else {
				f.log.Info("TLS certificate loaded again", "cert", f.certPath, "fingerprint", Fingerprint(f.cert))
			}
		}
	}
	return f.cert, nil
}

// SelfSigned returns a fresh self-signed certificate (ECDSA P-256, valid a year) for hosts
// (names and IP addresses; localhost and loopback are always included).
func SelfSigned(hosts []string) (*tls.Certificate, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("certs: %w", err)
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, fmt.Errorf("certs: %w", err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{Organization: []string{"Switchboard self-signed"}},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().AddDate(1, 0, 0),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	for _, h := range append([]string{"localhost", "127.0.0.1", "::1"}, hosts...) {
		h = strings.TrimSpace(h)
		if ip := net.ParseIP(h); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else if h != "" {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	tmpl.Subject.CommonName = tmpl.DNSNames[len(tmpl.DNSNames)-1]
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, fmt.Errorf("certs: %w", err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("certs: %w", err)
	}
	return &tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}, nil
}

// Fingerprint is the SHA-256 of a certificate's leaf, as browsers show it: colon-separated
// upper-case hex.
func Fingerprint(c *tls.Certificate) string {
	if c == nil || len(c.Certificate) == 0 {
		return ""
	}
	sum := sha256.Sum256(c.Certificate[0])
	var b strings.Builder
	for i, x := range sum {
		if i > 0 {
			b.WriteByte(':')
		}
		fmt.Fprintf(&b, "%02X", x)
	}
	return b.String()
}

// ServerConfig returns the TLS configuration for a certificate source: TLS 1.2 and up,
// HTTP/1.1 only (WebSockets upgrade over it).
func ServerConfig(get func(*tls.ClientHelloInfo) (*tls.Certificate, error)) *tls.Config {
	return &tls.Config{
		MinVersion:     tls.VersionTLS12,
		GetCertificate: get,
		NextProtos:     []string{"http/1.1"},
	}
}

// WritePEM writes c's certificate chain and key as PEM files (for tests and `--tls-self-signed`
// users who want to keep the certificate).
func WritePEM(c *tls.Certificate, certPath, keyPath string) error {
	var chain []byte
	for _, der := range c.Certificate {
		chain = append(chain, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})...)
	}
	key, err := x509.MarshalPKCS8PrivateKey(c.PrivateKey)
	if err != nil {
		return fmt.Errorf("certs: %w", err)
	}
	if err := os.WriteFile(certPath, chain, 0o644); err != nil {
		return fmt.Errorf("certs: %w", err)
	}
	if err := os.WriteFile(keyPath, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: key}), 0o600); err != nil {
		return fmt.Errorf("certs: %w", err)
	}
	return nil
}
