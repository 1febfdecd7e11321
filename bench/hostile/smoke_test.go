package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/switchboard-rtc/switchboard/internal/config"
	"github.com/switchboard-rtc/switchboard/internal/testenv"
	"github.com/switchboard-rtc/switchboard/internal/testserver"
)

// TestSmokeTURNAttackAndCanary runs a small attack 3 against a real server whose per-client
// allocation quota is 3, with the canary alongside, and checks the RESULT line, the
// newcomer and the report: the quota refuses the rest, a newcomer from another address
// still gets everything, the canary loses nothing.
func TestSmokeTURNAttackAndCanary(t *testing.T) {
	srv := testserver.Run(t, func(c *config.Config) {
		c.TURN = true
		c.TURNIPQuota = 3
		c.TURNAllowPeers = []string{"127.0.0.0/8"}
	})
	server := "http://" + srv.Addr().String()
	dir := t.TempDir()
	canaryLog := filepath.Join(dir, "canary.log")

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	canaryCtx, stopCanary := context.WithCancel(ctx)
	canaryDone := make(chan struct{})
	var canaryErr error
	var canaryOut, canaryStderr testenv.Buffer
	go func() {
		defer close(canaryDone)
		canaryErr = run(canaryCtx, []string{"canary", "--url", "ws" + strings.TrimPrefix(server, "http") + "/ws",
			"--interval", "20ms", "--loss-after", "2s", "--out", canaryLog}, &canaryOut, &canaryStderr)
	}()
	defer func() {
		stopCanary()
		<-canaryDone
	}()

	var stdout, stderr testenv.Buffer
	err := run(ctx, []string{"attack", "3", "--server", server, "--turn", srv.TURN().Addr().String(),
		"--size", "6", "--addrs", "1", "--hold", "300ms", "--newcomer-addr", "127.0.0.250"}, &stdout, &stderr)
	if err != nil {
		t.Fatalf("attack: %v\n%s", err, stderr.String())
	}
	line := strings.TrimSpace(stdout.String())
	kv := parseKV(line)
	if !strings.HasPrefix(line, "RESULT attack=3 name=turn-alloc ") {
		t.Fatalf("output = %q", line)
	}
	for k, want := range map[string]string{"size": "6", "addrs": "1", "joins": "ok:6", "allocations": "486:3,ok:3",
		"atk_udp": "3", "newcomer": "ok"} {
		if kv[k] != want {
			t.Errorf("%s = %q, want %q\nstderr:\n%s", k, kv[k], want, stderr.String())
		}
	}
	if !strings.Contains(kv["counters"], "turn_refused_total[client-allocations]:+3") {
		t.Errorf("counters = %q, want the 3 refusals", kv["counters"])
	}

	stopCanary()
	<-canaryDone
	if canaryErr != nil {
		t.Fatalf("canary: %v\n%s", canaryErr, canaryStderr.String())
	}
	if !strings.Contains(canaryOut.String(), " 0 lost") {
		t.Errorf("canary: %s\nits stderr (why it reconnected):\n%s", canaryOut.String(), canaryStderr.String())
	}
	results := filepath.Join(dir, "results.txt")
	if err := os.WriteFile(results, []byte(line+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	samples := filepath.Join(dir, "samples.log")
	if err := os.WriteFile(samples, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	var report testenv.Buffer
	if err := run(ctx, []string{"report", "--canary", canaryLog, "--samples", samples, "--results", results}, &report, &stderr); err != nil {
		t.Fatalf("report: %v", err)
	}
	row := ""
	for l := range strings.Lines(report.String()) {
		if strings.HasPrefix(l, "| 3 | turn-alloc |") {
			row = l
		}
	}
	if row == "" || !strings.Contains(row, "| ok |") || !strings.Contains(row, "/0 |") {
		t.Errorf("report row %q: want the newcomer ok and no canary message lost\n%s", row, report.String())
	}
}
