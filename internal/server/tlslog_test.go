package server_test

import (
	"context"
	"crypto/tls"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/switchboard-rtc/switchboard/internal/certs"
	"github.com/switchboard-rtc/switchboard/internal/config"
	"github.com/switchboard-rtc/switchboard/internal/server"
	"github.com/switchboard-rtc/switchboard/internal/testenv"
)

// TestTLSHandshakeErrorsNotWarned: a failed TLS handshake is what any client can cause (a
// scanner, a client that does not trust the certificate, garbage), once per connection: it
// must not write a warning line each time, whichever listener serves TLS — TLSListener (the
// handshake inside net/http, whose error log is at warn level) when TURN over TLS does not
// share the port, or SharedTLSListener when it does.
func TestTLSHandshakeErrorsNotWarned(t *testing.T) {
	for _, shared := range []bool{false, true} {
		name := map[bool]string{false: "TLSListener", true: "SharedTLSListener"}[shared]
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			cp, kp := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
			c, err := certs.SelfSigned(nil)
			if err != nil {
				t.Fatal(err)
			}
			if err := certs.WritePEM(c, cp, kp); err != nil {
				t.Fatal(err)
			}
			cfg := config.Default()
			cfg.Listen = "127.0.0.1:0"
			cfg.ShutdownTimeout = 3 * time.Second
			cfg.TURN = shared
			cfg.TURNListen = "127.0.0.1:0"
			cfg.TLSCert, cfg.TLSKey = cp, kp
			// One HTTP connection per client: a request that gets through from the same
			// address shows the connection before it was closed, after its error was logged.
			cfg.HTTPConnsPerClient = 1
			var logged testenv.Buffer
			srv, err := server.New(cfg, slog.New(slog.NewTextHandler(&logged, &slog.HandlerOptions{Level: slog.LevelWarn})))
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error, 1)
			go func() { done <- srv.Run(ctx) }()
			defer func() {
				cancel()
				if err := <-done; err != nil {
					t.Errorf("Run: %v", err)
				}
			}()
			addr := srv.Addr().String()
			tr := &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}, DisableKeepAlives: true} //nolint:gosec // the server's certificate is not what is tested
			defer tr.CloseIdleConnections()
			hc := &http.Client{Transport: tr, Timeout: waitFor}
			served := func() {
				t.Helper()
				deadline := time.Now().Add(waitFor)
				for {
					resp, err := hc.Get("https://" + addr + "/healthz")
					if err == nil {
						_ = resp.Body.Close()
						if resp.StatusCode == http.StatusOK {
							return
						}
					}
					if time.Now().After(deadline) {
						t.Fatalf("no 200 after a failed handshake: %v", err)
					}
					time.Sleep(5 * time.Millisecond)
				}
			}
			for range 3 {
				// A client that does not trust the certificate.
				if c, err := tls.Dial("tcp", addr, &tls.Config{ServerName: "untrusted.example"}); err == nil {
					_ = c.Close()
					t.Fatal("the client trusted a self-signed certificate")
				}
				served()
				// Garbage instead of a ClientHello.
				g, err := net.Dial("tcp", addr)
				if err != nil {
					t.Fatal(err)
				}
				_, _ = g.Write([]byte("\x16\x03\x01\x00\x05garbage-that-is-not-a-client-hello"))
				_ = g.SetReadDeadline(time.Now().Add(waitFor))
				_, _ = g.Read(make([]byte, 64))
				_ = g.Close()
				served()
			}
			if n := strings.Count(logged.String(), "TLS handshake error"); n > 0 {
				t.Errorf("%d warning lines for 6 failed handshakes:\n%s", n, logged.String())
			}
		})
	}
}
