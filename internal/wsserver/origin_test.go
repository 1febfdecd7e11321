package wsserver

import (
	"bufio"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/switchboard-rtc/switchboard/internal/hub"
	"github.com/switchboard-rtc/switchboard/internal/testenv"
)

// handshake sends a raw upgrade request over conn with the given Host and Origin ("" leaves
// the header out) and returns the response status.
func handshake(t *testing.T, conn net.Conn, host, origin string) int {
	t.Helper()
	req := "GET /ws HTTP/1.1\r\nHost: " + host + "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
		"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
	if origin != "" {
		req += "Origin: " + origin + "\r\n"
	}
	_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := conn.Write([]byte(req + "\r\n")); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("handshake: %v", err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

type originCase struct {
	host   string // "" means the listener's address
	origin string
	want   int
}

func runOriginCases(t *testing.T, cfg Config, cases []originCase) {
	t.Helper()
	_, hs := startTestServer(t, hub.Config{}, cfg)
	addr := hs.Listener.Addr().String()
	for _, c := range cases {
		host := strings.ReplaceAll(c.host, "ADDR", addr)
		if c.host == "" {
			host = addr
		}
		origin := strings.ReplaceAll(c.origin, "ADDR", addr)
		conn, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		if got := handshake(t, conn, host, origin); got != c.want {
			t.Errorf("Host %q Origin %q: %d, want %d", host, origin, got, c.want)
		}
		conn.Close()
	}
}

// Same origin means same scheme, host and port as the request: http without TLS (and https
// for the same host and port, a proxy in front having ended TLS).
func TestOriginSameOriginPlain(t *testing.T) {
	runOriginCases(t, Config{}, []originCase{
		{"", "", http.StatusSwitchingProtocols},                             // no Origin: not a browser
		{"", "http://ADDR", http.StatusSwitchingProtocols},                  // same origin
		{"", "HTTP://ADDR", http.StatusSwitchingProtocols},                  // case does not matter
		{"", "https://ADDR", http.StatusSwitchingProtocols},                 // https page, same host and port: a TLS-ending proxy
		{"", "https://127.0.0.1", http.StatusForbidden},                     // https on another port
		{"", "http://127.0.0.1:1", http.StatusForbidden},                    // other port
		{"", "http://127.0.0.1", http.StatusForbidden},                      // default port is another port
		{"", "http://localhost.test", http.StatusForbidden},                 // other host
		{"", "null", http.StatusForbidden},                                  // opaque origin
		{"call.test", "http://call.test:80", http.StatusSwitchingProtocols}, // default port spelled out
		{"call.test:80", "http://call.test", http.StatusSwitchingProtocols}, // ... on either side
		{"call.test:8080", "http://call.test", http.StatusForbidden},
	})
}

// Over TLS the server's own origin is https. (The event loops take plain TCP sockets only, so
// a TLS request is checked here without the upgrade: TLS ends at a proxy in front.)
func TestOriginSameOriginTLS(t *testing.T) {
	s, _ := newEdgeServer(t, Config{}, nil)
	for _, c := range []struct {
		host, origin string
		want         int
	}{
		{"call.test", "https://call.test", 0},
		{"call.test", "https://call.test:443", 0},
		{"call.test:8443", "https://call.test:8443", 0},
		{"call.test", "http://call.test", http.StatusForbidden},
		{"call.test:8443", "https://call.test", http.StatusForbidden},
	} {
		r := httptest.NewRequest(http.MethodGet, "https://"+c.host+"/ws", nil)
		r.Header.Set("Connection", "Upgrade")
		r.Header.Set("Upgrade", "websocket")
		r.Header.Set("Sec-WebSocket-Version", "13")
		r.Header.Set("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==")
		r.Header.Set("Origin", c.origin)
		if r.TLS == nil {
			t.Fatal("httptest request for https has no TLS state")
		}
		if got, _ := s.checkUpgrade(r); got != c.want {
			t.Errorf("Host %q Origin %q over TLS: %d, want %d", c.host, c.origin, got, c.want)
		}
	}
}

// AllowedOrigins entries with a scheme match scheme, host pattern and port; bare host patterns
// match any scheme on its default port.
func TestOriginAllowedPatterns(t *testing.T) {
	runOriginCases(t, Config{AllowedOrigins: []string{"https://*.example.com", "app.example.org", "http://dev.test:3000", "https://slash.test/"}}, []originCase{
		{"", "https://slash.test", http.StatusSwitchingProtocols},
		{"", "https://a.example.com", http.StatusSwitchingProtocols},
		{"", "https://a.example.com:443", http.StatusSwitchingProtocols},
		{"", "http://a.example.com", http.StatusForbidden},
		{"", "https://a.example.com:8443", http.StatusForbidden},
		{"", "https://example.com.evil.test", http.StatusForbidden},
		{"", "http://app.example.org", http.StatusSwitchingProtocols},
		{"", "https://app.example.org", http.StatusSwitchingProtocols},
		{"", "https://app.example.org:8443", http.StatusForbidden},
		{"", "http://dev.test:3000", http.StatusSwitchingProtocols},
		{"", "http://dev.test:3001", http.StatusForbidden},
		{"", "https://dev.test:3000", http.StatusForbidden},
	})
}

// PublicURL pins the server's origin and Host: a request for another name (DNS rebinding, or
// the bare address) is refused with 421, whatever its Origin.
func TestOriginPublicURL(t *testing.T) {
	runOriginCases(t, Config{PublicURL: "https://call.example.com"}, []originCase{
		{"call.example.com", "https://call.example.com", http.StatusSwitchingProtocols}, // behind a TLS proxy
		{"call.example.com:443", "https://call.example.com", http.StatusSwitchingProtocols},
		{"CALL.example.com", "", http.StatusSwitchingProtocols},
		{"call.example.com", "http://call.example.com", http.StatusForbidden},
		{"call.example.com", "https://call.example.com:8443", http.StatusForbidden},
		{"call.example.com", "https://evil.test", http.StatusForbidden},
		{"evil.test", "http://evil.test", http.StatusMisdirectedRequest}, // rebinding: same origin to the browser
		{"evil.test", "", http.StatusMisdirectedRequest},
		{"", "http://ADDR", http.StatusMisdirectedRequest},
		{"call.example.com:8443", "https://call.example.com:8443", http.StatusMisdirectedRequest},
	})
}

func TestPublicURLValidation(t *testing.T) {
	for _, u := range []string{"call.example.com", "ftp://call.example.com", "https://", "https://u:p@call.example.com", "https://call.example.com/?a=b"} {
		if _, err := parsePublicURL(u); err == nil {
			t.Errorf("%q accepted", u)
		}
	}
	for _, u := range []string{"", "https://call.example.com", "http://127.0.0.1:8080", "https://call.example.com/switchboard/", "https://[::1]:8443"} {
		if _, err := parsePublicURL(u); err != nil {
			t.Errorf("%q: %v", u, err)
		}
	}
	for _, p := range []string{"*", "https://*.example.com", "*.example.com", "http://dev.test:3000"} {
		if err := checkOriginPattern(p); err != nil {
			t.Errorf("%q: %v", p, err)
		}
	}
	for _, p := range []string{"ftp://x.test", "https://", "https://x.test/path", "[bad"} {
		if err := checkOriginPattern(p); err == nil {
			t.Errorf("%q accepted", p)
		}
	}
}

// An https page of the server's own host refused because the request came over plain HTTP (a
// proxy ends TLS) is logged once, with what to do.
func TestOriginProxyHint(t *testing.T) {
	var logs testenv.Buffer
	_, hs := startTestServer(t, hub.Config{Logger: slog.New(slog.NewTextHandler(&logs, nil))}, Config{})
	for range 3 {
		conn, err := net.Dial("tcp", hs.Listener.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		// The proxy forwards Host with the port it dialled: not the page's, so refused.
		if got := handshake(t, conn, "call.test:8080", "https://call.test"); got != http.StatusForbidden {
			t.Fatalf("status %d", got)
		}
		conn.Close()
	}
	if n := strings.Count(logs.String(), "--public-url"); n != 1 {
		t.Fatalf("hint logged %d times: %s", n, logs.String())
	}
}
