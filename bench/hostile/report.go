package main

import (
	"bufio"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"
)

// The report: the canary's log, the server's samples and the attacks' RESULT lines turned
// into one table, a row per attack, with the goals checked on each.

// Goals of issue 12, per attack.
const (
	goalP99 = 20 * time.Millisecond
	// costSlack is how much more than the attacker's socket memory the server may take
	// before the row says it cost more: RSS sampled every 200 ms moves by about this much
	// with no attack at all (heap growth, GC timing).
	costSlack = 1 << 20
	// otherCPUWarn is the share of a core other work may take before a row is flagged.
	otherCPUWarn = 25
)

// canaryRec is one canary message: when it was sent and its latency (-1: lost).
type canaryRec struct {
	sentMS int64
	latUS  int64
}

// parseCanary reads a canary log; # lines are skipped.
func parseCanary(r io.Reader) ([]canaryRec, error) {
	var out []canaryRec
	sc := bufio.NewScanner(r)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' {
			continue
		}
		f := strings.Fields(line)
		if len(f) != 3 {
			return nil, fmt.Errorf("canary log line %d: want 3 fields, got %q", n, line)
		}
		sent, err1 := strconv.ParseInt(f[0], 10, 64)
		lat, err2 := strconv.ParseInt(f[2], 10, 64)
		if err := errors.Join(err1, err2); err != nil {
			return nil, fmt.Errorf("canary log line %d: %w", n, err)
		}
		out = append(out, canaryRec{sentMS: sent, latUS: lat})
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read canary log: %w", err)
	}
	return out, nil
}

// canaryWindow is the canary's messages sent within one window.
type canaryWindow struct {
	sent, lost int
	lat        latency
}

func windowCanary(recs []canaryRec, t0, t1 int64) canaryWindow {
	var w canaryWindow
	var lats []time.Duration
	for _, r := range recs {
		if r.sentMS < t0 || r.sentMS > t1 {
			continue
		}
		w.sent++
		if r.latUS < 0 {
			w.lost++
			continue
		}
		lats = append(lats, time.Duration(r.latUS)*time.Microsecond)
	}
	w.lat = summarize(lats)
	return w
}

// sample is one sample of the server: RSS in KiB, open descriptors, and the CPU time in ms
// the server and the whole machine had used (-1: not sampled).
type sample struct {
	ms, rssKB     int64
	fds           int
	cpuMS, busyMS int64
}

func parseSamples(r io.Reader) ([]sample, error) {
	var out []sample
	sc := bufio.NewScanner(r)
	for n := 1; sc.Scan(); n++ {
		f := strings.Fields(sc.Text())
		if len(f) == 0 {
			continue
		}
		if len(f) != 3 && len(f) != 5 {
			return nil, fmt.Errorf("samples line %d: want 3 or 5 fields, got %q", n, sc.Text())
		}
		t, err1 := strconv.ParseInt(f[0], 10, 64)
		rss, err2 := strconv.ParseInt(f[1], 10, 64)
		fds, err3 := strconv.Atoi(f[2])
		s := sample{ms: t, rssKB: rss, fds: fds, cpuMS: -1, busyMS: -1}
		var err4, err5 error
		if len(f) == 5 {
			s.cpuMS, err4 = strconv.ParseInt(f[3], 10, 64)
			s.busyMS, err5 = strconv.ParseInt(f[4], 10, 64)
		}
		if err := errors.Join(err1, err2, err3, err4, err5); err != nil {
			return nil, fmt.Errorf("samples line %d: %w", n, err)
		}
		out = append(out, s)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read samples: %w", err)
	}
	return out, nil
}

// serverWindow is the server's peak within a window, its RSS just before, and the CPU time
// the server and the machine used between the window's first and last samples.
type serverWindow struct {
	baseKB, peakKB int64
	peakFDs        int
	n              int
	first, last    sample
}

func windowSamples(ss []sample, t0, t1 int64) serverWindow {
	var w serverWindow
	for _, s := range ss {
		if s.ms < t0 {
			w.baseKB = s.rssKB
			continue
		}
		if s.ms > t1 {
			break
		}
		if w.n == 0 {
			w.first = s
			if w.baseKB == 0 {
				w.baseKB = s.rssKB
			}
		}
		w.last = s
		w.n++
		w.peakKB = max(w.peakKB, s.rssKB)
		w.peakFDs = max(w.peakFDs, s.fds)
	}
	return w
}

// cpu returns the server's CPU and the machine's busy time over the window, as percentages
// of one core; ok is false without two samples that carry CPU times.
func (w serverWindow) cpu() (server, machine float64, ok bool) {
	span := w.last.ms - w.first.ms
	if w.n < 2 || span <= 0 || w.first.cpuMS < 0 || w.last.cpuMS < 0 {
		return 0, 0, false
	}
	return 100 * float64(w.last.cpuMS-w.first.cpuMS) / float64(span),
		100 * float64(w.last.busyMS-w.first.busyMS) / float64(span), true
}

// row is one attack's line of the table.
type row struct {
	kv     map[string]string
	canary canaryWindow
	server serverWindow
}

func (r row) int(k string) (int64, bool) {
	v, err := strconv.ParseInt(r.kv[k], 10, 64)
	return v, err == nil
}

// serverCost is what the attack cost the server: its RSS growth over the window, or the
// growth of its Go heap and stacks in use at the peak when that is more (an earlier attack
// may have left free memory to reuse, which RSS does not show), plus the kernel memory of
// its sockets at the peak.
func (r row) serverCost() (int64, bool) {
	k, ok := r.int("srv_kmem")
	if !ok || r.server.n == 0 {
		return 0, false
	}
	grew := max(0, r.server.peakKB-r.server.baseKB) * 1024
	if h, ok := r.int("srv_gomem"); ok {
		grew = max(grew, h)
	}
	return grew + k, true
}

// misses lists the goals the row does not meet.
func (r row) misses(budget int64) []string {
	var m []string
	if r.canary.lost > 0 || r.canary.sent == 0 {
		m = append(m, "lost")
	}
	if r.canary.lat.p99 > goalP99 {
		m = append(m, "p99")
	}
	if budget > 0 && r.server.peakKB*1024 > budget {
		m = append(m, "budget")
	}
	if nc := r.kv["newcomer"]; nc != "" && nc != "ok" {
		m = append(m, "newcomer")
	}
	if cost, ok := r.serverCost(); ok {
		if atk, ok := r.int("atk_kmem"); ok && cost > atk+costSlack {
			m = append(m, "cost")
		}
	}
	return m
}

// cpuCols are the server's CPU and everything else's, but the attacker's, as percentages of
// one core ("-" when unknown): the attacker reports its own (atk_cpu_ms), the canary's is
// small, the rest is other work on the machine, which disturbs the canary's latency.
func (r row) cpuCols() (server, other string) {
	srv, busy, ok := r.server.cpu()
	if !ok {
		return "-", "-"
	}
	server = strconv.FormatFloat(srv, 'f', 0, 64)
	t0, ok0 := r.int("t0")
	t1, ok1 := r.int("t1")
	atk, okA := r.int("atk_cpu_ms")
	if r.kv["attack"] == "0" {
		atk, okA = 0, true
	}
	if !ok0 || !ok1 || !okA || t1 <= t0 {
		return server, "-"
	}
	o := busy - srv - 100*float64(atk)/float64(t1-t0)
	return server, strconv.FormatFloat(max(o, 0), 'f', 0, 64)
}

func mib(b int64) string { return strconv.FormatFloat(float64(b)/(1<<20), 'f', 1, 64) }

// writeReport prints the table and, under it, each attack's own figures.
func writeReport(w io.Writer, rows []row, budget int64) {
	budgetS := "n/a"
	if budget > 0 {
		budgetS = mib(budget) + " MiB"
	}
	fmt.Fprintf(w, "memory budget: %s; goals per attack: 0 canary messages lost, canary p99 <= %d ms, peak RSS <= budget, newcomer served, server cost <= attacker's socket memory\n\n",
		budgetS, goalP99.Milliseconds())
	fmt.Fprintln(w, "| # | attack | size | addrs | canary sent/lost | p50 ms | p99 ms | max ms | peak RSS MiB | ΔRSS MiB | peak fds | newcomer | server cost MiB | attacker sockets MiB | cost ratio | server CPU % | other CPU % | goals missed |")
	fmt.Fprintln(w, "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|---:|---:|---:|---:|---|")
	for _, r := range rows {
		cost, atk, ratio := "-", "-", "-"
		c, cok := r.serverCost()
		a, aok := r.int("atk_kmem")
		if cok {
			cost = mib(c)
		}
		if aok {
			atk = mib(a)
		}
		if cok && aok && a > 0 {
			ratio = strconv.FormatFloat(float64(c)/float64(a), 'f', 1, 64)
		}
		missed := "-"
		if r.kv["attack"] != "0" {
			if m := r.misses(budget); len(m) > 0 {
				missed = strings.Join(m, ", ")
			} else {
				missed = "none"
			}
		}
		nc := r.kv["newcomer"]
		if nc == "" {
			nc = "-"
		}
		srvCPU, otherCPU := r.cpuCols()
		fmt.Fprintf(w, "| %s | %s | %s | %s | %d/%d | %.1f | %.1f | %.1f | %s | %s | %d | %s | %s | %s | %s | %s | %s | %s |\n",
			r.kv["attack"], r.kv["name"], orDash(r.kv["size"]), orDash(r.kv["addrs"]), r.canary.sent, r.canary.lost,
			ms(r.canary.lat.p50), ms(r.canary.lat.p99), ms(r.canary.lat.max),
			mib(r.server.peakKB*1024), mib((r.server.peakKB-r.server.baseKB)*1024), r.server.peakFDs,
			nc, cost, atk, ratio, srvCPU, otherCPU, missed)
	}
	fmt.Fprintln(w)
	for _, r := range rows {
		if _, other := r.cpuCols(); other != "-" {
			if o, _ := strconv.Atoi(other); o > otherCPUWarn {
				fmt.Fprintf(w, "WARNING: other work on the machine used %d%% of a core during %s %s: its latency figures are disturbed\n",
					o, r.kv["attack"], r.kv["name"])
			}
		}
	}
	fmt.Fprintln(w)
	known := map[string]bool{"attack": true, "name": true, "size": true, "addrs": true, "t0": true, "t1": true,
		"peak_ms": true, "newcomer": true}
	for _, r := range rows {
		var extra []string
		keys := make([]string, 0, len(r.kv))
		for k := range r.kv {
			if !known[k] {
				keys = append(keys, k)
			}
		}
		slices.SortFunc(keys, func(a, b string) int {
			if d := order(a) - order(b); d != 0 {
				return d
			}
			return strings.Compare(a, b)
		})
		for _, k := range keys {
			extra = append(extra, k+"="+r.kv[k])
		}
		if len(extra) > 0 {
			fmt.Fprintf(w, "%s %s: %s\n", r.kv["attack"], r.kv["name"], strings.Join(extra, " "))
		}
	}
}

// order puts the attack's own figures first, then sockets, then the server's counters.
func order(k string) int {
	switch {
	case k == "counters":
		return 3
	case k == "gauges":
		return 2
	case strings.HasPrefix(k, "srv_") || strings.HasPrefix(k, "atk_") || k == "newcomer_ms":
		return 1
	}
	return 0
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func runReport(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("report", flag.ContinueOnError)
	fs.SetOutput(stderr)
	canaryPath := fs.String("canary", "canary.log", "the canary's log")
	samplesPath := fs.String("samples", "samples.log", "the sampler's log")
	resultsPath := fs.String("results", "results.txt", "RESULT lines, one per attack (attack=0: the idle baseline)")
	budget := fs.Int64("budget", 0, "the server's memory budget in bytes (0: none known)")
	if err := fs.Parse(args); err != nil {
		return errUsage
	}
	read := func(path string) (*os.File, error) {
		f, err := os.Open(path)
		if err != nil {
			return nil, fmt.Errorf("open: %w", err)
		}
		return f, nil
	}
	cf, err := read(*canaryPath)
	if err != nil {
		return err
	}
	recs, err := parseCanary(cf)
	_ = cf.Close()
	if err != nil {
		return err
	}
	sf, err := read(*samplesPath)
	if err != nil {
		return err
	}
	samples, err := parseSamples(sf)
	_ = sf.Close()
	if err != nil {
		return err
	}
	rf, err := read(*resultsPath)
	if err != nil {
		return err
	}
	defer func() { _ = rf.Close() }()
	var rows []row
	sc := bufio.NewScanner(rf)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		if !strings.HasPrefix(sc.Text(), "RESULT ") {
			continue
		}
		kv := parseKV(sc.Text())
		t0, err1 := strconv.ParseInt(kv["t0"], 10, 64)
		t1, err2 := strconv.ParseInt(kv["t1"], 10, 64)
		if err := errors.Join(err1, err2); err != nil {
			return fmt.Errorf("RESULT line without t0/t1: %q", sc.Text())
		}
		rows = append(rows, row{kv: kv, canary: windowCanary(recs, t0, t1), server: windowSamples(samples, t0, t1)})
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("read results: %w", err)
	}
	writeReport(stdout, rows, *budget)
	return nil
}
