package server_test

import (
	"context"
	"crypto/x509"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"

	"github.com/switchboard-rtc/switchboard/internal/certs/pebbletest"
	"github.com/switchboard-rtc/switchboard/internal/config"
	"github.com/switchboard-rtc/switchboard/internal/server"
	"github.com/switchboard-rtc/switchboard/internal/testenv"
)

// TestACMETLSALPN (issue 13): with --acme-domains and only TLS-ALPN-01 (--acme-http-listen
// off), Pebble really validates the challenge on the TLS listener and issues a certificate
// the server then serves; the server was serving before the certificate came; its expiry is
// a metric; other names, no name and a bare acme-tls/1 hello are handled.
func TestACMETLSALPN(t *testing.T) {
	const name = "alpn.switchboard.test"
	s := startACME(t, acmeOptions{domains: []string{name}, tlsALPN: true})
	leaf := s.waitServed(t, name)

	if st, body := getFrom(t, s.hc, s.url(name, "/healthz")); st != http.StatusOK {
		t.Fatalf("https healthz: %d %q", st, body)
	}
	logs := s.logs.String()
	start := strings.Index(logs, "switchboard serving: open https://"+net.JoinHostPort(name, strconv.Itoa(s.port))+"/")
	obtained := strings.Index(logs, "ACME: certificate obtained")
	if start < 0 || obtained < 0 || start > obtained {
		t.Errorf("the start line (at %d) must name the domain and come before the certificate (at %d):\n%s", start, obtained, logs)
	}
	if !strings.Contains(logs, "challenge=tls-alpn-01") || strings.Contains(logs, "challenge=http-01") {
		t.Errorf("want the TLS-ALPN-01 challenge answered, and no HTTP-01:\n%s", logs)
	}
	if got := s.metric(t, `switchboard_tls_certificate_expiry_seconds{domain="`+name+`"}`); int64(got) != leaf.NotAfter.Unix() {
		t.Errorf("expiry metric = %v, want %d", got, leaf.NotAfter.Unix())
	}
	if got := s.metric(t, `switchboard_acme_failures_total{domain="`+name+`"}`); got != 0 {
		t.Errorf("failures = %v, want 0", got)
	}
	if got := s.metric(t, `switchboard_acme_last_failure_seconds{domain="`+name+`"}`); got != -1 {
		t.Errorf("last failure = %v, want no series", got)
	}

	// Another name: the handshake is refused; no name (an address typed by hand): the
	// first domain's certificate; a hello offering only acme-tls/1 while no challenge is
	// under way: refused, it never reaches HTTP.
	if _, err := s.served("other.switchboard.test"); err == nil {
		t.Error("a handshake for a name not managed succeeded")
	}
	if c, err := s.served(""); err == nil {
		t.Error("a handshake without SNI verified against no name")
	} else if c, err = s.servedInsecure(""); err != nil || c.Subject.CommonName != name && (len(c.DNSNames) == 0 || c.DNSNames[0] != name) {
		t.Errorf("without SNI: %v %v, want the certificate of %s", c, err, name)
	}
	if _, err := s.served(name, "acme-tls/1"); err == nil {
		t.Error("a hello offering only acme-tls/1 got a handshake with no challenge under way")
	}
	if st, _ := getFrom(t, s.hc, s.url(name, "/healthz")); st != http.StatusOK {
		t.Fatalf("https healthz after the refusals: %d", st)
	}
}

// TestACMEHTTP01 (issue 13): with only HTTP-01 (--acme-tls-alpn=false) Pebble validates the
// challenge on --acme-http-listen; that listener redirects everything else to https with 308,
// keeping path and query, and answers 404 for a challenge it did not start.
func TestACMEHTTP01(t *testing.T) {
	const name = "http01.switchboard.test"
	s := startACME(t, acmeOptions{domains: []string{name}, http01: true})
	s.waitServed(t, name)
	logs := s.logs.String()
	if !strings.Contains(logs, "challenge=http-01") || strings.Contains(logs, "challenge=tls-alpn-01") {
		t.Errorf("want the HTTP-01 challenge answered, and no TLS-ALPN-01:\n%s", logs)
	}
	if st, body := getFrom(t, s.hc, s.url(name, "/healthz")); st != http.StatusOK {
		t.Fatalf("https healthz: %d %q", st, body)
	}

	plain := func(host, target string) *http.Response {
		t.Helper()
		req, err := http.NewRequest(http.MethodGet, "http://"+s.httpAddr+target, nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Host = host
		resp, err := s.hc.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp
	}
	want := s.url(name, "/r/standup?x=1&y=%2F")
	for _, host := range []string{name, name + ":80", "203.0.113.9"} { // a bare address goes to the domain
		resp := plain(host, "/r/standup?x=1&y=%2F")
		if resp.StatusCode != http.StatusPermanentRedirect || resp.Header.Get("Location") != want {
			t.Errorf("GET http://%s/r/standup: %s to %q, want 308 to %q", host, resp.Status, resp.Header.Get("Location"), want)
		}
	}
	if resp := plain(name, "/.well-known/acme-challenge/not-a-token-of-ours"); resp.StatusCode != http.StatusNotFound {
		t.Errorf("unknown challenge: %s, want 404", resp.Status)
	}
	// The redirect is followed by a browser: it lands on the app over https.
	resp := plain(name, "/")
	if st, _ := getFrom(t, s.hc, resp.Header.Get("Location")); st != http.StatusOK {
		t.Errorf("following the redirect to %s: %d", resp.Header.Get("Location"), st)
	}
}

// TestACMERenewal (issue 13): a forced renewal (both challenges on) is served to new
// connections while WebSockets connected before it keep exchanging messages; the expiry
// metric follows the certificate served.
func TestACMERenewal(t *testing.T) {
	const name = "renew.switchboard.test"
	s := startACME(t, acmeOptions{domains: []string{name}, http01: true, tlsALPN: true})
	first := s.waitServed(t, name)
	a, b := s.wss(t, name), s.wss(t, name)
	a.join("renewal", nil)
	b.join("renewal", nil)
	a.expect("peer-joined")
	relay(t, a, b, "before the renewal")

	ctx, cancel := context.WithTimeout(context.Background(), issueWithin)
	defer cancel()
	if err := server.RenewCertificates(ctx, s.Server); err != nil {
		t.Fatalf("renewal: %v", err)
	}
	second, err := s.served(name)
	if err != nil {
		t.Fatal(err)
	}
	if second.SerialNumber.Cmp(first.SerialNumber) == 0 {
		t.Fatalf("a new connection still gets the certificate %x", first.SerialNumber)
	}
	relay(t, a, b, "after the renewal")
	relay(t, b, a, strings.Repeat("r", 40_000))
	c := s.wss(t, name)
	c.join("renewal", nil)
	a.expect("peer-joined")
	b.expect("peer-joined")
	relay(t, c, a, "a newcomer on the renewed certificate")
	if got := s.metric(t, `switchboard_tls_certificate_expiry_seconds{domain="`+name+`"}`); int64(got) != second.NotAfter.Unix() {
		t.Errorf("expiry metric = %v, want the renewed certificate's %d", got, second.NotAfter.Unix())
	}
	if !strings.Contains(s.logs.String(), "ACME: renewing the certificate") {
		t.Errorf("the renewal was not logged:\n%s", s.logs.String())
	}
}

// TestACMEFailures (issue 13): a domain the CA cannot resolve fails (logged with the reason,
// counted with its time) while the other is issued and served; with the CA gone a renewal
// fails the same way; the server keeps serving its certificate and its calls throughout.
func TestACMEFailures(t *testing.T) {
	const good, broken = "good.switchboard.test", "broken.switchboard.test"
	s := startACME(t, acmeOptions{domains: []string{good, broken}, tlsALPN: true, http01: true,
		beforeStart: func(ca *pebbletest.CA) { ca.ServFail(broken) }})
	s.waitServed(t, good)
	within(t, issueWithin, "the failure for "+broken+" counted", func() bool {
		return s.metric(t, `switchboard_acme_failures_total{domain="`+broken+`"}`) >= 1
	})
	if s.metric(t, `switchboard_acme_last_failure_seconds{domain="`+broken+`"}`) <= 0 {
		t.Error("no time of the last failure")
	}
	if s.metric(t, `switchboard_tls_certificate_expiry_seconds{domain="`+broken+`"}`) != -1 {
		t.Error("an expiry for a domain without a certificate")
	}
	logs := s.logs.String()
	if !strings.Contains(logs, "ACME: could not obtain a certificate for "+broken) || !strings.Contains(logs, "could not resolve the domain") {
		t.Errorf("the failure is not logged with its reason:\n%s", logs)
	}
	a, b := s.wss(t, good), s.wss(t, good)
	a.join("failures", nil)
	b.join("failures", nil)
	a.expect("peer-joined")
	relay(t, a, b, "while a domain fails")

	// The CA is gone: a renewal fails, is logged and counted; the current certificate stays.
	s.ca.Stop()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- server.RenewCertificates(ctx, s.Server) }()
	within(t, issueWithin, "the failed renewal of "+good+" counted", func() bool {
		return s.metric(t, `switchboard_acme_failures_total{domain="`+good+`"}`) >= 1
	})
	cancel()
	if err := <-done; err == nil {
		t.Error("the renewal succeeded without a CA")
	}
	logs = s.logs.String()
	if !strings.Contains(logs, "ACME: could not renew the certificate of "+good) || !strings.Contains(logs, "the ACME CA cannot be reached") {
		t.Errorf("the failed renewal is not logged with its reason:\n%s", logs)
	}
	relay(t, b, a, "after the failed renewal")
	if _, err := s.served(good); err != nil {
		t.Errorf("the certificate is no longer served: %v", err)
	}
	if st, _ := getFrom(t, s.hc, s.url(good, "/healthz")); st != http.StatusOK {
		t.Errorf("https healthz after the failures: %d", st)
	}
}

// TestACMERestart (issue 13): a restarted server serves the certificate kept in
// --acme-storage at once, without the CA (which is gone).
func TestACMERestart(t *testing.T) {
	const name = "restart.switchboard.test"
	s := startACME(t, acmeOptions{domains: []string{name}, tlsALPN: true})
	first := s.waitServed(t, name)
	s.stop()
	err := <-s.done
	s.done <- err // for the cleanup, which waits for it too
	if err != nil {
		t.Fatalf("first run: %v", err)
	}
	s.ca.Stop()

	logs := new(testenv.Buffer)
	again := startServerLogs(t, logs, func(c *config.Config) {
		c.Listen = "127.0.0.1:0"
		c.ACMEDomains = []string{name}
		c.ACMECA, c.ACMECARoot, c.ACMEStorage = s.ca.Directory, s.ca.RootsFile, s.storage
		c.ACMEHTTPListen = "off"
	})
	s.testServer, s.port = again, again.Addr().(*net.TCPAddr).Port
	var leaf *x509.Certificate
	eventually(t, "the stored certificate served", func() bool {
		leaf, err = s.served(name)
		return err == nil
	})
	if leaf.SerialNumber.Cmp(first.SerialNumber) != 0 {
		t.Errorf("served %x, want the stored %x", leaf.SerialNumber, first.SerialNumber)
	}
	if l := logs.String(); strings.Contains(l, "ACME: asking the CA") || strings.Contains(l, "ACME: could not") {
		t.Errorf("the CA was asked again:\n%s", l)
	}
}
