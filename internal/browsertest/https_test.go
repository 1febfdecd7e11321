package browsertest

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/switchboard-rtc/switchboard/internal/certs"
	"github.com/switchboard-rtc/switchboard/internal/config"
	"github.com/switchboard-rtc/switchboard/internal/testenv"
	"github.com/switchboard-rtc/switchboard/internal/testserver"
)

// testDomain is the name the browser opens: not localhost, so only a trusted certificate
// makes its pages a secure context. --host-resolver-rules maps it to 127.0.0.1.
const testDomain = "call.switchboard.test"

// testCA is a certificate authority made for one test.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pem  string // the CA certificate's PEM file
}

// newTestCA makes a CA (ECDSA P-256, valid a day) and writes its certificate to dir/name.pem.
func newTestCA(t *testing.T, dir, name string) *testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial(t),
		Subject:               pkix.Name{CommonName: name, Organization: []string{"Switchboard test CA"}},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	ca := &testCA{cert: cert, key: key, pem: filepath.Join(dir, name+".pem")}
	if err := os.WriteFile(ca.pem, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		t.Fatal(err)
	}
	return ca
}

// issue returns a server certificate for host signed by ca.
func (ca *testCA) issue(t *testing.T, host string) *tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial(t),
		Subject:      pkix.Name{CommonName: host},
		DNSNames:     []string{host},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return &tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}
}

// files writes c as PEM files in dir for --tls-cert and --tls-key.
func files(t *testing.T, c *tls.Certificate, dir, name string) (certPath, keyPath string) {
	t.Helper()
	certPath, keyPath = filepath.Join(dir, name+".crt"), filepath.Join(dir, name+".key")
	if err := certs.WritePEM(c, certPath, keyPath); err != nil {
		t.Fatal(err)
	}
	return certPath, keyPath
}

func serial(t *testing.T) *big.Int {
	t.Helper()
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// trustingHome returns a fresh home directory whose NSS database (~/.pki/nssdb, which
// Chromium on Linux reads for the user's trust settings) trusts ca to identify web servers.
func trustingHome(t *testing.T, ca *testCA) string {
	t.Helper()
	certutil, err := exec.LookPath("certutil")
	if err != nil {
		testenv.Missing(t, "certutil is missing", "run scripts/install-test-deps.sh to install Debian's libnss3-tools")
	}
	home := t.TempDir()
	db := filepath.Join(home, ".pki", "nssdb")
	if err := os.MkdirAll(db, 0o700); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{
		{"-d", "sql:" + db, "-N", "--empty-password"},
		{"-d", "sql:" + db, "-A", "-t", "C,,", "-n", "switchboard-test", "-i", ca.pem},
	} {
		if out, err := exec.Command(certutil, args...).CombinedOutput(); err != nil {
			t.Fatalf("certutil %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	return home
}

// trustingChromium starts Chromium with home as its HOME (so it trusts what home's NSS
// database trusts) and testDomain resolved to 127.0.0.1. Certificate errors are NOT ignored.
func trustingChromium(t *testing.T, timeout time.Duration, home string) context.Context {
	t.Helper()
	return startChromium(t, timeout,
		chromedp.Env("HOME="+home),
		chromedp.Flag("host-resolver-rules", "MAP "+testDomain+" 127.0.0.1"),
	)
}

// recordSockets is run in a page before its own scripts: it keeps the URL of every WebSocket
// the page opens in window.sockets.
const recordSockets = `{
	const WS = window.WebSocket;
	window.sockets = [];
	window.WebSocket = class extends WS {
		constructor(url, protocols) { super(url, protocols); window.sockets.push(this.url); }
	};
}`

// TestWebAppOverHTTPS (issue 13): Chromium opens the web app at https://call.switchboard.test
// (a name mapped to loopback, served with --tls-cert/--tls-key from a CA made by the test and
// trusted through the NSS database of the browser's HOME, no --ignore-certificate-errors): the
// page is a secure context, the camera starts, two pages call each other over wss:// signaling
// and decode each other's video. A server whose CA is not in the database fails to load (the
// trust comes from the database). The seed page on the official socket.io-client calls over
// https and wss too.
func TestWebAppOverHTTPS(t *testing.T) {
	requireChromium(t)
	dir := t.TempDir()
	trusted, untrusted := newTestCA(t, dir, "trusted-ca"), newTestCA(t, dir, "untrusted-ca")
	home := trustingHome(t, trusted)
	leaf := trusted.issue(t, testDomain)

	// The seed page on its own https origin, with a certificate from the trusted CA; its
	// routes are added by the subtest that uses them (which skips alone without the bundle).
	seedMux := http.NewServeMux()
	seed := httptest.NewUnstartedServer(seedMux)
	seed.TLS = &tls.Config{Certificates: []tls.Certificate{*leaf}}
	seed.StartTLS()
	t.Cleanup(seed.Close)
	seedOrigin := "https://" + net.JoinHostPort(testDomain, port(t, seed.Listener.Addr()))

	cp, kp := files(t, leaf, dir, "trusted")
	srv := testserver.Run(t, func(c *config.Config) {
		c.TLSCert, c.TLSKey = cp, kp
		c.AllowedOrigins = append(c.AllowedOrigins, seedOrigin)
	})
	origin := "https://" + net.JoinHostPort(testDomain, port(t, srv.Addr()))
	// The same name, its certificate from a CA the browser does not trust.
	ucp, ukp := files(t, untrusted.issue(t, testDomain), dir, "untrusted")
	usrv := testserver.Run(t, func(c *config.Config) { c.TLSCert, c.TLSKey = ucp, ukp })
	uorigin := "https://" + net.JoinHostPort(testDomain, port(t, usrv.Addr()))

	browser := trustingChromium(t, 60*time.Second, home)
	t0 := time.Now()

	// Negative control: the untrusted CA's server does not load.
	ctx, cancel := chromedp.NewContext(browser)
	err := chromedp.Do(ctx, chromedp.Navigate(uorigin+"/"))
	cancel()
	if err == nil || !strings.Contains(err.Error(), "ERR_CERT_AUTHORITY_INVALID") {
		t.Fatalf("%s (CA not trusted) loaded or failed otherwise: %v", uorigin, err)
	}
	t.Logf("untrusted CA refused: %v", err)

	room := "https-call"
	tabs := []*appTab{
		openAppWith(t, browser, "P1", origin+"/r/"+room+"?name=P1", 1024, 768, recordSockets),
		openAppWith(t, browser, "P2", origin+"/r/"+room+"?name=P2", 1024, 768, recordSockets),
	}
	for _, p := range tabs {
		ctx := appEval[[]string](p, `[location.protocol, location.host, String(window.isSecureContext)]`)
		if want := []string{"https:", strings.TrimPrefix(origin, "https://"), "true"}; strings.Join(ctx, " ") != strings.Join(want, " ") {
			t.Fatalf("%s: protocol, host, isSecureContext = %v, want %v", p.name, ctx, want)
		}
		p.waitFor(`document.body.dataset.joined === 'true'`, "joined")
		if v := appEval[[]string](p, `window.switchboardApp.stream.getVideoTracks().map((tr) => tr.readyState)`); len(v) != 1 || v[0] != "live" {
			t.Fatalf("%s: camera tracks %v, want one live track", p.name, v)
		}
	}
	for _, p := range tabs {
		t.Logf("%s sees %v", p.name, p.waitVideos(1))
		socks := appEval[[]string](p, `window.sockets`)
		if len(socks) == 0 {
			t.Errorf("%s opened no WebSocket", p.name)
		}
		for _, u := range socks {
			if !strings.HasPrefix(u, "wss://"+strings.TrimPrefix(origin, "https://")+"/") {
				t.Errorf("%s: WebSocket %s, want wss:// to the server", p.name, u)
			}
		}
		if errs := p.errors(); len(errs) > 0 {
			t.Errorf("%s console errors: %v", p.name, errs)
		}
	}
	t.Logf("app over https: two pages decode each other's video after %v", time.Since(t0).Round(time.Millisecond))

	t.Run("socket.io seed page", func(t *testing.T) {
		// The official client: long-polling over https, then the upgrade to wss.
		seedRoutes(t, seedMux)
		t1 := time.Now()
		tabs := []*appTab{
			openAppWith(t, browser, "seedA", seedOrigin+"/seed.html?server="+origin, 800, 600, recordSockets),
			openAppWith(t, browser, "seedB", seedOrigin+"/seed.html?server="+origin, 800, 600, recordSockets),
		}
		a, b := tabs[0], tabs[1]
		idB := appEval[string](b, `socketId()`)
		appEval[string](a, `socketId()`)
		appEval[bool](a, `call(`+js(idB)+`).then(() => true)`)
		fa, fb := appEval[float64](a, `framesDecoded()`), appEval[float64](b, `framesDecoded()`)
		for _, p := range tabs {
			if got := appEval[string](p, `transports()`); got != "polling>websocket" {
				t.Errorf("%s: transports %s, want polling>websocket", p.name, got)
			}
			socks := appEval[[]string](p, `window.sockets`)
			if len(socks) == 0 {
				t.Errorf("%s opened no WebSocket", p.name)
			}
			for _, u := range socks {
				if !strings.HasPrefix(u, "wss://"+strings.TrimPrefix(origin, "https://")+"/socket.io/") {
					t.Errorf("%s: WebSocket %s, want wss:// to the server's /socket.io/", p.name, u)
				}
			}
			if errs := appEval[[]string](p, `errors`); len(errs) > 0 {
				t.Errorf("%s: page errors: %s", p.name, strings.Join(errs, "; "))
			}
			if errs := p.errors(); len(errs) > 0 {
				t.Errorf("%s console errors: %v", p.name, errs)
			}
		}
		t.Logf("seed page over https/wss: A decoded %v frames, B %v, after %v", fa, fb, time.Since(t1).Round(time.Millisecond))
	})
}

func port(t *testing.T, a net.Addr) string {
	t.Helper()
	_, p, err := net.SplitHostPort(a.String())
	if err != nil {
		t.Fatal(err)
	}
	return p
}
