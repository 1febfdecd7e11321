package certs_test

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/certmagic"

	"github.com/switchboard-rtc/switchboard/internal/certs"
	"github.com/switchboard-rtc/switchboard/internal/certs/pebbletest"
	"github.com/switchboard-rtc/switchboard/internal/testenv"
)

// TestACMEAccountWithoutEmail: without an email the account registers with no contact,
// whatever the storage holds. With several domains the first obtain saves the account (its
// registration, then its key) while the next one looks for an email: certmagic guesses one
// from the newest account folder in storage, takes the half-saved folder "default" (where an
// account without email lives) for an account whose email is "default", and remembers that
// guess for the rest of the process. Every account registered later then asks for the
// contact mailto:default, which the CA refuses (invalidContact): in the server's tests, each
// ACME test after the one that raced never got a certificate. The half-saved folder is made
// by hand here, as the other obtain leaves it.
func TestACMEAccountWithoutEmail(t *testing.T) {
	const domain = "account.switchboard.test"
	httpLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ca := pebbletest.Start(t, pebbletest.Options{HTTPPort: httpLn.Addr().(*net.TCPAddr).Port})
	storage := t.TempDir()
	issuerKey := (&certmagic.ACMEIssuer{CA: ca.Directory}).IssuerKey()
	half := filepath.Join(storage, "acme", certmagic.StorageKeys.Safe(issuerKey), "users", "default")
	if err := os.MkdirAll(half, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(half, "default.json"), []byte(`{"status": "valid"}`), 0o600); err != nil {
		t.Fatal(err)
	}

	var logs testenv.Buffer
	m, err := certs.NewACME(certs.ACMEConfig{
		Domains:  []string{domain},
		CA:       ca.Directory,
		CARoots:  ca.RootsFile,
		Storage:  storage,
		HTTPAddr: httpLn.Addr(),
		Logger:   slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
	})
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: m.HTTPHandler(443), ReadHeaderTimeout: 10 * time.Second}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(httpLn) }()
	defer func() {
		m.Stop()
		_ = srv.Close()
		if err := <-served; !errors.Is(err, http.ErrServerClosed) {
			t.Errorf("HTTP-01 server: %v", err)
		}
	}()
	m.Start(context.Background())

	deadline := time.Now().Add(60 * time.Second) // seconds on an idle machine; more under -race on a busy one
	for len(m.Expiries()) == 0 {
		if f := m.Failures()[0]; f.Count > 0 || time.Now().After(deadline) {
			t.Fatalf("no certificate for %s (%d failures); the account's contact:\n%s", domain, f.Count, grepLines(logs.String(), "contact"))
		}
		time.Sleep(20 * time.Millisecond) // polling the manager's cache with a deadline
	}
	if l := logs.String(); strings.Contains(l, "mailto:") {
		t.Errorf("an account without email asked for a contact:\n%s", grepLines(l, "mailto:"))
	}
}

// grepLines returns the lines of s that contain sub.
func grepLines(s, sub string) string {
	var b strings.Builder
	for line := range strings.Lines(s) {
		if strings.Contains(line, sub) {
			b.WriteString(line)
		}
	}
	return b.String()
}
