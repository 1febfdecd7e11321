package server

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/switchboard-rtc/switchboard/internal/config"
)

// metricsWith calls the main listener's handler for /metrics as a client at remote would
// reach it, with the header lines hdr.
func metricsWith(s *Server, remote string, hdr http.Header) int {
	r := httptest.NewRequest(http.MethodGet, "http://"+s.Addr().String()+"/metrics", nil)
	r.RemoteAddr = remote
	for k, v := range hdr {
		r.Header[k] = v
	}
	w := httptest.NewRecorder()
	s.http.Handler.ServeHTTP(w, r)
	return w.Code
}

// TestMetricsGateBehindProxy: a loopback peer that forwards for someone — a reverse proxy on
// the same host, not in --trusted-proxies — is not a loopback client: /metrics is not served
// through it to the internet (over a real connection, and for each forwarding header).
func TestMetricsGateBehindProxy(t *testing.T) {
	s := runEdgeServer(t, func(*config.Config) {})
	addr := s.Addr().String()
	if code, body := rawGet(t, s.Addr(), addr, "/metrics", ""); code != http.StatusOK || !strings.Contains(body, "switchboard_") {
		t.Fatalf("loopback client without forwarding headers: %d", code)
	}
	for _, h := range []string{
		"X-Forwarded-For: 203.0.113.5\r\n",
		"X-Forwarded-For: 127.0.0.1\r\n", // an untrusted peer's word for it
		"Forwarded: for=203.0.113.5;proto=https\r\n",
		"X-Real-IP: 203.0.113.5\r\n",
	} {
		if code, _ := rawGet(t, s.Addr(), addr, "/metrics", h); code != http.StatusNotFound {
			t.Errorf("loopback peer with %q: %d, want 404", strings.TrimSpace(h), code)
		}
	}
	if got := s.hub.Stats().MetricsRefused.Load(); got != 4 {
		t.Errorf("metrics refused %d, want 4", got)
	}
}

// TestMetricsGateTrustedProxy: from a trusted proxy the client is the one it forwards for:
// a loopback one is served, anyone else and a header that cannot be used (the client is then
// unknown) are not; a trusted proxy that forwards nothing is its own client.
func TestMetricsGateTrustedProxy(t *testing.T) {
	s := runEdgeServer(t, func(c *config.Config) { c.TrustedProxies = []string{"127.0.0.1", "10.0.0.0/8"} })
	for _, tc := range []struct {
		remote string
		hdr    http.Header
		want   int
	}{
		{"127.0.0.1:1", nil, http.StatusOK},
		{"127.0.0.1:1", http.Header{"X-Forwarded-For": {"::1"}}, http.StatusOK},
		{"10.0.0.7:1", http.Header{"Forwarded": {`for="[::1]:5"`}}, http.StatusOK},
		{"127.0.0.1:1", http.Header{"X-Forwarded-For": {"203.0.113.5"}}, http.StatusNotFound},
		{"127.0.0.1:1", http.Header{"X-Forwarded-For": {"127.0.0.1, 203.0.113.5"}}, http.StatusNotFound},
		{"127.0.0.1:1", http.Header{"X-Forwarded-For": {"not an address"}}, http.StatusNotFound},
		{"10.0.0.7:1", nil, http.StatusNotFound},
		{"127.0.0.2:1", http.Header{"X-Forwarded-For": {"127.0.0.1"}}, http.StatusNotFound},
		{"127.0.0.2:1", nil, http.StatusOK},
	} {
		if code := metricsWith(s, tc.remote, tc.hdr); code != tc.want {
			t.Errorf("%s with %v: %d, want %d", tc.remote, tc.hdr, code, tc.want)
		}
	}
	if got := s.hub.Stats().PerClient.ForwardedMalformed.Load(); got != 1 {
		t.Errorf("malformed forwarding headers counted %d, want 1", got)
	}
}
