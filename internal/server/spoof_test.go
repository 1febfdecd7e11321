package server_test

import (
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/switchboard-rtc/switchboard/internal/config"
	"github.com/switchboard-rtc/switchboard/internal/testenv"
)

// spoofed returns the i-th forging a client makes up: a new address every time, in
// X-Forwarded-For, Forwarded and X-Real-IP, alone or together, sometimes naming an address the
// server trusts as a proxy.
func spoofed(i int) http.Header {
	addr := fmt.Sprintf("198.51.100.%d", 1+i%250)
	switch i % 5 {
	case 0:
		return http.Header{"X-Forwarded-For": {addr}}
	case 1:
		return http.Header{"Forwarded": {"for=" + addr}}
	case 2:
		return http.Header{"X-Forwarded-For": {addr + ", 127.0.0.9"}, "Forwarded": {`for="` + addr + `:4711"`}}
	case 3:
		return http.Header{"X-Real-IP": {addr}, "X-Forwarded-For": {addr}}
	default:
		return http.Header{"X-Forwarded-For": {"127.0.0.9"}, "Forwarded": {"for=10.1.2.3"}}
	}
}

// TestSpoofedForwardingChangesNothing (issue 13): a client that is not a trusted proxy forges
// a new X-Forwarded-For, Forwarded or X-Real-IP on every request, with no trusted proxies
// configured and with others trusted (127.0.0.9, 10.0.0.0/8 — addresses it also names). Its
// WebSocket connections, Engine.IO sessions and joins all count for its real address: the
// caps refuse it at the same count as without headers, its rotation makes no new entries in
// the join table, no header is even parsed, and the log names its real address; another
// address is served meanwhile.
func TestSpoofedForwardingChangesNothing(t *testing.T) {
	for _, tc := range []struct {
		name    string
		trusted []string
	}{
		{"no trusted proxies", nil},
		{"other proxies trusted", []string{"127.0.0.9", "10.0.0.0/8"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var log testenv.Buffer
			ts := startServerLog(t, func(c *config.Config) {
				c.TrustedProxies = tc.trusted
				c.ConnsPerClient = 6
				c.SIOSessionsPerClient = 2
				c.JoinsPerClient = 0.01
				c.JoinBurstPerClient = 3
			}, &log)
			const spoofer, other = "127.0.0.2", "127.0.0.3"

			// Six connections, each with another forged client: the cap is reached all the same.
			conns := make([]*client, 6)
			for i := range conns {
				conns[i] = dialAs(t, ts, spoofer, spoofed(i))
			}
			for i := 6; i < 11; i++ {
				if st := wsAs(t, ts, spoofer, spoofed(i)); st != http.StatusTooManyRequests {
					t.Errorf("connection %d forging %v: %d, want 429", i+1, spoofed(i), st)
				}
			}

			// Joins: the burst of 3 is the real address's, whichever forged client each
			// connection claimed.
			refused := 0
			for i, c := range conns {
				if _, no := c.joinOrRefused("spoof", fmt.Sprint("j", i)); no {
					refused++
				}
			}
			if refused != 3 {
				t.Errorf("%d of 6 joins refused, want 3 (burst 3 for the one real address)", refused)
			}

			// Engine.IO sessions: two, then 429.
			for i, want := range []int{http.StatusOK, http.StatusOK, http.StatusTooManyRequests, http.StatusTooManyRequests} {
				if st := pollAs(t, ts, spoofer, spoofed(20+i)); st != want {
					t.Errorf("Engine.IO session %d: %d, want %d", i+1, st, want)
				}
			}

			// Another address is its own client: it connects and joins.
			o := dialAs(t, ts, other, nil)
			o.join("spoof", nil)

			for name, want := range map[string]string{
				`switchboard_connections_refused_total{reason="client-connections"}`: "5",
				`switchboard_connections_refused_total{reason="client-sessions"}`:    "2",
				`switchboard_joins_refused_total{reason="rate"}`:                     "3",
				`switchboard_client_table_entries{table="joins"}`:                    "2",
				`switchboard_forwarded_ignored_total{reason="malformed"}`:            "0",
				`switchboard_forwarded_ignored_total{reason="conflict"}`:             "0",
			} {
				if got := metricValue(t, ts, name); got != want {
					t.Errorf("%s = %q, want %s", name, got, want)
				}
			}

			// The log names the real addresses, never a forged one.
			logged := log.String()
			if n := strings.Count(logged, `msg="peer joined"`); n != 4 {
				t.Errorf("%d joins logged, want 4:\n%s", n, logged)
			}
			if n := strings.Count(logged, "client="+spoofer+"/32"); n != 3 {
				t.Errorf("%d joins logged for %s, want 3:\n%s", n, spoofer, logged)
			}
			if !strings.Contains(logged, "client="+other+"/32") {
				t.Errorf("the other address's join is not logged with its address:\n%s", logged)
			}
			for _, forged := range []string{"198.51.100.", "127.0.0.9", "10.1.2.3"} {
				if strings.Contains(logged, forged) {
					t.Errorf("the log names forged address %s:\n%s", forged, logged)
				}
			}
		})
	}
}
