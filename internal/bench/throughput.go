package bench

import (
	"context"
	"encoding/binary"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/pion/logging"
	"github.com/pion/webrtc/v4"

	"github.com/switchboard-rtc/switchboard/sdk"
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
MB/s are 10^6 bytes of payload received per second, from the first send to the last byte
received; Mbps = MB/s × 8. The stock example's channel drops messages by design (Pion
abandons chunks still in flight when maxRetransmits is 0): its figure counts only the bytes
that arrived, and the bytes lost are reported. Each Pion transfer also reports its SCTP T3
retransmission timeouts (each stalls a reliable stream for at least 1 s), fast retransmits,
and packets Pion's ICE mux dropped because a reader fell behind.

flags:
`

// dcKnobs are the settings of one data-channel transfer.
type dcKnobs struct {
	msgSize      int           // bytes per Send
	maxBuffered  uint64        // stop sending above this bufferedAmount
	lowThreshold uint64        // resume at this bufferedAmountLowThreshold
	reliable     bool          // ordered and reliable; otherwise unordered with maxRetransmits 0
	detach       bool          // detached channels: Read/Write instead of OnMessage/Send
	recvBuffer   uint32        // SettingEngine.SetSCTPMaxReceiveBufferSize (0: Pion's default, 1 MiB)
	zeroChecksum bool          // SettingEngine.EnableSCTPZeroChecksum
	udpBuffer    int           // SO_RCVBUF and SO_SNDBUF of the ICE sockets (0: the kernel's default)
	rtoMax       time.Duration // SettingEngine.SetSCTPRTOMax (0: Pion's default, 60 s)
}

func (k dcKnobs) String() string {
	s := fmt.Sprintf("%s msgs, high %s, low %s", sizeStr(uint64(k.msgSize)), sizeStr(k.maxBuffered), sizeStr(k.lowThreshold))
	if k.reliable {
		s = "ordered reliable, " + s
	} else {
		s = "unordered maxRetransmits=0, " + s
	}
	if k.recvBuffer != 0 {
		s += ", sctp receive buffer " + sizeStr(uint64(k.recvBuffer))
	}
	if k.detach {
		s += ", detached"
	}
	if k.zeroChecksum {
		s += ", zero checksum"
	}
	if k.udpBuffer != 0 {
		s += ", udp socket buffers " + sizeStr(uint64(k.udpBuffer))
	}
	if k.rtoMax != 0 {
		s += ", sctp rto max " + k.rtoMax.String()
	}
	return s
}

// sizeStr formats a byte count in KiB or MiB when it is a whole number of them.
func sizeStr(n uint64) string {
	switch {
	case n >= 1<<20 && n%(1<<20) == 0:
		return fmt.Sprintf("%d MiB", n>>20)
	case n >= 1<<10 && n%(1<<10) == 0:
		return fmt.Sprintf("%d KiB", n>>10)
	}
	return fmt.Sprintf("%d B", n)
}

// stockKnobs are the settings of Pion's examples/data-channels-flow-control (v4.2.26).
var stockKnobs = dcKnobs{
	msgSize:      1024,
	maxBuffered:  1024 * 1024,
	lowThreshold: 512 * 1024,
	reliable:     false,
}

// ourKnobs are the fastest settings found for an SDK pair on loopback (docs/benchmarks.md):
// the stock example's watermarks, but 64 KiB messages on an ordered reliable detached
// channel, and larger UDP socket buffers so that the kernel drops no packet (a lost packet
// stalls a reliable SCTP stream for its 1 s minimum retransmission timeout).
var ourKnobs = dcKnobs{
	msgSize:      64 * 1024,
	maxBuffered:  1024 * 1024,
	lowThreshold: 512 * 1024,
	reliable:     true,
	detach:       true,
	udpBuffer:    4 << 20,
}

// transferNames are the transfers of one round, in order.
var transferNames = []string{"ours", "stock", "tcp"}

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
	fs.StringVar(&o.only, "only", "", "run only these transfers (comma-separated: ours,stock,tcp); ratios need all three")
	fs.IntVar(&o.ours.udpBuffer, "udp-buffer", ourKnobs.udpBuffer, "ours: SO_RCVBUF/SO_SNDBUF of the ICE UDP sockets (0: kernel default; capped by net.core.rmem_max)")
	fs.DurationVar(&o.ours.rtoMax, "sctp-rto-max", ourKnobs.rtoMax, "ours: SCTP max retransmission timeout (0: Pion's default)")
	fs.BoolVar(&o.ours.zeroChecksum, "zero-checksum", ourKnobs.zeroChecksum, "ours: SCTP zero checksum (RFC 9653)")
	if err := fs.Parse(args); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrUsage, err)
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("%w: unexpected argument %q", ErrUsage, fs.Arg(0))
	}
	o.ours.recvBuffer = uint32(min(*recv, 1<<30))
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
	pion           *pionCounters // nil for TCP
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

	type variant struct {
		name string
		run  func(context.Context) (transfer, error)
	}
	variants := []variant{
		{"ours", func(ctx context.Context) (transfer, error) { return sdkTransfer(ctx, url, o.loopback, o.ours, o.bytes) }},
		{"stock", func(ctx context.Context) (transfer, error) { return bareTransfer(ctx, stockKnobs, o.bytes) }},
		{"tcp", func(ctx context.Context) (transfer, error) { return tcpTransfer(ctx, o.bytes) }},
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
	fmt.Fprintf(stdout, "ratios: ours/stock %.2f  ours/tcp %.3f  stock/tcp %.3f\n", rs, rt, ratio(med["stock"], med["tcp"]))
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

// knobSettingEngine adds k's SettingEngine knobs to se, and a logger that keeps Pion's
// retransmission counters in pc (which changes nothing on the wire).
func knobSettingEngine(se webrtc.SettingEngine, k dcKnobs, pc *pionCounters) (webrtc.SettingEngine, error) {
	se.LoggerFactory = pc
	if k.udpBuffer != 0 {
		n, err := sdk.BufferedNet(k.udpBuffer, pc.recordRcvbuf)
		if err != nil {
			return se, fmt.Errorf("network: %w", err)
		}
		se.SetNet(n)
	}
	if k.rtoMax != 0 {
		se.SetSCTPRTOMax(k.rtoMax)
	}
	if k.recvBuffer != 0 {
		se.SetSCTPMaxReceiveBufferSize(k.recvBuffer)
	}
	if k.detach {
		se.DetachDataChannels()
	}
	if k.zeroChecksum {
		se.EnableSCTPZeroChecksum(true)
	}
	return se, nil
}

// pionCounters is a Pion LoggerFactory that discards every log but keeps the counters the
// benchmark reports: each SCTP association logs its T3 retransmission timeouts and fast
// retransmits (debug level) when it closes, and the ICE mux logs each packet it drops
// because the DTLS or SRTP reader fell behind.
type pionCounters struct {
	mu       sync.Mutex
	t3       map[string]uint64 // by association name: logged once per close path
	fastRtx  map[string]uint64
	muxDrops int64

	udpRcvbuf atomic.Int64 // SO_RCVBUF the kernel granted (bufferedNet), 0 if not set
}

func newPionCounters() *pionCounters {
	return &pionCounters{t3: map[string]uint64{}, fastRtx: map[string]uint64{}}
}

func (c *pionCounters) NewLogger(string) logging.LeveledLogger { return counterLogger{c} }

// totals returns the T3 timeouts, fast retransmits and mux drops of every association.
func (c *pionCounters) totals() (t3, fastRtx uint64, muxDrops int64) {
	if c == nil {
		return 0, 0, 0
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, v := range c.t3 {
		t3 += v
	}
	for _, v := range c.fastRtx {
		fastRtx += v
	}
	return t3, fastRtx, c.muxDrops
}

type counterLogger struct{ c *pionCounters }

func (l counterLogger) Debugf(format string, args ...any) {
	var m map[string]uint64
	switch {
	case strings.Contains(format, "stats nT3Timeouts"):
		m = l.c.t3
	case strings.Contains(format, "stats nFastRetrans"):
		m = l.c.fastRtx
	default:
		return
	}
	if len(args) != 2 {
		return
	}
	name, _ := args[0].(string)
	v, _ := args[1].(uint64)
	l.c.mu.Lock()
	m[name] = max(m[name], v)
	l.c.mu.Unlock()
}

func (l counterLogger) Infof(format string, _ ...any) {
	if strings.Contains(format, "buffer is full, dropping packet") {
		l.c.mu.Lock()
		l.c.muxDrops++
		l.c.mu.Unlock()
	}
}

func (counterLogger) Trace(string)          {}
func (counterLogger) Tracef(string, ...any) {}
func (counterLogger) Debug(string)          {}
func (counterLogger) Info(string)           {}
func (counterLogger) Warn(string)           {}
func (counterLogger) Warnf(string, ...any)  {}
func (counterLogger) Error(string)          {}
func (counterLogger) Errorf(string, ...any) {}

// recordRcvbuf keeps the receive buffer the kernel granted a socket (sdk.BufferedNet's hook).
func (c *pionCounters) recordRcvbuf(uc *net.UDPConn) {
	rc, err := uc.SyscallConn()
	if err != nil {
		return
	}
	_ = rc.Control(func(fd uintptr) {
		// Linux reports twice the size set (it counts its bookkeeping).
		if v, err := syscall.GetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF); err == nil {
			c.udpRcvbuf.Store(int64(v / 2))
		}
	})
}

func (k dcKnobs) init() *webrtc.DataChannelInit {
	if k.reliable {
		return nil // ordered and reliable
	}
	ordered, retransmits := false, uint16(0)
	return &webrtc.DataChannelInit{Ordered: &ordered, MaxRetransmits: &retransmits}
}

// sdkTransfer sends n bytes between two SDK peers joined to a fresh room of the server at url.
func sdkTransfer(ctx context.Context, url string, loopback bool, k dcKnobs, n int64) (tr transfer, err error) {
	ctr := newPionCounters()
	se, err := knobSettingEngine(sdkSettingEngine(loopback), k, ctr)
	if err != nil {
		return transfer{}, err
	}
	quiet := slog.New(slog.DiscardHandler)
	rx := newReceiver(n, k)
	defer func() { tr.pion = ctr }() // the counters are complete once the connections closed
	defer rx.wait()                  // after both clients have closed
	room := "throughput-" + newRunID()
	recvOpts := &sdk.Options{Loopback: loopback, SettingEngine: &se, Logger: quiet, OnPeer: func(p *sdk.Peer) {
		p.OnDataChannel(func(dc *webrtc.DataChannel) { rx.attach(dc, k.detach) })
	}}
	receiver, err := sdk.Dial(ctx, url, room, recvOpts)
	if err != nil {
		return transfer{}, fmt.Errorf("receiver: %w", err)
	}
	defer receiver.Close()
	tx := newSender(k, n)
	sendOpts := &sdk.Options{Loopback: loopback, SettingEngine: &se, Logger: quiet, OnPeer: func(p *sdk.Peer) {
		dc, err := p.CreateDataChannel("bench", k.init())
		if err != nil {
			tx.fail(fmt.Errorf("create data channel: %w", err))
			return
		}
		tx.attach(dc)
	}}
	sender, err := sdk.Dial(ctx, url, room, sendOpts)
	if err != nil {
		return transfer{}, fmt.Errorf("sender: %w", err)
	}
	defer sender.Close()
	return runTransfer(ctx, tx, rx)
}

// bareTransfer sends n bytes between two bare Pion peers with the stock example's setup:
// default SettingEngine plus the loopback candidate, knobs from k.
func bareTransfer(ctx context.Context, k dcKnobs, n int64) (tr transfer, err error) {
	ctr := newPionCounters()
	se, err := knobSettingEngine(bareSettingEngine(), k, ctr)
	if err != nil {
		return transfer{}, err
	}
	api := webrtc.NewAPI(webrtc.WithSettingEngine(se))
	rx := newReceiver(n, k)
	defer func() { tr.pion = ctr }() // the counters are complete once the pair closed
	defer rx.wait()                  // after the pair has closed
	p, err := newBarePair(api)
	if err != nil {
		return transfer{}, err
	}
	defer p.close()
	p.answer.pc.OnDataChannel(func(dc *webrtc.DataChannel) { rx.attach(dc, k.detach) })
	dc, err := p.offer.pc.CreateDataChannel("data", k.init())
	if err != nil {
		return transfer{}, fmt.Errorf("create data channel: %w", err)
	}
	tx := newSender(k, n)
	tx.attach(dc)
	if err := p.negotiate(); err != nil {
		return transfer{}, err
	}
	go func() { // forward a trickle error to the sender's wait
		select {
		case err := <-p.errc:
			tx.fail(err)
		case <-tx.done:
		}
	}()
	return runTransfer(ctx, tx, rx)
}

// runTransfer waits for the channel to open, sends, and waits for the receiver to have every
// byte or, on an unreliable channel, to stop receiving.
func runTransfer(ctx context.Context, tx *sender, rx *receiver) (transfer, error) {
	defer close(tx.done)
	select {
	case <-tx.open:
	case err := <-tx.errc:
		return transfer{}, err
	case <-ctx.Done():
		return transfer{}, fmt.Errorf("waiting for the data channel to open: %w", context.Cause(ctx))
	}
	start := time.Now()
	rx.start.Store(start.UnixNano())
	sctx, stop := context.WithCancel(ctx)
	sendDone := make(chan error, 1)
	go func() { sendDone <- tx.run(sctx) }()
	sending := true
	defer func() { // the sender goroutine never outlives the transfer
		stop()
		if sending {
			<-sendDone
		}
	}()
	const idle = time.Second // an unreliable transfer is over this long after its last message
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-rx.done:
			if sending { // every byte arrived, so the sender is finishing its last send
				sending = false
				if err := <-sendDone; err != nil {
					return transfer{}, err
				}
			}
			return rx.result(tx.sent.Load()), rx.err()
		case err := <-sendDone:
			sending = false
			if err != nil {
				return transfer{}, err
			}
		case <-tick.C:
			// A reliable channel may stall for a retransmission timeout (1 s or more) and
			// still deliver everything: only ctx bounds its wait.
			if !sending && !rx.reliable && time.Since(rx.last()) > idle {
				return rx.result(tx.sent.Load()), nil
			}
		case err := <-tx.errc:
			return transfer{}, err
		case <-ctx.Done():
			return transfer{}, fmt.Errorf("transfer: %d of %d bytes: %w", rx.got.Load(), rx.want, context.Cause(ctx))
		}
	}
}

// sender writes n bytes in messages of k.msgSize with buffered-amount flow control. Each
// message starts with its sequence number so the receiver can check order and loss.
type sender struct {
	k    dcKnobs
	n    int64
	dc   *webrtc.DataChannel
	rw   io.ReadWriteCloser // when detached
	sent atomic.Int64

	open     chan struct{}
	openOnce sync.Once
	more     chan struct{} // bufferedAmount fell below the low threshold
	errc     chan error
	done     chan struct{} // closed when the transfer is over
}

func newSender(k dcKnobs, n int64) *sender {
	return &sender{k: k, n: n, open: make(chan struct{}), more: make(chan struct{}, 1), errc: make(chan error, 1), done: make(chan struct{})}
}

func (s *sender) fail(err error) {
	select {
	case s.errc <- err:
	default:
	}
}

// attach sets the channel's handlers; it is called before the channel opens.
func (s *sender) attach(dc *webrtc.DataChannel) {
	s.dc = dc
	dc.SetBufferedAmountLowThreshold(s.k.lowThreshold)
	dc.OnBufferedAmountLow(func() {
		select {
		case s.more <- struct{}{}:
		default:
		}
	})
	dc.OnOpen(func() {
		if s.k.detach {
			rw, err := dc.Detach()
			if err != nil {
				s.fail(fmt.Errorf("detach: %w", err))
				return
			}
			s.rw = rw
		}
		s.openOnce.Do(func() { close(s.open) })
	})
}

// run sends every message; it returns early only on error or when ctx ends.
func (s *sender) run(ctx context.Context) error {
	msg := make([]byte, s.k.msgSize)
	for i := range msg {
		msg[i] = byte(i)
	}
	count := (s.n + int64(s.k.msgSize) - 1) / int64(s.k.msgSize)
	for seq := range count {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("send: %w", context.Cause(ctx))
		}
		size := min(int64(s.k.msgSize), s.n-seq*int64(s.k.msgSize))
		m := msg[:size]
		binary.BigEndian.PutUint64(m[:min(8, size)], uint64(seq))
		var err error
		if s.rw != nil {
			_, err = s.rw.Write(m)
		} else {
			err = s.dc.Send(m)
		}
		if err != nil {
			return fmt.Errorf("send message %d: %w", seq, err)
		}
		s.sent.Add(size)
		if seq < count-1 && s.dc.BufferedAmount() > s.k.maxBuffered {
			select {
			case <-s.more:
			case <-ctx.Done():
				return fmt.Errorf("send: %w", context.Cause(ctx))
			}
		}
	}
	return nil
}

// receiver counts the bytes of one channel and, on a reliable channel, checks that every
// message arrives once and in order.
type receiver struct {
	want     int64
	reliable bool
	got      atomic.Int64
	lastAt   atomic.Int64 // unix nanoseconds of the last message
	start    atomic.Int64 // unix nanoseconds of the first send

	done     chan struct{}
	doneOnce sync.Once
	mu       sync.Mutex
	next     uint64 // next sequence number expected (reliable)
	bad      error
	bufSize  int

	loopMu sync.Mutex // orders read loop starts against wait
	closed bool
	wg     sync.WaitGroup // the detached read loop
}

func newReceiver(want int64, k dcKnobs) *receiver {
	r := &receiver{want: want, reliable: k.reliable, bufSize: max(k.msgSize, 64<<10), done: make(chan struct{})}
	return r
}

// attach starts counting the channel's messages; a detached channel gets a read loop that
// ends when the channel closes.
func (r *receiver) attach(dc *webrtc.DataChannel, detach bool) {
	if !detach {
		dc.OnMessage(func(m webrtc.DataChannelMessage) { r.message(m.Data) })
		return
	}
	dc.OnOpen(func() {
		rw, err := dc.Detach()
		if err != nil {
			r.setErr(fmt.Errorf("detach: %w", err))
			return
		}
		r.loopMu.Lock()
		defer r.loopMu.Unlock()
		if r.closed {
			_ = rw.Close()
			return
		}
		r.wg.Add(1)
		go func() {
			defer r.wg.Done()
			buf := make([]byte, r.bufSize)
			for {
				n, err := rw.Read(buf)
				if err != nil {
					return // the channel or its connection closed
				}
				r.message(buf[:n])
			}
		}()
	})
}

func (r *receiver) message(b []byte) {
	if r.reliable && len(b) >= 8 {
		r.mu.Lock()
		seq := binary.BigEndian.Uint64(b)
		if seq != r.next && r.bad == nil {
			r.bad = fmt.Errorf("message %d arrived when %d was expected", seq, r.next)
		}
		r.next = seq + 1
		r.mu.Unlock()
	}
	r.lastAt.Store(time.Now().UnixNano())
	if r.got.Add(int64(len(b))) >= r.want {
		r.doneOnce.Do(func() { close(r.done) })
	}
}

func (r *receiver) setErr(err error) {
	r.mu.Lock()
	if r.bad == nil {
		r.bad = err
	}
	r.mu.Unlock()
}

func (r *receiver) err() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.bad
}

// last returns when the last message arrived (the start of the transfer if none did).
func (r *receiver) last() time.Time {
	if t := r.lastAt.Load(); t != 0 {
		return time.Unix(0, t)
	}
	return time.Unix(0, r.start.Load())
}

func (r *receiver) result(sent int64) transfer {
	return transfer{sent: sent, received: r.got.Load(), elapsed: r.last().Sub(time.Unix(0, r.start.Load()))}
}

// wait returns once the detached read loop, if any, has ended, and keeps a later OnOpen from
// starting one; call it after closing the connections, which ends the loop's Read.
func (r *receiver) wait() {
	r.loopMu.Lock()
	r.closed = true
	r.loopMu.Unlock()
	r.wg.Wait()
}

// tcpTransfer copies n bytes over a loopback TCP connection.
func tcpTransfer(ctx context.Context, n int64) (transfer, error) {
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", "127.0.0.1:0")
	if err != nil {
		return transfer{}, fmt.Errorf("tcp listen: %w", err)
	}
	defer ln.Close()
	type readResult struct {
		n   int64
		at  time.Time
		err error
	}
	got := make(chan readResult, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			got <- readResult{err: fmt.Errorf("tcp accept: %w", err)}
			return
		}
		defer c.Close()
		m, err := io.CopyBuffer(io.Discard, io.LimitReader(c, n), make([]byte, 64<<10))
		got <- readResult{n: m, at: time.Now(), err: err}
	}()
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", ln.Addr().String())
	if err != nil {
		return transfer{}, fmt.Errorf("tcp dial: %w", err)
	}
	defer c.Close()
	stop := context.AfterFunc(ctx, func() { _ = c.SetDeadline(time.Now()) })
	defer stop()
	buf := make([]byte, 64<<10)
	start := time.Now()
	var sent int64
	for sent < n {
		w, err := c.Write(buf[:min(int64(len(buf)), n-sent)])
		sent += int64(w)
		if err != nil {
			_ = c.Close()
			<-got
			return transfer{}, fmt.Errorf("tcp write: %w", err)
		}
	}
	var res readResult
	select {
	case res = <-got:
	case <-ctx.Done():
		_ = c.Close()
		_ = ln.Close()
		<-got
		return transfer{}, fmt.Errorf("tcp read: %w", context.Cause(ctx))
	}
	if res.err != nil {
		return transfer{}, fmt.Errorf("tcp read: %w", res.err)
	}
	return transfer{sent: sent, received: res.n, elapsed: res.at.Sub(start)}, nil
}
