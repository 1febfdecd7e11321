package certs

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mholt/acmez/v3/acme"
	"go.uber.org/zap"

	"github.com/switchboard-rtc/switchboard/internal/testenv"
)

// newTestACME makes a manager that is never started: no CA is asked anything.
func newTestACME(t *testing.T, domains ...string) *ACME {
	t.Helper()
	m, err := NewACME(ACMEConfig{
		Domains:  domains,
		CA:       "https://127.0.0.1:1/dir",
		Storage:  t.TempDir(),
		HTTPAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 80},
		TLSAddr:  &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 443},
		Logger:   slog.New(slog.DiscardHandler),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(m.Stop)
	return m
}

// TestACMERedirect: the plain-HTTP handler redirects to https with 308 on the TLS port (left
// out when 443), keeping path and query, to the host asked for when it is managed, else to
// the first domain; a challenge path it did not start is 404, not redirected.
func TestACMERedirect(t *testing.T) {
	m := newTestACME(t, "Call.Example.com", "www.example.com", "call.example.com")
	if got := strings.Join(m.Domains(), ","); got != "call.example.com,www.example.com" {
		t.Fatalf("domains %s: want them lower-cased, once each", got)
	}
	for _, tc := range []struct {
		port         int
		host, target string
		want         string
	}{
		{443, "www.example.com", "/r/room?x=1", "https://www.example.com/r/room?x=1"},
		{443, "WWW.example.com:80", "/a%2Fb/c?q=%20", "https://www.example.com/a%2Fb/c?q=%20"},
		{8443, "call.example.com", "/", "https://call.example.com:8443/"},
		{443, "198.51.100.4", "/app/x", "https://call.example.com/app/x"},
		{443, "evil.example.net", "/", "https://call.example.com/"},
	} {
		r := httptest.NewRequest(http.MethodGet, "http://"+tc.host+tc.target, nil)
		w := httptest.NewRecorder()
		m.HTTPHandler(tc.port).ServeHTTP(w, r)
		if w.Code != http.StatusPermanentRedirect || w.Header().Get("Location") != tc.want {
			t.Errorf("%s%s (port %d): %d %q, want 308 %q", tc.host, tc.target, tc.port, w.Code, w.Header().Get("Location"), tc.want)
		}
	}
	w := httptest.NewRecorder()
	m.HTTPHandler(443).ServeHTTP(w, httptest.NewRequest(http.MethodGet, "http://call.example.com/.well-known/acme-challenge/abc", nil))
	if w.Code != http.StatusNotFound {
		t.Errorf("unknown challenge: %d, want 404", w.Code)
	}
	if c := m.TLSConfig(); strings.Join(c.NextProtos, ",") != "http/1.1,acme-tls/1" || c.GetCertificate == nil {
		t.Errorf("TLS config: %v", c.NextProtos)
	}
	if f := m.Failures(); len(f) != 2 || f[0].Count != 0 || len(m.Expiries()) != 0 {
		t.Errorf("before anything: failures %v, expiries %v", f, m.Expiries())
	}
}

// TestNewACMEErrors: what cannot work is said at start, in one line.
func TestNewACMEErrors(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "file")
	if err := os.WriteFile(file, []byte("not a PEM"), 0o600); err != nil {
		t.Fatal(err)
	}
	addr := &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 443}
	for _, tc := range []struct {
		cfg  ACMEConfig
		want string
	}{
		{ACMEConfig{Storage: dir, TLSAddr: addr}, "at least one domain"},
		{ACMEConfig{Domains: []string{"a.example.com"}, Storage: dir}, "needs a listener"},
		{ACMEConfig{Domains: []string{"a.example.com"}, Storage: dir, TLSAddr: addr, CARoots: filepath.Join(dir, "missing.pem")}, "acme-ca-root"},
		{ACMEConfig{Domains: []string{"a.example.com"}, Storage: dir, TLSAddr: addr, CARoots: file}, "no PEM certificate"},
		{ACMEConfig{Domains: []string{"a.example.com"}, Storage: filepath.Join(file, "acme"), TLSAddr: addr}, "acme-storage"},
	} {
		tc.cfg.Logger = slog.New(slog.DiscardHandler)
		m, err := NewACME(tc.cfg)
		if err == nil {
			m.Stop()
		}
		if err == nil || !strings.Contains(err.Error(), tc.want) || strings.Contains(err.Error(), "\n") {
			t.Errorf("NewACME(%+v) = %v, want one line with %q", tc.cfg, err, tc.want)
		}
	}
}

// TestReason: each kind of failure gets a line a person can act on.
func TestReason(t *testing.T) {
	wrap := func(err error) error { return fmt.Errorf("[x] Obtain: solving challenge: %w", err) }
	problem := func(typ, detail string) error {
		return wrap(acme.Problem{Type: acme.ProblemTypeNamespace + typ, Detail: detail, Status: 400})
	}
	for _, tc := range []struct {
		err  error
		want string
	}{
		{problem("connection", "Timeout during connect"), "ports 80 and 443 must be open"},
		{problem("dns", "DNS problem: NXDOMAIN looking up A"), "could not resolve the domain"},
		{problem("malformed", `Could not resolve URL "x.test"`), "could not resolve the domain"},
		{problem("unauthorized", "Invalid response from http://x/.well-known/acme-challenge/y: 404"), "did not answer the challenge"},
		{problem("rateLimited", "too many certificates already issued"), "rate limit"},
		{problem("caa", "CAA record forbids"), "CAA record"},
		{problem("rejectedIdentifier", "policy forbids"), "refuses to issue for this name"},
		{wrap(acme.Problem{Type: acme.ProblemTypeCompound, Subproblems: []acme.Subproblem{{Problem: acme.Problem{Type: acme.ProblemTypeNamespace + "tls", Detail: "handshake"}}}}), "TLS-ALPN-01"},
		{problem("serverInternal", "oops"), "internal error"},
		{problem("somethingNew", "?"), "the CA refused the order"},
		{wrap(&net.OpError{Op: "dial", Net: "tcp", Err: errors.New("connection refused")}), "cannot be reached"},
		{wrap(x509.UnknownAuthorityError{}), "--acme-ca-root"},
		{wrap(context.Canceled), "stopped"},
		{errors.New("mystery"), "did not issue"},
	} {
		if got := Reason(tc.err); !strings.Contains(got, tc.want) || strings.Contains(got, "\n") {
			t.Errorf("Reason(%v) = %q, want one line with %q", tc.err, got, tc.want)
		}
	}
}

// TestZapToSlog: certmagic's lines reach the slog logger at debug with their fields; errors
// at warn, at most one per errorEvery; nothing once off.
func TestZapToSlog(t *testing.T) {
	var buf testenv.Buffer
	var off atomic.Bool
	zl := newZapLogger(slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug})), &off)
	zl.Named("obtain").With(zap.String("identifier", "a.test")).Info("obtaining certificate", zap.Int("attempt", 2))
	zl.Error("first error", zap.Error(errors.New("boom")))
	zl.Error("second error")
	out := buf.String()
	for _, want := range []string{
		`level=DEBUG msg="certmagic: obtaining certificate" logger=obtain identifier=a.test attempt=2`,
		`level=WARN msg="certmagic: first error" error=boom`,
		`level=DEBUG msg="certmagic: second error"`,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("missing %q in:\n%s", want, out)
		}
	}
	off.Store(true)
	zl.Error("after stop")
	if strings.Contains(buf.String(), "after stop") {
		t.Error("logged after the manager stopped")
	}

	// At info, the debug lines cost nothing and are dropped; an error still gets through.
	var info testenv.Buffer
	zi := newZapLogger(slog.New(slog.NewTextHandler(&info, nil)), new(atomic.Bool))
	if ce := zi.Check(zap.InfoLevel, "chatty"); ce != nil {
		t.Error("an info line is checked in at info level")
	}
	zi.Error("an error", zap.Duration("after", time.Second))
	if !strings.Contains(info.String(), `level=WARN msg="certmagic: an error" after=1s`) {
		t.Errorf("at info: %q", info.String())
	}
}

// TestStoppableStorage: once stopped, the storage refuses to store or lock (nothing is
// created any more) but still reads and deletes.
func TestStoppableStorage(t *testing.T) {
	m := newTestACME(t, "a.example.com")
	s, ctx := m.storage, context.Background()
	if err := s.Store(ctx, "k", []byte("v")); err != nil {
		t.Fatal(err)
	}
	if err := s.Lock(ctx, "l"); err != nil {
		t.Fatal(err)
	}
	m.Stop()
	if err := s.Store(ctx, "k2", []byte("v")); !errors.Is(err, errStopped) {
		t.Errorf("Store after stop: %v", err)
	}
	if err := s.Lock(ctx, "l2"); !errors.Is(err, errStopped) {
		t.Errorf("Lock after stop: %v", err)
	}
	if ok, err := s.TryLock(ctx, "l3"); ok || !errors.Is(err, errStopped) {
		t.Errorf("TryLock after stop: %v %v", ok, err)
	}
	if v, err := s.Load(ctx, "k"); err != nil || string(v) != "v" {
		t.Errorf("Load after stop: %q %v", v, err)
	}
	if err := s.Unlock(ctx, "l"); err != nil {
		t.Errorf("Unlock after stop: %v", err)
	}
	if err := s.Delete(ctx, "k"); err != nil || s.Exists(ctx, "k") {
		t.Errorf("Delete after stop: %v", err)
	}
	m.Stop() // twice is fine

	// The accounts' folders are not listed (certmagic would guess an email from them).
	for _, k := range []string{"acme/ca.example-dir/users/default/default.json", "acme/ca.example-dir/users/a/a.key"} {
		if err := s.FileStorage.Store(ctx, k, []byte("x")); err != nil {
			t.Fatal(err)
		}
	}
	if l, err := s.List(ctx, "acme/ca.example-dir/users", false); len(l) != 0 || !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("List of the accounts: %q %v", l, err)
	}
	if l, err := s.List(ctx, "acme/ca.example-dir", false); len(l) != 1 || err != nil {
		t.Errorf("List of the CA's folder: %q %v, want its users folder", l, err)
	}
}

// TestExpiriesOf: one expiry per DNS name, from the leaf (parsed when not kept).
func TestExpiriesOf(t *testing.T) {
	c, err := SelfSigned([]string{"lan.example", "192.0.2.1"})
	if err != nil {
		t.Fatal(err)
	}
	c.Leaf = nil
	got := ExpiriesOf(c)
	if len(got) != 2 || got[0].Domain != "localhost" || got[1].Domain != "lan.example" || time.Until(got[0].NotAfter) < 364*24*time.Hour {
		t.Errorf("ExpiriesOf = %v", got)
	}
	if ExpiriesOf(nil) != nil {
		t.Error("ExpiriesOf(nil)")
	}
}
