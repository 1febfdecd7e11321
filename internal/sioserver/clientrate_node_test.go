package sioserver

import (
	"testing"

	"github.com/switchboard-rtc/switchboard/internal/hub"
)

// TestNodeClientJoinRate: the official socket.io-client joins faster than its address's join
// rate: the join's ack is the rate-limited error, the socket stays connected and joins after
// waiting; the hub counts every refusal.
func TestNodeClientJoinRate(t *testing.T) {
	ts := startServer(t, hub.Config{Clients: hub.ClientLimits{JoinRate: 2, JoinBurst: 3}}, nil)
	lines := nodeScenario(t, ts.url, "join-rate", nil)
	var got struct{ Refused uint64 }
	decodeLine(t, lines[len(lines)-1], &got)
	if n := ts.hub.Stats().PerClient.JoinsRefused.Load(); got.Refused == 0 || n != got.Refused {
		t.Errorf("hub counted %d refused joins, the client saw %d", n, got.Refused)
	}
}
