package server_test

import (
	"crypto/tls"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pion/stun/v4"
)

// TestACMETLSALPNSharedWithTURN (issue 13): with --acme-domains and the embedded TURN server
// on (the defaults), the HTTPS port is SharedTLSListener's: Pebble's TLS-ALPN-01 check (ALPN
// acme-tls/1, the challenge certificate) gets through it and the certificate is issued;
// then HTTPS, a turns: client (ALPN stun.turn, and a STUN message sent first without ALPN)
// and a bare acme-tls/1 hello (refused: no challenge under way) share the port.
func TestACMETLSALPNSharedWithTURN(t *testing.T) {
	const name = "turn.switchboard.test"
	s := startACME(t, acmeOptions{domains: []string{name}, tlsALPN: true, turn: true})
	if !strings.Contains(s.logs.String(), "turn over TLS sharing the HTTPS port") {
		t.Fatalf("the HTTPS port is not shared with TURN:\n%s", s.logs.String())
	}
	s.waitServed(t, name)
	if !strings.Contains(s.logs.String(), "challenge=tls-alpn-01") {
		t.Errorf("want the TLS-ALPN-01 challenge answered on the shared port:\n%s", s.logs.String())
	}
	if st, body := getFrom(t, s.hc, s.url(name, "/healthz")); st != http.StatusOK {
		t.Fatalf("https healthz: %d %q", st, body)
	}
	addr := "127.0.0.1:" + strconv.Itoa(s.port)
	for _, alpn := range [][]string{{"stun.turn"}, nil} {
		c, err := tls.DialWithDialer(&net.Dialer{Timeout: waitFor}, "tcp", addr, &tls.Config{ServerName: name, RootCAs: s.ca.Roots(), NextProtos: alpn})
		if err != nil {
			t.Fatalf("turns handshake (ALPN %v): %v", alpn, err)
		}
		req := stun.MustBuild(stun.TransactionID, stun.BindingRequest)
		_ = c.SetDeadline(time.Now().Add(waitFor))
		if _, err := c.Write(req.Raw); err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, 1500)
		n, err := c.Read(buf)
		if err != nil {
			t.Fatalf("STUN over TLS (ALPN %v): %v", alpn, err)
		}
		var m stun.Message
		m.Raw = buf[:n]
		if err := m.Decode(); err != nil || m.Type != stun.BindingSuccess {
			t.Errorf("STUN over TLS (ALPN %v): %v %v", alpn, m.Type, err)
		}
		_ = c.Close()
	}
	if _, err := s.served(name, "acme-tls/1"); err == nil {
		t.Error("a hello offering only acme-tls/1 got a handshake with no challenge under way")
	}
	if st, _ := getFrom(t, s.hc, s.url(name, "/healthz")); st != http.StatusOK {
		t.Fatalf("https healthz after: %d", st)
	}
}
