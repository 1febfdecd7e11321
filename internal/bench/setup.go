package bench

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/pion/ice/v4"
	"github.com/pion/webrtc/v4"

	"github.com/switchboard-rtc/switchboard/internal/config"
	"github.com/switchboard-rtc/switchboard/internal/server"
	"github.com/switchboard-rtc/switchboard/sdk"
)

const setupUsage = `usage: switchboard bench setup [flags]

Connection setup time of the Go peer SDK (the issue calls this "bench connect"; that name is
taken by the signaling server's WebSocket handshake mode, so this one is "setup").

For each fresh pair, one peer joins an empty room, then the newcomer calls sdk.Dial (join);
the figure is the time from the start of that Dial until the application's data channel is
open on both sides. Reported beside it, interleaved pair by pair in the same run:
  sdk from pc   the same SDK pair, from the newcomer's OnPeer (called as soon as its
                NewPeerConnection has returned) to open
  bare pion     two Pion PeerConnections in this process, signaled by direct function calls
                (offer, answer, trickled candidates; no server), default SettingEngine plus
                SetIncludeLoopbackCandidate(true), from the first NewPeerConnection to open
"sdk from pc" against "bare pion" shows what relaying offer, answer and candidates through
the server costs (offset by the SDK's loopback SettingEngine, which gathers only 127.0.0.1
over UDP4 where the bare pair also gathers every other interface); "sdk" minus "sdk from pc"
is the WebSocket dial and the join.

flags:
`

// setupOptions are the flags of `bench setup`.
type setupOptions struct {
	server      string
	pairs       int
	warmup      int
	concurrency int
	loopback    bool
	pairTimeout time.Duration
}

func parseSetupOptions(args []string, stderr io.Writer) (*setupOptions, error) {
	o := &setupOptions{}
	fs := flag.NewFlagSet("switchboard bench setup", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, setupUsage)
		fs.PrintDefaults()
	}
	fs.StringVar(&o.server, "server", "", "switchboard server URL (default: start one in-process on 127.0.0.1:0)")
	fs.IntVar(&o.pairs, "pairs", 200, "measured pairs (each: one SDK pair and one bare Pion pair)")
	fs.IntVar(&o.warmup, "warmup", 5, "pairs run first and not counted")
	fs.IntVar(&o.concurrency, "concurrency", 1, "pairs set up at the same time")
	fs.BoolVar(&o.loopback, "loopback", true, "SDK peers use sdk.Options.Loopback (all traffic on 127.0.0.1)")
	fs.DurationVar(&o.pairTimeout, "pair-timeout", 10*time.Second, "bound on one pair's setup")
	if err := fs.Parse(args); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrUsage, err)
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("%w: unexpected argument %q", ErrUsage, fs.Arg(0))
	}
	switch {
	case o.pairs < 1:
		return nil, fmt.Errorf("%w: --pairs must be >= 1", ErrUsage)
	case o.warmup < 0:
		return nil, fmt.Errorf("%w: --warmup must be >= 0", ErrUsage)
	case o.concurrency < 1 || o.concurrency > 64:
		return nil, fmt.Errorf("%w: --concurrency must be in 1..64", ErrUsage)
	case o.pairTimeout <= 0:
		return nil, fmt.Errorf("%w: --pair-timeout must be > 0", ErrUsage)
	}
	return o, nil
}

// Setup time targets for the SDK (join → data channel open).
const (
	setupTargetP50 = 30 * time.Millisecond
	setupTargetP99 = 100 * time.Millisecond
)

// setupSample is one measured pair: SDK and bare Pion.
type setupSample struct {
	sdkTotal  time.Duration // newcomer's Dial start → channel open on both sides
	sdkJoin   time.Duration // Dial start → newcomer's NewPeerConnection (welcome received)
	sdkFromPC time.Duration // newcomer's NewPeerConnection → open
	bare      time.Duration // first NewPeerConnection → open
}

func runSetup(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	o, err := parseSetupOptions(args, stderr)
	if err != nil {
		return err
	}
	url, where, stop, err := startServerUnlessGiven(ctx, o.server, stderr)
	if err != nil {
		return err
	}
	defer stop()
	fmt.Fprintf(stdout, "setup: server=%s pairs=%d warmup=%d concurrency=%d loopback=%v\n",
		where, o.pairs, o.warmup, o.concurrency, o.loopback)

	bareAPI := webrtc.NewAPI(webrtc.WithSettingEngine(bareSettingEngine()))
	runID := newRunID()
	total := o.warmup + o.pairs
	samples := make([]setupSample, total)
	ok := make([]bool, total)
	errs := newErrorLog(stderr)
	jobs := make(chan int)
	var wg sync.WaitGroup
	for range o.concurrency {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range jobs {
				s, err := setupOnePair(ctx, url, fmt.Sprintf("setup-%s-%d", runID, i), o, bareAPI, i%2 == 0)
				if err != nil {
					if ctx.Err() == nil {
						errs.add("pair %d: %v", i, err)
					}
					continue
				}
				samples[i], ok[i] = s, true
			}
		}()
	}
	start := time.Now()
feed:
	for i := range total {
		select {
		case jobs <- i:
		case <-ctx.Done():
			break feed
		}
	}
	close(jobs)
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("interrupted: %w", context.Cause(ctx))
	}
	elapsed := time.Since(start)

	var sdkTotal, sdkJoin, sdkFromPC, bare []time.Duration
	for i := o.warmup; i < total; i++ {
		if !ok[i] {
			continue
		}
		s := samples[i]
		sdkTotal = append(sdkTotal, s.sdkTotal)
		sdkJoin = append(sdkJoin, s.sdkJoin)
		sdkFromPC = append(sdkFromPC, s.sdkFromPC)
		bare = append(bare, s.bare)
	}
	if len(sdkTotal) == 0 {
		return fmt.Errorf("bench setup: no pair could be set up (%d errors)", errs.count())
	}
	st, sj, sp, sb := summarize(sdkTotal), summarize(sdkJoin), summarize(sdkFromPC), summarize(bare)
	row := func(name string, l latencySummary) {
		fmt.Fprintf(stdout, "%-30s p50 %7.2f ms  p90 %7.2f ms  p99 %7.2f ms  max %7.2f ms\n",
			name, ms(l.P50), ms(l.P90), ms(l.P99), ms(l.Max))
	}
	fmt.Fprintf(stdout, "measured pairs: %d of %d in %.1fs, errors %d\n", st.N, o.pairs, elapsed.Seconds(), errs.count())
	row("sdk: join → channel open", st)
	row("  join → welcome, pc (OnPeer)", sj)
	row("  pc (OnPeer) → channel open", sp)
	row("bare pion: pc → channel open", sb)
	fmt.Fprintf(stdout, "ratios sdk/bare: p50 %.2f  p99 %.2f;  sdk from pc/bare: p50 %.2f  p99 %.2f\n",
		ratio(st.P50, sb.P50), ratio(st.P99, sb.P99), ratio(sp.P50, sb.P50), ratio(sp.P99, sb.P99))
	met := st.P50 <= setupTargetP50 && st.P99 <= setupTargetP99
	fmt.Fprintf(stdout, "target: sdk p50 <= %d ms and p99 <= %d ms: %v\n", setupTargetP50.Milliseconds(), setupTargetP99.Milliseconds(), met)

	r := &resultLine{}
	r.b.WriteString("RESULT mode=setup")
	r.int("pairs", int64(st.N))
	r.int("errors", int64(errs.count()))
	for _, f := range []struct {
		prefix string
		l      latencySummary
	}{{"sdk", st}, {"sdk_join", sj}, {"sdk_pc", sp}, {"bare", sb}} {
		r.float(f.prefix+"_p50_ms", ms(f.l.P50), 2)
		r.float(f.prefix+"_p90_ms", ms(f.l.P90), 2)
		r.float(f.prefix+"_p99_ms", ms(f.l.P99), 2)
		r.float(f.prefix+"_max_ms", ms(f.l.Max), 2)
	}
	r.float("ratio_p50", ratio(st.P50, sb.P50), 2)
	r.float("ratio_p99", ratio(st.P99, sb.P99), 2)
	r.str("target_met", fmt.Sprint(met))
	fmt.Fprintln(stdout, r)
	return nil
}

// ratio returns a/b, or 0 when b is 0.
func ratio[T time.Duration | float64](a, b T) float64 {
	if b == 0 {
		return 0
	}
	return float64(a) / float64(b)
}

// setupOnePair measures one SDK pair and one bare Pion pair, in the order given by sdkFirst
// so that neither always runs right after the other's teardown.
func setupOnePair(ctx context.Context, url, room string, o *setupOptions, bareAPI *webrtc.API, sdkFirst bool) (setupSample, error) {
	ctx, cancel := context.WithTimeout(ctx, o.pairTimeout)
	defer cancel()
	var s setupSample
	runSDK := func() error {
		t, err := timeSDKPair(ctx, url, room, o.loopback)
		if err != nil {
			return fmt.Errorf("sdk pair: %w", err)
		}
		s.sdkTotal, s.sdkJoin, s.sdkFromPC = t.open, t.pc, t.open-t.pc
		return nil
	}
	runBare := func() error {
		d, err := timeBarePair(ctx, bareAPI)
		if err != nil {
			return fmt.Errorf("bare pair: %w", err)
		}
		s.bare = d
		return nil
	}
	steps := []func() error{runSDK, runBare}
	if !sdkFirst {
		steps[0], steps[1] = runBare, runSDK
	}
	for _, step := range steps {
		if err := step(); err != nil {
			return s, err
		}
	}
	return s, nil
}

// sdkTimes are offsets from the start of the newcomer's sdk.Dial.
type sdkTimes struct {
	pc   time.Duration // the newcomer's OnPeer: its PeerConnection exists
	open time.Duration // the application channel is open on both sides
}

// timeSDKPair joins a first peer to room, then times a newcomer from sdk.Dial until a data
// channel it creates in OnPeer is open on both sides. Both clients are closed on return.
func timeSDKPair(ctx context.Context, url, room string, loopback bool) (sdkTimes, error) {
	var t sdkTimes
	quiet := slog.New(slog.DiscardHandler)
	remoteOpen := make(chan struct{})
	var remoteOnce sync.Once
	first, err := sdk.Dial(ctx, url, room, &sdk.Options{Loopback: loopback, Logger: quiet, OnPeer: func(p *sdk.Peer) {
		p.OnDataChannel(func(dc *webrtc.DataChannel) {
			dc.OnOpen(func() { remoteOnce.Do(func() { close(remoteOpen) }) })
			dc.OnMessage(func(m webrtc.DataChannelMessage) { _ = dc.Send(m.Data) })
		})
	}})
	if err != nil {
		return t, fmt.Errorf("first peer: %w", err)
	}
	defer first.Close()

	localOpen := make(chan struct{})
	echo := make(chan struct{}, 1)
	chanErr := make(chan error, 1)
	var pcAt time.Time
	var dc *webrtc.DataChannel
	start := time.Now()
	second, err := sdk.Dial(ctx, url, room, &sdk.Options{Loopback: loopback, Logger: quiet, OnPeer: func(p *sdk.Peer) {
		pcAt = time.Now()
		var err error
		if dc, err = p.CreateDataChannel("bench", nil); err != nil {
			chanErr <- err
			return
		}
		dc.OnOpen(func() { close(localOpen) })
		dc.OnMessage(func(webrtc.DataChannelMessage) { echo <- struct{}{} })
	}})
	if err != nil {
		return t, fmt.Errorf("newcomer: %w", err)
	}
	defer second.Close()
	for _, ch := range []chan struct{}{localOpen, remoteOpen} {
		select {
		case <-ch:
		case err := <-chanErr:
			return t, fmt.Errorf("create data channel: %w", err)
		case <-ctx.Done():
			return t, fmt.Errorf("waiting for the data channel: %w", context.Cause(ctx))
		}
	}
	t.open = time.Since(start)
	if pcAt.IsZero() { // OnPeer runs inside Dial for peers in the welcome
		return t, errors.New("newcomer saw no peer in its welcome")
	}
	t.pc = pcAt.Sub(start)
	// Not timed: one echo proves the channel carries data, and lets the first peer finish
	// accepting the SDK's own control channel before both close.
	if err := dc.SendText("ping"); err != nil {
		return t, fmt.Errorf("send: %w", err)
	}
	select {
	case <-echo:
	case <-ctx.Done():
		return t, fmt.Errorf("waiting for the echo: %w", context.Cause(ctx))
	}
	return t, nil
}

// bareSettingEngine is Pion's default SettingEngine plus the one knob a loopback-only host
// needs to gather any candidate at all.
func bareSettingEngine() webrtc.SettingEngine {
	var se webrtc.SettingEngine
	se.SetIncludeLoopbackCandidate(true)
	return se
}

// sdkSettingEngine is what sdk.Client.settingEngine builds with the default
// AcceptanceMinWait and the given Options.Loopback. Benchmarks that add knobs start from it,
// since sdk.Options.SettingEngine replaces the SDK's tuned engine entirely.
func sdkSettingEngine(loopback bool) webrtc.SettingEngine {
	var se webrtc.SettingEngine
	sdk.TuneTransport(&se)
	const w = 100 * time.Millisecond
	se.SetSrflxAcceptanceMinWait(w)
	se.SetPrflxAcceptanceMinWait(w)
	se.SetRelayAcceptanceMinWait(w)
	if loopback {
		se.SetIncludeLoopbackCandidate(true)
		se.SetNetworkTypes([]webrtc.NetworkType{webrtc.NetworkTypeUDP4})
		se.SetInterfaceFilter(func(name string) bool { return name == "lo" })
		se.SetIPFilter(func(ip net.IP) bool { return ip.IsLoopback() })
		se.SetICEMulticastDNSMode(ice.MulticastDNSModeDisabled)
	}
	return se
}

// timeBarePair times a bare Pion pair from the first NewPeerConnection until a data channel
// is open on both sides.
func timeBarePair(ctx context.Context, api *webrtc.API) (time.Duration, error) {
	start := time.Now()
	p, err := newBarePair(api)
	if err != nil {
		return 0, err
	}
	defer p.close()
	remoteOpen := make(chan struct{})
	p.answer.pc.OnDataChannel(func(dc *webrtc.DataChannel) {
		dc.OnOpen(func() { close(remoteOpen) })
	})
	dc, err := p.offer.pc.CreateDataChannel("bench", nil)
	if err != nil {
		return 0, fmt.Errorf("create data channel: %w", err)
	}
	localOpen := make(chan struct{})
	dc.OnOpen(func() { close(localOpen) })
	if err := p.negotiate(); err != nil {
		return 0, err
	}
	if err := p.wait(ctx, localOpen, remoteOpen); err != nil {
		return 0, err
	}
	return time.Since(start), nil
}

// barePair is two PeerConnections in this process signaled by direct function calls.
type barePair struct {
	offer, answer *bareSide
	errc          chan error // the first trickle error
}

// bareSide is one end of a barePair; candidates that arrive before its remote description
// wait in pending.
type bareSide struct {
	pc        *webrtc.PeerConnection
	mu        sync.Mutex
	remoteSet bool
	pending   []webrtc.ICECandidateInit
}

func newBarePair(api *webrtc.API) (*barePair, error) {
	p := &barePair{errc: make(chan error, 1)}
	var err error
	if p.offer, err = newBareSide(api); err != nil {
		return nil, err
	}
	if p.answer, err = newBareSide(api); err != nil {
		_ = p.offer.pc.Close()
		return nil, err
	}
	trickle := func(from, to *bareSide) {
		from.pc.OnICECandidate(func(c *webrtc.ICECandidate) {
			if c == nil {
				return
			}
			if err := to.addCandidate(c.ToJSON()); err != nil {
				p.fail(err)
			}
		})
	}
	trickle(p.offer, p.answer)
	trickle(p.answer, p.offer)
	return p, nil
}

func newBareSide(api *webrtc.API) (*bareSide, error) {
	pc, err := api.NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		return nil, fmt.Errorf("new peer connection: %w", err)
	}
	return &bareSide{pc: pc}, nil
}

func (p *barePair) fail(err error) {
	select {
	case p.errc <- err:
	default:
	}
}

func (s *bareSide) addCandidate(c webrtc.ICECandidateInit) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.remoteSet {
		s.pending = append(s.pending, c)
		return nil
	}
	if err := s.pc.AddICECandidate(c); err != nil {
		return fmt.Errorf("add candidate: %w", err)
	}
	return nil
}

func (s *bareSide) setRemote(d webrtc.SessionDescription) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.pc.SetRemoteDescription(d); err != nil {
		return fmt.Errorf("set remote %s: %w", d.Type, err)
	}
	s.remoteSet = true
	for _, c := range s.pending {
		if err := s.pc.AddICECandidate(c); err != nil {
			return fmt.Errorf("add queued candidate: %w", err)
		}
	}
	s.pending = nil
	return nil
}

// negotiate runs offer/answer between the two sides.
func (p *barePair) negotiate() error {
	offer, err := p.offer.pc.CreateOffer(nil)
	if err != nil {
		return fmt.Errorf("create offer: %w", err)
	}
	if err := p.offer.pc.SetLocalDescription(offer); err != nil {
		return fmt.Errorf("set local offer: %w", err)
	}
	if err := p.answer.setRemote(offer); err != nil {
		return err
	}
	answer, err := p.answer.pc.CreateAnswer(nil)
	if err != nil {
		return fmt.Errorf("create answer: %w", err)
	}
	if err := p.answer.pc.SetLocalDescription(answer); err != nil {
		return fmt.Errorf("set local answer: %w", err)
	}
	return p.offer.setRemote(answer)
}

// wait returns when every channel in chs is closed, on a trickle error, or when ctx ends.
func (p *barePair) wait(ctx context.Context, chs ...chan struct{}) error {
	for _, ch := range chs {
		select {
		case <-ch:
		case err := <-p.errc:
			return err
		case <-ctx.Done():
			return fmt.Errorf("waiting for the data channel: %w", context.Cause(ctx))
		}
	}
	return nil
}

func (p *barePair) close() {
	_ = p.offer.pc.Close()
	_ = p.answer.pc.Close()
}

// localServer is a `switchboard serve` running in this process.
type localServer struct {
	url    string
	cancel context.CancelFunc
	done   chan error
}

// startLocalServer runs a server with the default configuration on a free loopback port.
func startLocalServer(ctx context.Context) (*localServer, error) {
	cfg := config.Default()
	cfg.Listen = "127.0.0.1:0"
	cfg.TURN = false // loopback peers connect directly
	srv, err := server.New(cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		return nil, fmt.Errorf("start server: %w", err)
	}
	ctx, cancel := context.WithCancel(ctx)
	s := &localServer{url: "http://" + srv.Addr().String(), cancel: cancel, done: make(chan error, 1)}
	go func() { s.done <- srv.Run(ctx) }()
	return s, nil
}

// stop shuts the server down and returns once it has stopped.
func (s *localServer) stop() error {
	s.cancel()
	if err := <-s.done; err != nil {
		return fmt.Errorf("in-process server: %w", err)
	}
	return nil
}

// startServerUnlessGiven returns url, or starts an in-process server when url is empty; the
// returned stop (never nil) reports a failed shutdown on stderr.
func startServerUnlessGiven(ctx context.Context, url string, stderr io.Writer) (string, string, func(), error) {
	if url != "" {
		return url, url, func() {}, nil
	}
	srv, err := startLocalServer(ctx)
	if err != nil {
		return "", "", nil, err
	}
	stop := func() {
		if err := srv.stop(); err != nil {
			fmt.Fprintf(stderr, "bench: warning: %v\n", err)
		}
	}
	return srv.url, srv.url + " (in-process)", stop, nil
}
