package server

import (
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/http"
	"net/netip"
	"sync/atomic"
	"testing"
	"time"

	"github.com/switchboard-rtc/switchboard/internal/certs"
	"github.com/switchboard-rtc/switchboard/internal/config"
)

// TestOpenURLACME: with --acme-domains the start line names the first domain, with the port
// unless 443; --public-url still wins.
func TestOpenURLACME(t *testing.T) {
	cfg := config.Default()
	cfg.ACMEDomains = []string{"Call.Example.com", "www.example.com"}
	for _, tc := range []struct {
		addr, public, want string
	}{
		{"0.0.0.0:443", "", "https://call.example.com/"},
		{"[::]:8443", "", "https://call.example.com:8443/"},
		{"127.0.0.1:443", "https://meet.example.com", "https://meet.example.com"},
	} {
		cfg.PublicURL = tc.public
		addr, err := net.ResolveTCPAddr("tcp", tc.addr)
		if err != nil {
			t.Fatal(err)
		}
		if got := openURL(cfg, addr); got != tc.want {
			t.Errorf("openURL(%s, public %q) = %s, want %s", tc.addr, tc.public, got, tc.want)
		}
	}
}

// TestACMETLSALPNConnClosed: a connection that negotiated acme-tls/1 (the CA's TLS-ALPN-01
// check) is closed after its handshake; a request sent on it never reaches the handlers.
func TestACMETLSALPNConnClosed(t *testing.T) {
	cert, err := certs.SelfSigned(nil)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var reached atomic.Int32
	srv := &http.Server{
		Handler:      http.HandlerFunc(func(http.ResponseWriter, *http.Request) { reached.Add(1) }),
		TLSNextProto: tlsNextProto(),
	}
	conf := certs.ServerConfig(func(*tls.ClientHelloInfo) (*tls.Certificate, error) { return cert, nil })
	conf.NextProtos = []string{certs.ALPNChallenge} // as a challenge's handshake ends
	done := make(chan error, 1)
	go func() { done <- srv.Serve(tls.NewListener(ln, conf)) }()
	defer func() {
		_ = srv.Close()
		<-done
	}()
	c, err := tls.Dial("tcp", ln.Addr().String(), &tls.Config{InsecureSkipVerify: true, NextProtos: []string{certs.ALPNChallenge}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if p := c.ConnectionState().NegotiatedProtocol; p != certs.ALPNChallenge {
		t.Fatalf("negotiated %q", p)
	}
	_, _ = c.Write([]byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n"))
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if n, err := c.Read(make([]byte, 64)); !errors.Is(err, io.EOF) {
		t.Fatalf("read %d bytes, %v: want the connection closed", n, err)
	}
	if reached.Load() != 0 {
		t.Fatal("a request on an acme-tls/1 connection reached the handler")
	}
}

// TestTURNSHost: turns: URLs name a host the certificate is valid for — the --public-url
// host, else the first ACME domain (in lower case), else the TURN public IP — and the port
// clients reach HTTPS at.
func TestTURNSHost(t *testing.T) {
	ip := netip.MustParseAddr("203.0.113.7")
	cfg := config.Default()
	if h := turnsHost(cfg, ip); h != "203.0.113.7" {
		t.Errorf("no name: %q, want the public IP", h)
	}
	cfg.ACMEDomains = []string{"Call.Example.com", "other.example.com"}
	if h := turnsHost(cfg, ip); h != "call.example.com" {
		t.Errorf("ACME: %q, want the first domain", h)
	}
	cfg.PublicURL = "https://meet.example.org:8443/"
	if h, p := turnsHost(cfg, ip), httpsPort(cfg, &net.TCPAddr{Port: 9000}); h != "meet.example.org" || p != 8443 {
		t.Errorf("public URL: %s:%d, want meet.example.org:8443", h, p)
	}
	cfg.PublicURL = "https://meet.example.org/"
	if p := httpsPort(cfg, &net.TCPAddr{Port: 9000}); p != 443 {
		t.Errorf("https public URL without a port: %d, want 443", p)
	}
	cfg.PublicURL = ""
	if p := httpsPort(cfg, &net.TCPAddr{Port: 9000}); p != 9000 {
		t.Errorf("no public URL: %d, want the listen port", p)
	}
}
