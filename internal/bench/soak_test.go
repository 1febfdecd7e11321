package bench

import (
	"strings"
	"testing"

	"github.com/switchboard-rtc/switchboard/internal/testserver"
)

// A short soak with cuts and churn: messages acked by the server all arrive, once.
func TestSoakModeCutsAndChurn(t *testing.T) {
	base := testserver.Start(t, nil)
	url := "ws" + strings.TrimPrefix(base, "http") + "/ws"
	m := runMain(t, "soak", "--url", url, "--conns", "12", "--room-size", "4", "--source-ips", "2",
		"--duration", "8s", "--interval", "50ms", "--cut-every", "700ms", "--churn-every", "4s", "--report", "2s")
	t.Logf("RESULT %v", m)
	if num(t, m, "sent") == 0 || num(t, m, "received") == 0 || num(t, m, "cuts") == 0 {
		t.Fatalf("nothing happened: %v", m)
	}
	if num(t, m, "lost") != 0 || num(t, m, "dup") != 0 || num(t, m, "failed") != 0 || num(t, m, "started_over") != 0 {
		t.Fatalf("lost, duplicated, failed or started over: %v", m)
	}
}
