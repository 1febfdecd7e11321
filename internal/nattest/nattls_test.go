package nattest

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/pion/webrtc/v4"
)

// TLS on the server's port 443 in pub, for the case where a peer's network lets only TCP 443
// out (hotels, corporate networks).
const (
	tlsListen = "203.0.113.1:443"
	tlsURL    = "https://" + tlsListen
)

// only443: peer 1's NAT forwards nothing but TCP to port 443, so it reaches neither STUN nor
// TURN on 3478 (UDP or TCP), nor the other peer; the server serves HTTPS on 443 with a
// certificate from a CA made here (both peers trust it through SSL_CERT_FILE). Peer 1
// connects through the welcome's turns: URL — TURN over TLS sharing port 443 with HTTPS and
// signaling — its selected pair a relay reached over TLS, and /healthz answers it on 443
// during the call.
func only443(t *testing.T, nat, bin string) {
	dir := t.TempDir()
	ca, cert, key := filepath.Join(dir, "ca.pem"), filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	writeTestCA(t, "203.0.113.1", ca, cert, key)
	tp := newTopo(t, nat, false)
	tp.url, tp.env = tlsURL, []string{"SSL_CERT_FILE=" + ca}
	tp.only443("nat1", "nat1-peer1")
	tp.startServer(bin, "--listen", tlsListen, "--tls-cert", cert, "--tls-key", key)
	reports := tp.runPeers()
	r := reports["offer"]
	if r.Local != "relay" || r.LocalRelay != "tls" {
		t.Errorf("peer 1 (only TCP 443): local %s over %q, want a relay reached over tls", r.Local, r.LocalRelay)
	}
	if r.Healthz != http.StatusOK {
		t.Errorf("peer 1: GET %s/healthz during the call: %d, want 200", tlsURL, r.Healthz)
	}
}

// only443 makes ns forward from lan nothing but TCP to port 443.
func (tp *topo) only443(ns, lan string) {
	tp.t.Helper()
	if tp.nat == "nft" {
		tp.run(ns, "nft", "add table inet only443")
		tp.run(ns, "nft", "add chain inet only443 out { type filter hook forward priority 0 ; policy accept ; }")
		tp.run(ns, "nft", "add rule inet only443 out iifname "+lan+" tcp dport 443 accept")
		tp.run(ns, "nft", "add rule inet only443 out iifname "+lan+" drop")
		return
	}
	tp.run(ns, "iptables", "-A", "FORWARD", "-i", lan, "-p", "tcp", "--dport", "443", "-j", "ACCEPT")
	tp.run(ns, "iptables", "-A", "FORWARD", "-i", lan, "-j", "DROP")
}

// writeTestCA writes a CA certificate (caPath) and a server certificate it signed for ip with
// its key (certPath, keyPath), all PEM.
func writeTestCA(t *testing.T, ip, caPath, certPath, keyPath string) {
	t.Helper()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "switchboard nattest CA"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	caCert, err := x509.ParseCertificate(caDER)
	if err != nil {
		t.Fatal(err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: ip},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP(ip)},
		KeyUsage:    x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, caCert, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	write := func(path, typ string, der []byte) {
		if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write(caPath, "CERTIFICATE", caDER)
	write(certPath, "CERTIFICATE", der)
	write(keyPath, "PRIVATE KEY", keyDER)
}

// localRelay returns how the local candidate of pc's selected pair reaches its relay (udp,
// tcp, tls; "" for a candidate that is not a relay), from the candidate stats.
func localRelay(pc *webrtc.PeerConnection) string {
	pair, err := pc.SCTP().Transport().ICETransport().GetSelectedCandidatePair()
	if err != nil || pair == nil {
		return ""
	}
	for _, s := range pc.GetStats() {
		c, ok := s.(webrtc.ICECandidateStats)
		if ok && c.Type == webrtc.StatsTypeLocalCandidate && c.CandidateType == pair.Local.Typ &&
			c.IP == pair.Local.Address && c.Port == int32(pair.Local.Port) { //nolint:gosec // a port
			return c.RelayProtocol
		}
	}
	return ""
}

// healthz returns the status of GET server/healthz (0 when the request fails).
func healthz(ctx context.Context, server string) int {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, server+"/healthz", nil)
	if err != nil {
		return 0
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0
	}
	resp.Body.Close()
	return resp.StatusCode
}
