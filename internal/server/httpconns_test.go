package server_test

import (
	"bufio"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/switchboard-rtc/switchboard/internal/config"
)

// TestHTTPConnsPerClient (issue 12, item 6): one address holding its share of HTTP
// connections (here by dripping request bodies) has requests on further connections answered
// 429 with Retry-After before any body is read, counted; another address is served; a freed
// slot serves the first address again; WebSockets do not hold HTTP slots.
func TestHTTPConnsPerClient(t *testing.T) {
	ts := startServer(t, func(c *config.Config) { c.HTTPConnsPerClient = 3 })
	addr := strings.TrimPrefix(ts.base, "http://")
	dialFrom := func(src string) net.Conn {
		t.Helper()
		d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}, Timeout: waitFor}
		c, err := d.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	get := func(c net.Conn) *http.Response {
		t.Helper()
		if _, err := c.Write([]byte("GET /healthz HTTP/1.1\r\nHost: " + addr + "\r\n\r\n")); err != nil {
			t.Fatal(err)
		}
		_ = c.SetReadDeadline(time.Now().Add(waitFor))
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp
	}
	// Three WebSockets from the address: they leave the HTTP count when upgraded.
	hc := fromAddr(t, "127.0.0.2")
	for range 3 {
		if _, st := wsFrom(t, hc, ts.ws); st != http.StatusSwitchingProtocols {
			t.Fatalf("WebSocket: %d", st)
		}
	}
	// Three dripped bodies hold the address's HTTP share.
	var drips []net.Conn
	for range 3 {
		c := dialFrom("127.0.0.2")
		if _, err := c.Write([]byte("POST /socket.io/?EIO=4&transport=polling&sid=x HTTP/1.1\r\nHost: " + addr + "\r\nContent-Length: 1000\r\n\r\nx")); err != nil {
			t.Fatal(err)
		}
		drips = append(drips, c)
	}
	eventually(t, "the dripped connections counted", func() bool {
		resp := get(dialFrom("127.0.0.2"))
		return resp.StatusCode == http.StatusTooManyRequests && resp.Header.Get("Retry-After") != ""
	})
	if resp := get(dialFrom("127.0.0.3")); resp.StatusCode != http.StatusOK {
		t.Fatalf("another address: %d", resp.StatusCode)
	}
	if got := metricValue(t, ts, `switchboard_connections_refused_total{reason="client-http"}`); got == "" || got == "0" {
		t.Fatalf("refusals counted: %q", got)
	}
	drips[0].Close()
	eventually(t, "a freed slot served", func() bool { return get(dialFrom("127.0.0.2")).StatusCode == http.StatusOK })
}
