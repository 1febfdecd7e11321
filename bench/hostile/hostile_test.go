package main

import (
	"bytes"
	"net/netip"
	"strings"
	"testing"
	"time"
)

func TestAddrRange(t *testing.T) {
	got, err := addrRange(netip.MustParseAddr("127.1.0.253"), 4)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"127.1.0.253", "127.1.0.254", "127.1.1.1", "127.1.1.2"} // .255 and .0 skipped
	if len(got) != len(want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	for i := range want {
		if got[i].String() != want[i] {
			t.Errorf("address %d = %s, want %s", i, got[i], want[i])
		}
	}
	for _, bad := range []struct {
		first string
		n     int
	}{{"10.0.0.1", 1}, {"127.0.0.1", 0}, {"127.255.255.250", 10}, {"::1", 1}} {
		if _, err := addrRange(netip.MustParseAddr(bad.first), bad.n); err == nil {
			t.Errorf("addrRange(%s, %d): no error", bad.first, bad.n)
		}
	}
}

func TestClientsFor(t *testing.T) {
	for _, c := range []struct{ size, per, want int }{
		{1000, 64, 16}, {100_000, 64, 1563}, {4096, 64, 64}, {4200, 32, 132}, {6000, 256, 24},
		{30_000, 256, 118}, {490, 256, 2}, {256, 256, 1}, {5000, 0, 1}, {0, 64, 1},
	} {
		if got := clientsFor(c.size, c.per); got != c.want {
			t.Errorf("clientsFor(%d, %d) = %d, want %d", c.size, c.per, got, c.want)
		}
	}
}

func TestTallyAndResultLine(t *testing.T) {
	tl := newTally()
	tl.add("429", 3)
	tl.add("ok", 2)
	tl.add("zero", 0)
	tl.add("101", 1)
	if got, want := tl.String(), "101:1,429:3,ok:2"; got != want {
		t.Errorf("tally = %q, want %q", got, want)
	}
	if got := newTally().String(); got != "-" {
		t.Errorf("empty tally = %q, want -", got)
	}
	sum := newTally()
	addCounts(sum, "101:1,429:3")
	addCounts(sum, "429:2,junk,eof:x")
	if got, want := sum.String(), "101:1,429:5"; got != want {
		t.Errorf("addCounts = %q, want %q", got, want)
	}

	r := newResult(5, "ws-drip")
	r.add("outcomes", tl.String())
	r.add("note", "has spaces=and equals")
	r.add("empty", "")
	r.int("t0", 1234)
	line := r.String()
	if !strings.HasPrefix(line, "RESULT attack=5 name=ws-drip ") {
		t.Fatalf("line = %q", line)
	}
	kv := parseKV(line)
	for k, want := range map[string]string{"attack": "5", "outcomes": "101:1,429:3,ok:2", "note": "has_spaces_and_equals",
		"empty": "-", "t0": "1234"} {
		if kv[k] != want {
			t.Errorf("%s = %q, want %q", k, kv[k], want)
		}
	}
}

func TestParseSS(t *testing.T) {
	out := []byte("LISTEN 0 4096 127.0.0.1:18590 0.0.0.0:*\n" +
		"\t skmem:(r0,rb131072,t0,tb16384,f0,w0,o0,bl0,d0)\n" +
		"ESTAB 0 3981312 127.0.0.1:18590 127.1.0.1:40000\n" +
		"\t skmem:(r0,rb131072,t0,tb4194304,f1792,w4001536,o0,bl0,d0)\n" +
		"ESTAB 0 0 127.0.0.1:18590 127.1.0.1:40002\n" +
		"\t skmem:(r4096,rb131072,t0,tb16384,f100,w0,o8,bl4,d3)\n" +
		"TIME-WAIT 0 0 127.0.0.1:18590 127.1.0.1:40004\n" +
		"FIN-WAIT-2 0 0 127.0.0.1:18590 127.1.0.1:40006\n" +
		"\t skmem:(r0,rb131072,t0,tb16384,f0,w0,o0,bl0,d0)\n")
	s := parseSS(out)
	if s.n != 3 {
		t.Errorf("sockets = %d, want 3 (LISTEN and TIME-WAIT not counted)", s.n)
	}
	// r + w + f + o + bl of the counted sockets; rb, tb, t and d are limits or counters.
	if want := int64(1792 + 4001536 + 4096 + 100 + 8 + 4); s.buf != want {
		t.Errorf("buffers = %d, want %d", s.buf, want)
	}
	if got, want := s.kernelBytes(), s.buf+3*tcpSocketBytes; got != want {
		t.Errorf("kernelBytes = %d, want %d", got, want)
	}
}

func TestMetrics(t *testing.T) {
	a, err := parseMetrics(strings.NewReader(`# HELP x
switchboard_connections 3
switchboard_connections_refused_total{reason="client-sessions"} 10
switchboard_turn_refused_total{reason="tcp-per-client"} 0
switchboard_memory_budget_bytes 1.073741824e+09
go_gc_duration_seconds_count 5
`))
	if err != nil {
		t.Fatal(err)
	}
	b, err := parseMetrics(strings.NewReader(`switchboard_connections 7
switchboard_connections_refused_total{reason="client-sessions"} 15
switchboard_turn_refused_total{reason="tcp-per-client"} 0
switchboard_timeouts_total{what="ws-frame",x="y"} 2
switchboard_memory_budget_bytes 1.073741824e+09
go_gc_duration_seconds_count 9
go_memstats_frees_total 99
`))
	if err != nil {
		t.Fatal(err)
	}
	if got, want := counterDeltas(a, b), "connections_refused_total[client-sessions]:+5,timeouts_total[ws-frame/y]:+2"; got != want {
		t.Errorf("counterDeltas = %q, want %q", got, want)
	}
	if got := counterDeltas(b, b); got != "-" {
		t.Errorf("no change: %q, want -", got)
	}
	if got, want := gauges(b), "connections:7,memory_budget_bytes:1073741824"; got != want {
		t.Errorf("gauges = %q, want %q", got, want)
	}
}

func TestCanaryWindowAndSamples(t *testing.T) {
	recs, err := parseCanary(strings.NewReader("# 900 connected in room canary-x\n" +
		"1000 1 1500\n1100 2 -1\n1200 3 2500\n1300 4 30000\n1400 5 900\n"))
	if err != nil {
		t.Fatal(err)
	}
	w := windowCanary(recs, 1100, 1300)
	if w.sent != 3 || w.lost != 1 || w.lat.n != 2 {
		t.Errorf("window = %+v, want 3 sent, 1 lost, 2 latencies", w)
	}
	if w.lat.p50 != 2500*time.Microsecond || w.lat.p99 != 30*time.Millisecond {
		t.Errorf("p50 %v p99 %v, want 2.5ms 30ms", w.lat.p50, w.lat.p99)
	}
	if _, err := parseCanary(strings.NewReader("1000 1\n")); err == nil {
		t.Error("a line of 2 fields: no error")
	}

	ss, err := parseSamples(strings.NewReader("900 1000 10\n1000 1200 11 500 9000\n1100 5000 400 550 9100\n1200 3000 300 650 9200\n1300 900 9 700 9300\n"))
	if err != nil {
		t.Fatal(err)
	}
	sw := windowSamples(ss, 1050, 1250)
	if sw.baseKB != 1200 || sw.peakKB != 5000 || sw.peakFDs != 400 || sw.n != 2 {
		t.Errorf("server window = %+v, want base 1200, peak 5000 KiB, 400 fds, 2 samples", sw)
	}
	// 100 ms of server CPU and 100 ms of machine time in the 100 ms between the samples.
	if srv, busy, ok := sw.cpu(); !ok || srv != 100 || busy != 100 {
		t.Errorf("cpu = %v %v %v, want 100 100 true", srv, busy, ok)
	}
	r := row{kv: map[string]string{"attack": "1", "t0": "1050", "t1": "1250", "atk_cpu_ms": "40"}, server: sw}
	if srv, other := r.cpuCols(); srv != "100" || other != "0" {
		t.Errorf("cpuCols = %s %s, want 100 0 (the attacker's 20%% is more than what is left)", srv, other)
	}
	if _, _, ok := windowSamples(ss, 0, 950).cpu(); ok {
		t.Error("cpu from a window whose sample has no CPU times")
	}
	if _, err := parseSamples(strings.NewReader("1 x 2\n")); err == nil {
		t.Error("a bad RSS: no error")
	}
}

func TestProcParsers(t *testing.T) {
	d, err := parseStatCPU([]byte("1234 (a (weird) name) S 1 2 3 4 5 6 7 8 9 10 250 50 0 0 20 0 1"))
	if err != nil || d != 3*time.Second {
		t.Errorf("parseStatCPU = %v, %v; want 3s", d, err)
	}
	if _, err := parseStatCPU([]byte("1234 (x) S 1 2")); err == nil {
		t.Error("short stat: no error")
	}
	b, err := parseBusy([]byte("cpu  100 10 50 9000 40 5 5 1 0 0\ncpu0 1 2 3\n"))
	if err != nil || b != 1610*time.Millisecond { // 100+10+50+1 ticks: idle, iowait, irq, softirq left out
		t.Errorf("parseBusy = %v, %v; want 1.61s", b, err)
	}
	kb, err := parseStatusKB([]byte("Name:\tx\nVmHWM:\t  900 kB\nVmRSS:\t  800 kB\n"), "VmRSS:")
	if err != nil || kb != 800 {
		t.Errorf("parseStatusKB = %d, %v; want 800", kb, err)
	}
}

func TestPercentile(t *testing.T) {
	var d []time.Duration
	for i := 1; i <= 200; i++ {
		d = append(d, time.Duration(201-i)*time.Millisecond) // unsorted on purpose
	}
	l := summarize(d)
	if l.n != 200 || l.p50 != 100*time.Millisecond || l.p99 != 198*time.Millisecond || l.max != 200*time.Millisecond {
		t.Errorf("summarize = %+v", l)
	}
	if d[0] != 200*time.Millisecond {
		t.Error("summarize sorted its argument")
	}
	if z := summarize(nil); z.n != 0 || z.p99 != 0 {
		t.Errorf("empty = %+v", z)
	}
}

func TestReportGoals(t *testing.T) {
	mk := func(kv map[string]string, lost int, p99 time.Duration, base, peak int64) row {
		return row{kv: kv, canary: canaryWindow{sent: 100, lost: lost, lat: latency{n: 100, p50: time.Millisecond, p99: p99}},
			server: serverWindow{baseKB: base, peakKB: peak, peakFDs: 50, n: 10}}
	}
	good := mk(map[string]string{"attack": "5", "name": "ws-drip", "newcomer": "ok", "srv_kmem": "1000000", "atk_kmem": "1000000"},
		0, 5*time.Millisecond, 20_000, 20_500)
	if m := good.misses(1 << 30); len(m) != 0 {
		t.Errorf("good row misses %v", m)
	}
	// The heap grew 5 MB where RSS grew 0.5 MB (free heap left by an earlier attack).
	heapy := mk(map[string]string{"attack": "2", "name": "sio-table", "newcomer": "ok", "srv_kmem": "1000000", "atk_kmem": "1000000",
		"srv_gomem": "5000000"}, 0, 5*time.Millisecond, 20_000, 20_500)
	if c, _ := heapy.serverCost(); c != 6_000_000 {
		t.Errorf("serverCost = %d, want the heap's 5 MB + 1 MB of sockets", c)
	}
	if got := strings.Join(heapy.misses(0), ","); got != "cost" {
		t.Errorf("heap row misses %q, want cost", got)
	}
	bad := mk(map[string]string{"attack": "8", "name": "no-read", "newcomer": "FAIL(ws:503)", "srv_kmem": "200000000", "atk_kmem": "500000"},
		2, 80*time.Millisecond, 20_000, 300_000)
	if got, want := strings.Join(bad.misses(100<<20), ","), "lost,p99,budget,newcomer,cost"; got != want {
		t.Errorf("bad row misses %q, want %q", got, want)
	}
	var out bytes.Buffer
	writeReport(&out, []row{mk(map[string]string{"attack": "0", "name": "idle"}, 0, time.Millisecond, 1, 1), good, bad}, 0)
	s := out.String()
	for _, want := range []string{"memory budget: n/a", "| 5 | ws-drip |", "| none |", "| lost, p99, newcomer, cost |", "FAIL(ws:503)"} {
		if !strings.Contains(s, want) {
			t.Errorf("report lacks %q:\n%s", want, s)
		}
	}
}

func TestCutLog(t *testing.T) {
	l := newCutLog()
	if l.String() != "0" {
		t.Errorf("empty = %q", l.String())
	}
	l.add(200 * time.Millisecond)
	l.add(10 * time.Second)
	l.add(10500 * time.Millisecond)
	l.add(30 * time.Second)
	l.stop()
	l.add(time.Second) // the attacker's own close: not recorded
	if got, want := l.String(), "4(<1s:1,9-12s:2,29-32s:1)"; got != want {
		t.Errorf("cuts = %q, want %q", got, want)
	}
}

func TestParsers(t *testing.T) {
	sid, err := parseOpenSID(`0{"sid":"abc","upgrades":["websocket"],"pingInterval":10000}`)
	if err != nil || sid != "abc" {
		t.Errorf("parseOpenSID = %q, %v", sid, err)
	}
	for _, bad := range []string{`{"code":4}`, `0{}`, `0{"sid":`} {
		if _, err := parseOpenSID(bad); err == nil {
			t.Errorf("parseOpenSID(%q): no error", bad)
		}
	}
	w, ok, err := parseWelcome([]byte(`{"type":"welcome","id":1,"peer":"p1","iceServers":[{"urls":["stun:127.0.0.1:3478"]},` +
		`{"urls":["turn:127.0.0.1:3478?transport=udp","turn:127.0.0.1:3478?transport=tcp"],"username":"9:p1","credential":"c"}]}`))
	if err != nil || !ok || w.Peer != "p1" {
		t.Fatalf("parseWelcome = %+v, %v, %v", w, ok, err)
	}
	c, ok := credsFrom(w.ICEServers)
	if !ok || c != (turnCreds{addr: "127.0.0.1:3478", user: "9:p1", pass: "c"}) {
		t.Errorf("credsFrom = %+v, %v", c, ok)
	}
	if _, ok, err := parseWelcome([]byte(`{"type":"peer-joined","peer":{"id":"p2"}}`)); ok || err != nil {
		t.Errorf("peer-joined: ok %v err %v, want skipped", ok, err)
	}
	if _, _, err := parseWelcome([]byte(`{"type":"error","code":"room-full","message":"full"}`)); err == nil {
		t.Error("an error frame: no error")
	}
}
