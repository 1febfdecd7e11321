package bench

import (
	"context"
	"encoding/binary"
	"errors"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestThroughputSmoke(t *testing.T) {
	defer goleak.VerifyNone(t)
	// Under -race Pion moves about 10 MB/s: keep the transfers small.
	m := runMain(t, "throughput", "--bytes", "3000000", "--rounds", "2")
	if m["bytes"] != "3000000" || m["rounds"] != "2" {
		t.Errorf("RESULT %v", m)
	}
	for _, k := range []string{"ours", "stock", "tcp"} {
		if v := num(t, m, k+"_mb_per_s"); v <= 0 {
			t.Errorf("%s: %v MB/s", k, v)
		}
		// MB/s is printed to 0.1 and Mbps to 1: allow for both roundings.
		if mbps, mbs := num(t, m, k+"_mbps"), num(t, m, k+"_mb_per_s"); mbps < 8*(mbs-0.05)-0.5 || mbps > 8*(mbs+0.05)+0.5 {
			t.Errorf("%s: %v Mbps for %v MB/s", k, mbps, mbs)
		}
	}
	if lost := num(t, m, "stock_lost_bytes"); lost < 0 || lost >= 6000000 {
		t.Errorf("stock lost %v of 6000000 bytes", lost)
	}
	if num(t, m, "ratio_stock") <= 0 || num(t, m, "ratio_tcp") <= 0 {
		t.Errorf("ratios %v", m)
	}
}

// A reliable bare transfer with the knobs not covered by the smoke test: OnMessage delivery
// (not detached), an odd message size, a larger SCTP receive buffer, zero checksum.
func TestBareTransferReliable(t *testing.T) {
	defer goleak.VerifyNone(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	k := dcKnobs{msgSize: 3000, maxBuffered: 64 << 10, lowThreshold: 16 << 10, reliable: true,
		recvBuffer: 2 << 20, zeroChecksum: true, udpBuffer: 1 << 20}
	const n = 1_000_001 // not a multiple of the message size
	tr, err := bareTransfer(ctx, k, n)
	if err != nil {
		t.Fatal(err)
	}
	if tr.sent != n || tr.received != n || tr.elapsed <= 0 {
		t.Errorf("transfer %+v", tr)
	}
	if tr.pion == nil || tr.pion.udpRcvbuf.Load() == 0 {
		t.Errorf("udp receive buffer not recorded")
	}
}

func TestTransferTimesOut(t *testing.T) {
	defer goleak.VerifyNone(t)
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	// 1 GB cannot cross in 300 ms, even on TCP: the transfer must stop with the deadline.
	start := time.Now()
	_, err := bareTransfer(ctx, ourKnobs, 1e9)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("err = %v, want deadline exceeded", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("took %v to stop", d)
	}
}

func TestTCPTransfer(t *testing.T) {
	defer goleak.VerifyNone(t)
	tr, err := tcpTransfer(context.Background(), 5_000_003)
	if err != nil {
		t.Fatal(err)
	}
	if tr.sent != 5_000_003 || tr.received != 5_000_003 || tr.mbps() <= 0 {
		t.Errorf("transfer %+v", tr)
	}
}

func TestReceiverChecksOrder(t *testing.T) {
	msg := func(seq uint64, size int) []byte {
		b := make([]byte, size)
		binary.BigEndian.PutUint64(b, seq)
		return b
	}
	r := newReceiver(30, dcKnobs{msgSize: 10, reliable: true})
	r.start.Store(time.Now().UnixNano())
	r.message(msg(0, 10))
	r.message(msg(1, 10))
	if r.err() != nil {
		t.Fatalf("in order: %v", r.err())
	}
	select {
	case <-r.done:
		t.Fatal("done after 20 of 30 bytes")
	default:
	}
	r.message(msg(3, 10)) // 2 is missing
	if r.err() == nil || !strings.Contains(r.err().Error(), "message 3 arrived when 2 was expected") {
		t.Errorf("err = %v", r.err())
	}
	select {
	case <-r.done:
	default:
		t.Fatal("not done after 30 bytes")
	}
	if tr := r.result(30); tr.received != 30 || tr.sent != 30 || tr.elapsed < 0 {
		t.Errorf("result %+v", tr)
	}

	// Unreliable channels lose and reorder messages by design: only bytes are counted.
	u := newReceiver(20, dcKnobs{msgSize: 10})
	u.message(msg(5, 10))
	u.message(msg(2, 10))
	if u.err() != nil || u.got.Load() != 20 {
		t.Errorf("unreliable: err %v, got %d", u.err(), u.got.Load())
	}
}

func TestPionCounters(t *testing.T) {
	c := newPionCounters()
	l := c.NewLogger("sctp")
	// Each association logs its stats twice on close (Close and the end of its read loop).
	for range 2 {
		l.Debugf("[%s] stats nT3Timeouts : %d", "0xc000a", uint64(2))
		l.Debugf("[%s] stats nFastRetrans: %d", "0xc000a", uint64(5))
	}
	l.Debugf("[%s] stats nT3Timeouts : %d", "0xc000b", uint64(1))
	l.Debugf("[%s] stats nDATAs (in) : %d", "0xc000b", uint64(99))
	l.Debugf("unrelated %d", 1)
	c.NewLogger("mux").Infof("mux: endpoint buffer is full, dropping packet")
	c.NewLogger("mux").Infof("something else")
	t3, rtx, drops := c.totals()
	if t3 != 3 || rtx != 5 || drops != 1 {
		t.Errorf("totals = %d, %d, %d; want 3, 5, 1", t3, rtx, drops)
	}
	var nilCounters *pionCounters
	if a, b, d := nilCounters.totals(); a != 0 || b != 0 || d != 0 {
		t.Error("nil counters are not zero")
	}
}

func TestMedianAndSizes(t *testing.T) {
	for _, tt := range []struct {
		xs   []float64
		want float64
	}{{nil, 0}, {[]float64{3}, 3}, {[]float64{9, 1, 5}, 5}, {[]float64{4, 1, 3, 2}, 2.5}} {
		if got := median(tt.xs); got != tt.want {
			t.Errorf("median(%v) = %v, want %v", tt.xs, got, tt.want)
		}
	}
	xs := []float64{3, 1, 2}
	median(xs)
	if xs[0] != 3 {
		t.Error("median sorted its argument")
	}
	for n, want := range map[uint64]string{0: "0 B", 1000: "1000 B", 1024: "1 KiB", 1536: "1536 B", 64 << 10: "64 KiB", 4 << 20: "4 MiB", 256 << 20: "256 MiB"} {
		if got := sizeStr(n); got != want {
			t.Errorf("sizeStr(%d) = %q, want %q", n, got, want)
		}
	}
	if got := (transfer{received: 5_000_000, elapsed: 2 * time.Second}).mbps(); got != 2.5 {
		t.Errorf("mbps = %v", got)
	}
	if got := (transfer{received: 5}).mbps(); got != 0 {
		t.Errorf("mbps without time = %v", got)
	}
}

func TestKnobDescriptions(t *testing.T) {
	if got, want := stockKnobs.String(), "unordered maxRetransmits=0, 1 KiB msgs, high 1 MiB, low 512 KiB"; got != want {
		t.Errorf("stock: %q, want %q", got, want)
	}
	got := ourKnobs.String()
	for _, want := range []string{"ordered reliable", "64 KiB msgs", "detached", "udp socket buffers 4 MiB"} {
		if !strings.Contains(got, want) {
			t.Errorf("ours: %q lacks %q", got, want)
		}
	}
}

func TestParseThroughputOptions(t *testing.T) {
	tests := []parseCase[throughputOptions]{
		{"defaults", nil, func(o *throughputOptions) bool {
			return o.bytes == 256<<20 && o.rounds == 1 && o.loopback && o.server == "" && o.ours == ourKnobs && o.only == ""
		}, false},
		{"knobs", []string{"--message-size", "1024", "--max-buffered", "100", "--low-threshold", "50", "--detach=false",
			"--sctp-receive-buffer", "8388608", "--udp-buffer", "0", "--sctp-rto-max", "200ms", "--zero-checksum", "--only", "ours,tcp"},
			func(o *throughputOptions) bool {
				k := o.ours
				return k.msgSize == 1024 && k.maxBuffered == 100 && k.lowThreshold == 50 && !k.detach && k.recvBuffer == 8<<20 &&
					k.udpBuffer == 0 && k.rtoMax == 200*time.Millisecond && k.zeroChecksum && k.reliable && o.only == "ours,tcp"
			}, false},
		{"zero bytes", []string{"--bytes", "0"}, nil, true},
		{"tiny message", []string{"--message-size", "4"}, nil, true},
		{"low above high", []string{"--max-buffered", "10", "--low-threshold", "20"}, nil, true},
		{"zero rounds", []string{"--rounds", "0"}, nil, true},
		{"unknown transfer", []string{"--only", "ours,udp"}, nil, true},
		{"negative udp buffer", []string{"--udp-buffer", "-1"}, nil, true},
		{"negative rto", []string{"--sctp-rto-max", "-1s"}, nil, true},
		{"stray argument", []string{"extra"}, nil, true},
	}
	runParseCases(t, tests, parseThroughputOptions)
}
