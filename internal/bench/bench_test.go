package bench

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
)

// resultFields parses the RESULT line of out.
func resultFields(t *testing.T, out string) map[string]string {
	t.Helper()
	for line := range strings.Lines(out) {
		if rest, ok := strings.CutPrefix(line, "RESULT "); ok {
			m := map[string]string{}
			for _, kv := range strings.Fields(rest) {
				k, v, _ := strings.Cut(kv, "=")
				m[k] = v
			}
			return m
		}
	}
	t.Fatalf("no RESULT line in:\n%s", out)
	return nil
}

func num(t *testing.T, m map[string]string, k string) float64 {
	t.Helper()
	v, err := strconv.ParseFloat(m[k], 64)
	if err != nil {
		t.Fatalf("RESULT %s=%q: %v", k, m[k], err)
	}
	return v
}

func runMain(t *testing.T, args ...string) map[string]string {
	t.Helper()
	var out, errOut bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := Main(ctx, args, &out, &errOut); err != nil {
		t.Fatalf("Main(%q): %v\nstdout:\n%s\nstderr:\n%s", args, err, &out, &errOut)
	}
	if errOut.Len() > 0 {
		t.Errorf("stderr:\n%s", &errOut)
	}
	t.Logf("%s", &out)
	return resultFields(t, out.String())
}

func TestSignalAgainstFakeServer(t *testing.T) {
	defer goleak.VerifyNone(t)
	for _, p := range []protoKind{protoNative, protoSocketIO} {
		for _, rate := range []string{"0", "600"} {
			t.Run(p.String()+"/rate="+rate, func(t *testing.T) {
				f := newFakeServer(t)
				m := runMain(t, "signal", "--proto", p.String(), "--url", f.url(p), "--pairs", "10", "--rate", rate,
					"--warmup", "200ms", "--duration", "1s", "--source-ips", "3", "--pid", strconv.Itoa(os.Getpid()))
				if m["errors"] != "0" {
					t.Errorf("errors=%s", m["errors"])
				}
				// Rates are for benchmarks (a loaded machine slows everything): here, that
				// messages flowed and that pacing never overshoots.
				rateF := num(t, m, "msgs_per_s")
				if rateF <= 0 {
					t.Errorf("no messages: %v msgs/s", rateF)
				}
				if rate == "600" && rateF > 750 {
					t.Errorf("paced at 600: %v msgs/s", rateF)
				}
				if num(t, m, "p50_ms") <= 0 || num(t, m, "max_ms") < num(t, m, "p99_ms") {
					t.Errorf("latencies %v", m)
				}
				if m["cpu_us_per_msg"] == "NA" || m["rss_kb"] == "NA" {
					t.Errorf("with --pid, want CPU and RSS: %v", m)
				}
			})
		}
	}
}

// --url2 sends the callers to a second URL (here the same server under another name).
func TestSignalSplitAcrossTwoURLs(t *testing.T) {
	defer goleak.VerifyNone(t)
	t.Run("native", func(t *testing.T) { // the fake server stops when the subtest ends
		f := newFakeServer(t)
		u := f.url(protoNative)
		m := runMain(t, "signal", "--url", u, "--url2", strings.Replace(u, "127.0.0.1", "localhost", 1),
			"--pairs", "4", "--warmup", "100ms", "--duration", "500ms")
		if m["errors"] != "0" || m["nodes"] != "2" || num(t, m, "msgs_per_s") <= 0 {
			t.Errorf("RESULT %v", m)
		}
	})
}

func TestIdleAgainstFakeServer(t *testing.T) {
	defer goleak.VerifyNone(t)
	for _, p := range []protoKind{protoNative, protoSocketIO} {
		for _, roomSize := range []string{"1", "2"} {
			t.Run(p.String()+"/room-size="+roomSize, func(t *testing.T) {
				f := newFakeServer(t)
				f.pingSocketIO = true
				m := runMain(t, "idle", "--proto", p.String(), "--url", f.url(p), "--conns", "40", "--room-size", roomSize,
					"--settle", "200ms", "--concurrency", "7", "--pid", strconv.Itoa(os.Getpid()))
				if m["connected"] != "40" || m["alive"] != "40" || m["errors"] != "0" {
					t.Errorf("RESULT %v", m)
				}
				if m["bytes_per_conn"] == "NA" {
					t.Errorf("with --pid, want bytes_per_conn: %v", m)
				}
				if p == protoSocketIO {
					// The server may still be reading the last pongs when Main returns.
					deadline := time.Now().Add(3 * time.Second)
					for f.pongs.Load() < 40 && time.Now().Before(deadline) {
						time.Sleep(10 * time.Millisecond)
					}
					if n := f.pongs.Load(); n != 40 {
						t.Errorf("engine.io pongs %d, want 40", n)
					}
				}
			})
		}
	}
}

func TestConnectAgainstFakeServer(t *testing.T) {
	defer goleak.VerifyNone(t)
	for _, p := range []protoKind{protoNative, protoSocketIO} {
		t.Run(p.String(), func(t *testing.T) {
			f := newFakeServer(t)
			m := runMain(t, "connect", "--proto", p.String(), "--url", f.url(p), "--concurrency", "4",
				"--warmup", "100ms", "--duration", "500ms")
			if m["errors"] != "0" || num(t, m, "handshakes_per_s") <= 0 {
				t.Errorf("RESULT %v", m)
			}
			if m["cpu_us_per_handshake"] != "NA" {
				t.Errorf("without --pid, want NA: %v", m)
			}
		})
	}
}

func TestSignalSetupFailure(t *testing.T) {
	defer goleak.VerifyNone(t)
	var out, errOut bytes.Buffer
	// Nothing listens on port 1.
	err := Main(context.Background(), []string{"signal", "--url", "ws://127.0.0.1:1/ws", "--pairs", "2", "--dial-timeout", "1s"}, &out, &errOut)
	if err == nil || !strings.Contains(err.Error(), "no pair could be set up") {
		t.Errorf("err = %v", err)
	}
}

func TestSignalInterrupted(t *testing.T) {
	defer goleak.VerifyNone(t)
	f := newFakeServer(t)
	ctx, cancel := context.WithTimeout(context.Background(), 700*time.Millisecond)
	defer cancel()
	var out, errOut bytes.Buffer
	start := time.Now()
	err := Main(ctx, []string{"signal", "--url", f.url(protoNative), "--pairs", "4", "--warmup", "200ms", "--duration", "1m"}, &out, &errOut)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("err = %v, want deadline exceeded", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("took %v to stop", d)
	}
	f.close()
}

func TestParseOptions(t *testing.T) {
	tests := []parseCase[options]{
		{"signal defaults", []string{"signal"}, func(o *options) bool {
			return o.pairs == 500 && o.rate == 0 && o.duration == 10*time.Second && o.warmup == 2*time.Second &&
				o.url == defaultNativeURL && o.proto == protoNative && o.sourceIPs == 8 && o.sdpBytes == defaultSDPBytes
		}, false},
		{"socketio default url", []string{"idle", "--proto", "socketio"}, func(o *options) bool {
			return o.url == defaultSocketIOURL && o.conns == 10000 && o.settle == 5*time.Second && o.roomSize == 1
		}, false},
		{"connect", []string{"connect", "--concurrency", "9", "--pid", "42"}, func(o *options) bool {
			return o.concurrency == 9 && o.pid == 42 && o.duration == 10*time.Second
		}, false},
		{"paced", []string{"signal", "--rate", "3000", "--pairs", "5"}, func(o *options) bool { return o.rate == 3000 && o.pairs == 5 }, false},
		{"two nodes", []string{"signal", "--url", "ws://a/ws", "--url2", "ws://b/ws"}, func(o *options) bool { return o.url2 == "ws://b/ws" }, false},
		{"unknown mode", []string{"flood"}, nil, true},
		{"bad proto", []string{"signal", "--proto", "sse"}, nil, true},
		{"flag of another mode", []string{"connect", "--pairs", "3"}, nil, true},
		{"connect with tokens", []string{"connect", "--api-key", "k1:" + strings.Repeat("s", 32)}, func(o *options) bool {
			return o.apiKey != nil && o.apiKey.ID == "k1"
		}, false},
		{"short api key", []string{"connect", "--api-key", "k1:short"}, nil, true},
		{"tokens over socketio", []string{"connect", "--proto", "socketio", "--api-key", "k1:" + strings.Repeat("s", 32)}, nil, true},
		{"tokens for signal", []string{"signal", "--api-key", "k1:" + strings.Repeat("s", 32)}, nil, true},
		{"zero pairs", []string{"signal", "--pairs", "0"}, nil, true},
		{"room size 3", []string{"idle", "--room-size", "3"}, nil, true},
		{"stray argument", []string{"signal", "extra"}, nil, true},
	}
	runParseCases(t, tests, parseOptions)
}

func TestMainUsage(t *testing.T) {
	var out, errOut bytes.Buffer
	if err := Main(context.Background(), nil, &out, &errOut); !errors.Is(err, ErrUsage) {
		t.Errorf("no args: err = %v", err)
	}
	if !strings.Contains(errOut.String(), "usage: switchboard bench") {
		t.Errorf("usage not printed: %q", errOut.String())
	}
	errOut.Reset()
	if err := Main(context.Background(), []string{"signal", "--help"}, &out, &errOut); err != nil {
		t.Errorf("--help: err = %v", err)
	}
	if !strings.Contains(errOut.String(), "-pairs") {
		t.Errorf("signal --help does not list -pairs: %q", errOut.String())
	}
}

// parseCase is one command line for a mode's option parser: it must fail (wantErr, with an
// error wrapping ErrUsage) or give options for which check holds.
type parseCase[O any] struct {
	name    string
	args    []string
	check   func(*O) bool
	wantErr bool
}

func runParseCases[O any](t *testing.T, tests []parseCase[O], parse func([]string, io.Writer) (*O, error)) {
	t.Helper()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o, err := parse(tt.args, &bytes.Buffer{})
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, wantErr %v", err, tt.wantErr)
			}
			if err != nil {
				if !errors.Is(err, ErrUsage) {
					t.Errorf("err %v does not wrap ErrUsage", err)
				}
				return
			}
			if !tt.check(o) {
				t.Errorf("options %+v", o)
			}
		})
	}
}
