package sioserver_test

import (
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"

	"github.com/switchboard-rtc/switchboard/internal/certs"
	"github.com/switchboard-rtc/switchboard/internal/config"
	"github.com/switchboard-rtc/switchboard/internal/sioserver"
	"github.com/switchboard-rtc/switchboard/internal/testserver"
)

// TestNodeClientOverTLS (issue 13): the official socket.io-client reaches the server over
// HTTPS and WSS (Node trusting the server's certificate through NODE_EXTRA_CA_CERTS, nothing
// skipped): long polling, the upgrade to a WebSocket on the event loops, and the seed's flow
// between a polling+upgrade, a WebSocket-only and a polling-only socket.
func TestNodeClientOverTLS(t *testing.T) {
	dir := t.TempDir()
	cp, kp := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	c, err := certs.SelfSigned(nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := certs.WritePEM(c, cp, kp); err != nil {
		t.Fatal(err)
	}
	t.Setenv("NODE_EXTRA_CA_CERTS", cp)
	url := "https://" + strings.TrimPrefix(testserver.Start(t, func(c *config.Config) { c.TLSCert, c.TLSKey = cp, kp }), "http://")
	lines := sioserver.NodeScenarioSpec(t, url, "upgrade", "", nil)
	var up struct{ First, Now, ID string }
	if len(lines) != 1 || json.Unmarshal(lines[0], &up) != nil || up.First != "polling" || up.Now != "websocket" || up.ID == "" {
		t.Fatalf("upgrade over TLS: %q; want polling then websocket", lines)
	}
	lines = sioserver.NodeScenarioSpec(t, url, "seed", "", nil)
	if len(lines) != 1 || !strings.Contains(string(lines[0]), `"ok":true`) {
		t.Fatalf("seed flow over TLS: %q", lines)
	}
}
