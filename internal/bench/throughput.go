package bench

import (
	"context"
	"flag"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"
)

const throughputUsage = `usage: switchboard bench throughput [flags]

Data channel throughput on loopback, three transfers of --bytes each, run one after the other
in the same process (with --rounds N, N rounds in rotating order):
  ours    two SDK peers through the server, one ordered reliable channel, with the message
          size, buffered-amount watermarks and SettingEngine knobs below
  stock   Pion's data-channels-flow-control example, reproduced: bare Pion pair signaled in
          this process, default SettingEngine plus SetIncludeLoopbackCandidate(true), an
          unordered channel with maxRetransmits 0, 1024-byte messages, send while
          bufferedAmount <= 1 MiB, resume at bufferedAmountLowThreshold 512 KiB
  tcp     a plain loopback TCP connection carrying the same bytes: the physical ceiling
  quic    the same two SDK peers over their QUIC connection (sdk.Peer.QUIC: a second ICE
          session, quic-go), one stream, 64 KiB writes, on the same network as ours (UDP
          buffers, --delay/--jitter/--loss/--rate apply to it too); its setup time is shown
MB/s are 10^6 bytes of payload received per second, from the first send to the last byte
received; Mbps = MB/s × 8. The stock example's channel drops messages by design (Pion
abandons chunks still in flight when maxRetransmits is 0): its figure counts only the bytes
that arrived, and the bytes lost are reported. Each Pion transfer also reports its SCTP T3
retransmission timeouts (each stalls a reliable stream for at least 1 s), fast retransmits,
and packets Pion's ICE mux dropped because a reader fell behind.

flags:
`

// transferNames are the transfers of one round, in order.
var transferNames = []string{"ours", "stock", "tcp", "quic"}

// throughputTarget is the wanted ratio of ours to the stock example.
const throughputTarget = 3.0

type throughputOptions struct {
	server   string
	bytes    int64
	rounds   int
	loopback bool
	timeout  time.Duration
	ours     dcKnobs
	only     string // comma-separated subset of ours,stock,tcp (exploration)
}

func parseThroughputOptions(args []string, stderr io.Writer) (*throughputOptions, error) {
	o := &throughputOptions{ours: ourKnobs}
	fs := flag.NewFlagSet("switchboard bench throughput", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, throughputUsage)
		fs.PrintDefaults()
	}
	fs.StringVar(&o.server, "server", "", "switchboard server URL (default: start one in-process on 127.0.0.1:0)")
	fs.Int64Var(&o.bytes, "bytes", 256<<20, "bytes per transfer")
	fs.IntVar(&o.rounds, "rounds", 1, "rounds of the three transfers (figures are medians)")
	fs.BoolVar(&o.loopback, "loopback", true, "SDK peers use the loopback SettingEngine of sdk.Options.Loopback")
	fs.DurationVar(&o.timeout, "timeout", 3*time.Minute, "bound on one transfer, setup included")
	fs.IntVar(&o.ours.msgSize, "message-size", ourKnobs.msgSize, "ours: bytes per message")
	fs.Uint64Var(&o.ours.maxBuffered, "max-buffered", ourKnobs.maxBuffered, "ours: stop sending while bufferedAmount is above this")
	fs.Uint64Var(&o.ours.lowThreshold, "low-threshold", ourKnobs.lowThreshold, "ours: bufferedAmountLowThreshold, resume sending below it")
	recv := fs.Uint("sctp-receive-buffer", uint(ourKnobs.recvBuffer), "ours: SCTP max receive buffer in bytes (0: Pion's default, 1 MiB)")
	fs.BoolVar(&o.ours.detach, "detach", ourKnobs.detach, "ours: detached data channels (Read/Write)")
	fs.StringVar(&o.only, "only", "", "run only these transfers (comma-separated: ours,stock,tcp,quic); ratios need them all")
	fs.IntVar(&o.ours.udpBuffer, "udp-buffer", ourKnobs.udpBuffer, "ours: SO_RCVBUF/SO_SNDBUF of the ICE UDP sockets (0: kernel default; capped by net.core.rmem_max)")
	fs.DurationVar(&o.ours.rtoMax, "sctp-rto-max", ourKnobs.rtoMax, "ours: SCTP max retransmission timeout (0: Pion's default)")
	fs.BoolVar(&o.ours.zeroChecksum, "zero-checksum", ourKnobs.zeroChecksum, "ours: SCTP zero checksum (RFC 9653)")
	minCwnd := fs.Uint("sctp-min-cwnd", 0, "ours: SCTP minimum congestion window in bytes (0: Pion's default)")
	fastRtx := fs.Uint("sctp-fast-rtx-wnd", 0, "ours: SCTP fast retransmission window in bytes (0: Pion's default)")
	caStep := fs.Uint("sctp-cwnd-ca-step", 0, "ours: SCTP congestion-avoidance cwnd step in bytes (0: Pion's default)")
	fs.BoolVar(&o.ours.untuned, "untuned", false, "ours: Pion's DTLS replay window and SCTP receive buffer instead of sdk.TuneTransport's (before/after figures)")
	fs.UintVar(&o.ours.dtlsReplay, "dtls-replay-window", 0, "ours: DTLS replay protection window in records (0: Pion's default, 64)")
	fs.DurationVar(&o.ours.impair.Delay, "delay", 0, "ours: one-way delay added to every datagram of both peers (in-process, internal/netimpair)")
	fs.DurationVar(&o.ours.impair.Jitter, "jitter", 0, "ours: ± uniform jitter on that delay, which reorders datagrams")
	fs.Float64Var(&o.ours.impair.Loss, "loss", 0, "ours: probability that a datagram is dropped (0..1)")
	fs.Int64Var(&o.ours.impair.Rate, "rate", 0, "ours: link capacity in bytes/s each way, with a 50 ms drop-tail queue (0: unlimited)")
	if err := fs.Parse(args); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrUsage, err)
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("%w: unexpected argument %q", ErrUsage, fs.Arg(0))
	}
	o.ours.recvBuffer = uint32(min(*recv, 1<<30))
	o.ours.minCwnd = uint32(min(*minCwnd, 1<<30))
	o.ours.fastRtxWnd = uint32(min(*fastRtx, 1<<30))
	o.ours.cwndCAStep = uint32(min(*caStep, 1<<30))
	switch {
	case o.bytes < 1:
		return nil, fmt.Errorf("%w: --bytes must be >= 1", ErrUsage)
	case o.rounds < 1 || o.rounds > 100:
		return nil, fmt.Errorf("%w: --rounds must be in 1..100", ErrUsage)
	case o.timeout <= 0:
		return nil, fmt.Errorf("%w: --timeout must be > 0", ErrUsage)
	case o.ours.msgSize < 8 || o.ours.msgSize > 16<<20:
		return nil, fmt.Errorf("%w: --message-size must be in 8..16777216", ErrUsage)
	case o.ours.lowThreshold > o.ours.maxBuffered:
		return nil, fmt.Errorf("%w: --low-threshold must be <= --max-buffered", ErrUsage)
	case o.ours.udpBuffer < 0:
		return nil, fmt.Errorf("%w: --udp-buffer must be >= 0", ErrUsage)
	case o.ours.rtoMax < 0:
		return nil, fmt.Errorf("%w: --sctp-rto-max must be >= 0", ErrUsage)
	case o.ours.impair.Delay < 0 || o.ours.impair.Jitter < 0 || o.ours.impair.Jitter > o.ours.impair.Delay:
		return nil, fmt.Errorf("%w: --delay and --jitter must be >= 0, with --jitter <= --delay", ErrUsage)
	case o.ours.impair.Loss < 0 || o.ours.impair.Loss >= 1:
		return nil, fmt.Errorf("%w: --loss must be in [0, 1)", ErrUsage)
	}
	if o.only != "" {
		for name := range strings.SplitSeq(o.only, ",") {
			if !slices.Contains(transferNames, name) {
				return nil, fmt.Errorf("%w: --only: unknown transfer %q (want %s)", ErrUsage, name, strings.Join(transferNames, ","))
			}
		}
	}
	return o, nil
}

// transfer is the outcome of one transfer.
type transfer struct {
	sent, received int64
	elapsed        time.Duration // first byte sent → last byte received
	pion           *pionCounters // nil for TCP and QUIC
	note           string        // shown after the transfer's line
}

// mbps returns payload megabytes (10^6) per second.
func (t transfer) mbps() float64 {
	if t.elapsed <= 0 {
		return 0
	}
	return float64(t.received) / 1e6 / t.elapsed.Seconds()
}

func runThroughput(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	o, err := parseThroughputOptions(args, stderr)
	if err != nil {
		return err
	}
	url, where, stop, err := startServerUnlessGiven(ctx, o.server, stderr)
	if err != nil {
		return err
	}
	defer stop()
	fmt.Fprintf(stdout, "throughput: bytes=%d (%s) rounds=%d server=%s loopback=%v\n",
		o.bytes, sizeStr(uint64(o.bytes)), o.rounds, where, o.loopback)
	fmt.Fprintf(stdout, "ours:  sdk pair, %v\n", o.ours)
	fmt.Fprintf(stdout, "stock: bare pion pair, %v\n", stockKnobs)
	fmt.Fprintf(stdout, "tcp:   loopback net.Conn, 64 KiB writes\n")
	fmt.Fprintf(stdout, "quic:  sdk pair over Peer.QUIC, one stream, 64 KiB writes, the network of ours\n")

	type variant struct {
		name string
		run  func(context.Context) (transfer, error)
	}
	variants := []variant{
		{"ours", func(ctx context.Context) (transfer, error) { return sdkTransfer(ctx, url, o.loopback, o.ours, o.bytes) }},
		{"stock", func(ctx context.Context) (transfer, error) { return bareTransfer(ctx, stockKnobs, o.bytes) }},
		{"tcp", func(ctx context.Context) (transfer, error) { return tcpTransfer(ctx, o.bytes) }},
		{"quic", func(ctx context.Context) (transfer, error) {
			return quicTransfer(ctx, url, o.loopback, o.ours, o.bytes)
		}},
	}
	if o.only != "" {
		variants = slices.DeleteFunc(variants, func(v variant) bool { return !slices.Contains(strings.Split(o.only, ","), v.name) })
	}
	results := make(map[string][]transfer)
	for round := range o.rounds {
		for i := range variants {
			v := variants[(i+round)%len(variants)]
			tctx, cancel := context.WithTimeout(ctx, o.timeout)
			t, err := v.run(tctx)
			cancel()
			if err != nil {
				if ctx.Err() != nil {
					return fmt.Errorf("interrupted: %w", context.Cause(ctx))
				}
				return fmt.Errorf("bench throughput: %s, round %d: %w", v.name, round+1, err)
			}
			results[v.name] = append(results[v.name], t)
			fmt.Fprintf(stdout, "round %d %-5s %8.1f MB/s %8.0f Mbps  %6.2fs  received %d of %d bytes",
				round+1, v.name, t.mbps(), t.mbps()*8, t.elapsed.Seconds(), t.received, t.sent)
			if t.pion != nil {
				t3, rtx, drops := t.pion.totals()
				fmt.Fprintf(stdout, "  sctp T3 timeouts %d, fast retransmits %d; mux drops %d", t3, rtx, drops)
				if b := t.pion.udpRcvbuf.Load(); b != 0 {
					fmt.Fprintf(stdout, "; udp rcvbuf %s", sizeStr(uint64(b)))
				}
			}
			if t.note != "" {
				fmt.Fprintf(stdout, "  %s", t.note)
			}
			fmt.Fprintln(stdout)
		}
	}
	med := make(map[string]float64)
	lost := make(map[string]int64)
	t3 := make(map[string]uint64)
	for name, ts := range results {
		var rates []float64
		for _, t := range ts {
			rates = append(rates, t.mbps())
			lost[name] += t.sent - t.received
			n, _, _ := t.pion.totals()
			t3[name] += n
		}
		med[name] = median(rates)
	}
	for _, name := range transferNames {
		fmt.Fprintf(stdout, "%-5s %8.1f MB/s %8.0f Mbps  (lost %d bytes)\n", name, med[name], med[name]*8, lost[name])
	}
	rs, rt := ratio(med["ours"], med["stock"]), ratio(med["ours"], med["tcp"])
	fmt.Fprintf(stdout, "ratios: ours/stock %.2f  ours/tcp %.3f  stock/tcp %.3f  quic/ours %.2f  quic/tcp %.3f\n",
		rs, rt, ratio(med["stock"], med["tcp"]), ratio(med["quic"], med["ours"]), ratio(med["quic"], med["tcp"]))
	met := rs >= throughputTarget
	fmt.Fprintf(stdout, "target: ours >= %.0f× stock: %v\n", throughputTarget, met)

	r := &resultLine{}
	r.b.WriteString("RESULT mode=throughput")
	r.int("bytes", o.bytes)
	r.int("rounds", int64(o.rounds))
	for _, name := range transferNames {
		r.float(name+"_mb_per_s", med[name], 1)
		r.float(name+"_mbps", med[name]*8, 0)
	}
	r.int("stock_lost_bytes", lost["stock"])
	r.int("ours_t3_timeouts", int64(t3["ours"]))
	r.int("stock_t3_timeouts", int64(t3["stock"]))
	r.float("ratio_stock", rs, 2)
	r.float("ratio_tcp", rt, 4)
	r.float("ratio_quic_ours", ratio(med["quic"], med["ours"]), 2)
	r.str("target_met", fmt.Sprint(met))
	fmt.Fprintln(stdout, r)
	return nil
}

// median returns the median of xs (the mean of the middle two for an even count).
func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	n := len(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}
