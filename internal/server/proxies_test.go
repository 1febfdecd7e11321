package server_test

import (
	"context"
	"io"
	"net/http"
	"testing"

	"github.com/coder/websocket"

	"github.com/switchboard-rtc/switchboard/internal/config"
)

// xff is a proxy's X-Forwarded-For header naming the chain.
func xff(chain string) http.Header { return http.Header{"X-Forwarded-For": {chain}} }

// wsAs opens /ws from src with hdr and returns the status: 101, or the refusal's.
func wsAs(t *testing.T, ts *testServer, src string, hdr http.Header) int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	c, resp, err := websocket.Dial(ctx, ts.ws, &websocket.DialOptions{HTTPClient: fromAddr(t, src), HTTPHeader: hdr})
	if err != nil {
		if resp == nil {
			t.Fatalf("dial: %v", err)
		}
		return resp.StatusCode
	}
	t.Cleanup(func() { c.CloseNow() })
	return http.StatusSwitchingProtocols
}

// pollAs opens an Engine.IO polling session from src with hdr and returns the status.
func pollAs(t *testing.T, ts *testServer, src string, hdr http.Header) int {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, ts.base+"/socket.io/?EIO=4&transport=polling", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header = hdr.Clone()
	resp, err := fromAddr(t, src).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	return resp.StatusCode
}

// TestTrustedProxies: behind a proxy in --trusted-proxies (127.0.0.1 here: every request comes
// from it) each forwarded client has its own share of connections, Engine.IO sessions and
// joins; a client that prepends another address to X-Forwarded-For (or sends Forwarded, which
// this proxy passes on as it came) is still counted as itself; a peer that is not trusted is
// its own client whatever it forwards.
func TestTrustedProxies(t *testing.T) {
	ts := startServer(t, func(c *config.Config) {
		c.TrustedProxies = []string{"127.0.0.1"}
		c.ConnsPerClient = 2
		c.SIOSessionsPerClient = 1
		c.JoinsPerClient = 0.01
		c.JoinBurstPerClient = 1
	})
	const proxy = "127.0.0.1"
	alice, bob := xff("192.0.2.1"), xff("192.0.2.2")
	aliceSpoofing := xff("198.51.100.77, 192.0.2.1")

	// Connections: alice's two, then 429 however she dresses up; bob still gets in.
	if st := wsAs(t, ts, proxy, alice); st != http.StatusSwitchingProtocols {
		t.Fatalf("alice's first /ws: %d", st)
	}
	if st := wsAs(t, ts, proxy, aliceSpoofing); st != http.StatusSwitchingProtocols {
		t.Fatalf("alice's second /ws: %d", st)
	}
	for _, h := range []http.Header{alice, aliceSpoofing} {
		if st := wsAs(t, ts, proxy, h); st != http.StatusTooManyRequests {
			t.Errorf("alice's third /ws with %v: %d, want 429", h, st)
		}
	}
	if st := wsAs(t, ts, proxy, bob); st != http.StatusSwitchingProtocols {
		t.Fatalf("bob's /ws: %d", st)
	}
	// Forwarded and X-Forwarded-For naming different clients: one of them is the client's
	// own, and nothing tells which; such requests count for the proxy itself (its share: 2).
	conflict := http.Header{"Forwarded": {"for=198.51.100.78"}, "X-Forwarded-For": {"192.0.2.1"}}
	for i, want := range []int{http.StatusSwitchingProtocols, http.StatusSwitchingProtocols, http.StatusTooManyRequests} {
		if st := wsAs(t, ts, proxy, conflict); st != want {
			t.Errorf("conflicting headers, /ws %d: %d, want %d", i+1, st, want)
		}
	}

	// Engine.IO sessions, counted the same way.
	if st := pollAs(t, ts, proxy, alice); st != http.StatusOK {
		t.Fatalf("alice's session: %d", st)
	}
	if st := pollAs(t, ts, proxy, aliceSpoofing); st != http.StatusTooManyRequests {
		t.Errorf("alice's second session: %d, want 429", st)
	}
	if st := pollAs(t, ts, proxy, bob); st != http.StatusOK {
		t.Errorf("bob's session: %d", st)
	}

	// Joins reach the hub under the forwarded client.
	carol, dave := xff("192.0.2.3"), xff("192.0.2.4")
	c1 := dialAs(t, ts, proxy, carol)
	c1.join("r", nil)
	c2 := dialAs(t, ts, proxy, xff("198.51.100.79, 192.0.2.3"))
	if _, refused := c2.joinOrRefused("r", "again"); !refused {
		t.Fatal("carol's second join passed her burst of 1")
	}
	d := dialAs(t, ts, proxy, dave)
	d.join("r", nil)
	c1.expect("peer-joined")

	// An untrusted peer is its own client: what it forwards changes nothing.
	const stranger = "127.0.0.2"
	if st := wsAs(t, ts, stranger, xff("192.0.2.10")); st != http.StatusSwitchingProtocols {
		t.Fatalf("stranger's first /ws: %d", st)
	}
	if st := wsAs(t, ts, stranger, xff("192.0.2.11")); st != http.StatusSwitchingProtocols {
		t.Fatalf("stranger's second /ws: %d", st)
	}
	if st := wsAs(t, ts, stranger, xff("192.0.2.12")); st != http.StatusTooManyRequests {
		t.Errorf("stranger's third /ws, forwarding for a new address: %d, want 429", st)
	}

	if v := metricValue(t, ts, `switchboard_forwarded_ignored_total{reason="conflict"}`); v != "3" {
		t.Errorf(`switchboard_forwarded_ignored_total{reason="conflict"} = %q, want 3`, v)
	}
	if v := metricValue(t, ts, `switchboard_connections_refused_total{reason="client-connections"}`); v != "4" {
		t.Errorf(`connections_refused_total{reason="client-connections"} = %q, want 4`, v)
	}
}
