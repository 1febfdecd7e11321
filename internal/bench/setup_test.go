package bench

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/pion/webrtc/v4"
	"go.uber.org/goleak"
)

func TestSetupSmoke(t *testing.T) {
	defer goleak.VerifyNone(t)
	check := func(t *testing.T, m map[string]string) {
		t.Helper()
		if m["pairs"] != "3" || m["errors"] != "0" {
			t.Errorf("RESULT %v", m)
		}
		for _, k := range []string{"sdk", "sdk_join", "sdk_pc", "bare"} {
			p50, p99, mx := num(t, m, k+"_p50_ms"), num(t, m, k+"_p99_ms"), num(t, m, k+"_max_ms")
			if p50 <= 0 || p99 < p50 || mx < p99 {
				t.Errorf("%s: p50 %v p99 %v max %v", k, p50, p99, mx)
			}
		}
		if num(t, m, "sdk_join_p50_ms") >= num(t, m, "sdk_p50_ms") {
			t.Errorf("join is part of the setup: %v", m)
		}
		if m["target_met"] != "true" && m["target_met"] != "false" {
			t.Errorf("target_met=%q", m["target_met"])
		}
	}
	t.Run("in-process server", func(t *testing.T) {
		check(t, runMain(t, "setup", "--pairs", "3", "--warmup", "1"))
	})
	t.Run("--server", func(t *testing.T) {
		srv, err := startLocalServer(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		defer func() {
			if err := srv.stop(); err != nil {
				t.Error(err)
			}
		}()
		check(t, runMain(t, "setup", "--server", srv.url, "--pairs", "3", "--warmup", "0", "--concurrency", "2"))
	})
}

func TestSetupNoServer(t *testing.T) {
	var out, errOut bytes.Buffer
	// Nothing listens on port 1.
	err := Main(context.Background(), []string{"setup", "--server", "http://127.0.0.1:1", "--pairs", "2", "--warmup", "0"}, &out, &errOut)
	if err == nil || !strings.Contains(err.Error(), "no pair could be set up") {
		t.Errorf("err = %v", err)
	}
	if !strings.Contains(errOut.String(), "pair 0") {
		t.Errorf("the pair errors are not reported: %q", errOut.String())
	}
}

func TestParseSetupOptions(t *testing.T) {
	tests := []parseCase[setupOptions]{
		{"defaults", nil, func(o *setupOptions) bool {
			return o.server == "" && o.pairs == 200 && o.warmup == 5 && o.concurrency == 1 && o.loopback && o.pairTimeout == 10*time.Second
		}, false},
		{"all", []string{"--server", "http://h:1", "--pairs", "7", "--warmup", "0", "--concurrency", "4", "--loopback=false", "--pair-timeout", "2s"},
			func(o *setupOptions) bool {
				return o.server == "http://h:1" && o.pairs == 7 && o.warmup == 0 && o.concurrency == 4 && !o.loopback && o.pairTimeout == 2*time.Second
			}, false},
		{"zero pairs", []string{"--pairs", "0"}, nil, true},
		{"negative warmup", []string{"--warmup", "-1"}, nil, true},
		{"too concurrent", []string{"--concurrency", "65"}, nil, true},
		{"zero timeout", []string{"--pair-timeout", "0s"}, nil, true},
		{"flag of another mode", []string{"--proto", "native"}, nil, true},
		{"stray argument", []string{"extra"}, nil, true},
	}
	runParseCases(t, tests, parseSetupOptions)
}

func TestPeerModesHelp(t *testing.T) {
	for mode, want := range map[string]string{"setup": `"bench connect"`, "throughput": "data-channels-flow-control"} {
		var out, errOut bytes.Buffer
		if err := Main(context.Background(), []string{mode, "--help"}, &out, &errOut); err != nil {
			t.Errorf("%s --help: err = %v", mode, err)
		}
		if !strings.Contains(errOut.String(), want) || !strings.Contains(errOut.String(), "-server") {
			t.Errorf("%s --help:\n%s", mode, &errOut)
		}
	}
	var out, errOut bytes.Buffer
	_ = Main(context.Background(), []string{"--help"}, &out, &errOut)
	for _, mode := range []string{"setup", "throughput"} {
		if !strings.Contains(errOut.String(), "\n  "+mode+" ") && !strings.Contains(errOut.String(), "\n  "+mode+"\n") {
			t.Errorf("bench --help does not list %s:\n%s", mode, &errOut)
		}
	}
}

func TestRatio(t *testing.T) {
	if got := ratio(3*time.Millisecond, 2*time.Millisecond); got != 1.5 {
		t.Errorf("ratio(3ms, 2ms) = %v", got)
	}
	if got := ratio(5.0, 0); got != 0 {
		t.Errorf("ratio(5, 0) = %v", got)
	}
}

// The bare pair queues candidates that arrive before its remote description, as trickle ICE
// delivers them, and still connects.
func TestBarePairQueuesEarlyCandidates(t *testing.T) {
	api := webrtc.NewAPI(webrtc.WithSettingEngine(bareSettingEngine()))
	p, err := newBarePair(api)
	if err != nil {
		t.Fatal(err)
	}
	defer p.close()
	early := webrtc.ICECandidateInit{Candidate: "candidate:1 1 udp 2130706431 127.0.0.1 9 typ host"}
	if err := p.answer.addCandidate(early); err != nil {
		t.Fatal(err)
	}
	if len(p.answer.pending) != 1 {
		t.Fatalf("pending %d, want 1", len(p.answer.pending))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	open := make(chan struct{})
	dc, err := p.offer.pc.CreateDataChannel("t", nil)
	if err != nil {
		t.Fatal(err)
	}
	dc.OnOpen(func() { close(open) })
	if err := p.negotiate(); err != nil {
		t.Fatal(err)
	}
	if err := p.wait(ctx, open); err != nil {
		t.Fatal(err)
	}
	p.answer.mu.Lock()
	defer p.answer.mu.Unlock()
	if len(p.answer.pending) != 0 {
		t.Errorf("pending %d after the remote description", len(p.answer.pending))
	}
}
