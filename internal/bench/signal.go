package bench

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"
)

// Bounds that keep the load loops finite whatever the flags.
const (
	maxRoundsPerPair  = 10_000_000
	maxSamplesPerPair = 1 << 16
	relaysPerRound    = 6 // offer + 2 candidates one way, answer + 2 candidates back
)

// Phases of a measured run.
const (
	phaseWarmup int32 = iota
	phaseMeasure
	phaseDone
)

// signalPair is one caller/callee pair. The counters are written only by the
// pair's own goroutines and read after they have exited.
type signalPair struct {
	idx            int
	caller, callee *client
	callerMsgs     roundMessages // offer + candidates, to the callee
	calleeMsgs     roundMessages // answer + candidates, to the caller

	callerRecv, calleeRecv int64           // relayed messages received in the window
	rounds                 int64           // rounds whose offer was sent in the window
	rtts                   []time.Duration // offer→answer, offers sent in the window
	late                   int64           // paced: ticks skipped because a round overran
	incomplete             bool            // a round was still open when the run ended
	offset                 time.Duration   // paced: first round's delay after the start
}

// signalRun is the shared state of a signal run.
type signalRun struct {
	opts     *options
	d        *dialer
	d2       *dialer // callers' dialer: d, or the second node's with --url2
	errs     *errorLog
	runID    string
	phase    atomic.Int32
	closing  atomic.Bool
	limited  atomic.Bool   // the server answered with rate-limited
	stop     chan struct{} // closed at the end of the window
	start    time.Time
	interval time.Duration // paced: time between one pair's rounds; 0 closed loop
}

func runSignal(ctx context.Context, o *options, stdout, stderr io.Writer) error {
	if _, err := raiseNoFile(); err != nil {
		fmt.Fprintf(stderr, "bench: warning: %v\n", err)
	}
	d, err := newDialer(o.url, o.proto, o.sourceIPs, o.dialTimeout)
	if err != nil {
		return err
	}
	defer d.close()
	if err := d.withTrust(o.trust); err != nil {
		return err
	}
	d2 := d
	if o.url2 != "" {
		if d2, err = newDialer(o.url2, o.proto, o.sourceIPs, o.dialTimeout); err != nil {
			return fmt.Errorf("--url2: %w", err)
		}
		defer d2.close()
		if err := d2.withTrust(o.trust); err != nil {
			return err
		}
	}
	s := &signalRun{opts: o, d: d, d2: d2, errs: newErrorLog(stderr), runID: newRunID(), stop: make(chan struct{})}
	probe := serverProbe{pid: o.pid}
	if _, _, err := probe.cpu(); err != nil {
		return fmt.Errorf("--pid: %w", err)
	}

	setupStart := time.Now()
	pairs, err := s.setup(ctx)
	if err != nil {
		return err
	}
	defer func() {
		for _, p := range pairs {
			p.caller.close()
			p.callee.close()
		}
	}()
	if len(pairs) == 0 {
		return fmt.Errorf("no pair could be set up (%d errors)", s.errs.count())
	}
	if o.rate > 0 {
		// Pace the pairs that exist; spread their first rounds over one interval.
		s.interval = time.Duration(float64(len(pairs)*relaysPerRound) / o.rate * float64(time.Second))
		for i, p := range pairs {
			p.offset = time.Duration(int64(s.interval) * int64(i) / int64(len(pairs)))
		}
		if s.interval > 10*time.Second {
			// A caller reads (and so answers WebSocket pings) only during its rounds.
			fmt.Fprintf(stderr, "bench: warning: one round per pair every %s: callers may miss the server's pings; raise --rate or lower --pairs\n", s.interval)
		}
	}
	urls := o.url
	if o.url2 != "" {
		urls = "callees " + o.url + ", callers " + o.url2
	}
	fmt.Fprintf(stdout, "signal: proto=%s url=%s pairs=%d/%d set up in %.2fs, %s, warmup=%s duration=%s\n",
		o.proto, urls, len(pairs), o.pairs, time.Since(setupStart).Seconds(), s.loadDesc(), o.warmup, o.duration)
	fmt.Fprintf(stdout, "frames: offer %d B, answer %d B, ice-candidate %d B (SDP %d B)\n",
		len(pairs[0].callerMsgs.desc), len(pairs[0].calleeMsgs.desc), len(pairs[0].callerMsgs.cands[0]), pairs[0].callerMsgs.sdpLen)

	// Run: every pair's callee answers, every caller starts rounds.
	var callers, all sync.WaitGroup
	s.start = time.Now()
	for _, p := range pairs {
		all.Add(2)
		callers.Add(1)
		go func() {
			defer all.Done()
			s.runCallee(p)
		}()
		go func() {
			defer all.Done()
			defer callers.Done()
			s.runCaller(p)
		}()
	}
	callersDone := make(chan struct{})
	go func() {
		callers.Wait()
		close(callersDone)
	}()
	shutdown := func() {
		s.closing.Store(true)
		for _, p := range pairs {
			p.caller.close()
			p.callee.close()
		}
		all.Wait()
		<-callersDone
	}

	interrupted := func() error {
		s.phase.Store(phaseDone)
		close(s.stop)
		shutdown()
		return fmt.Errorf("signal run interrupted: %w", context.Cause(ctx))
	}
	if err := sleepCtx(ctx, o.warmup); err != nil {
		return interrupted()
	}
	cpu0, _ := probe.sample()
	t0 := time.Now()
	s.phase.Store(phaseMeasure)
	if err := sleepCtx(ctx, o.duration); err != nil {
		return interrupted()
	}
	s.phase.Store(phaseDone)
	t1 := time.Now()
	cpu1, cpuErr := probe.sample()
	rssKB, rssOK, rssErr := probe.rss()
	close(s.stop)

	// Let in-flight rounds finish, then close everything.
	grace := time.NewTimer(o.grace)
	select {
	case <-callersDone:
	case <-grace.C:
	case <-ctx.Done():
	}
	grace.Stop()
	shutdown()

	// Figures.
	window := t1.Sub(t0)
	var recv, rounds, late, incomplete int64
	var rtts []time.Duration
	for _, p := range pairs {
		recv += p.callerRecv + p.calleeRecv
		rounds += p.rounds
		late += p.late
		if p.incomplete {
			incomplete++
		}
		rtts = append(rtts, p.rtts...)
	}
	lat := summarize(rtts)
	msgsPerS := float64(recv) / window.Seconds()
	errCount := s.errs.count() + incomplete // failed pair setups are among s.errs

	fmt.Fprintf(stdout, "relayed messages received: %d in %.2fs = %.0f msgs/s (%d rounds started in the window, %d relayed messages each)\n",
		recv, window.Seconds(), msgsPerS, rounds, relaysPerRound)
	if s.interval > 0 {
		fmt.Fprintf(stdout, "paced: target %.0f msgs/s, one round per pair every %s; %d ticks skipped because a round overran\n",
			o.rate, s.interval, late)
	}
	fmt.Fprintf(stdout, "offer→answer round trip: p50 %.3f ms  p90 %.3f ms  p99 %.3f ms  max %.3f ms  (n=%d)\n",
		ms(lat.P50), ms(lat.P90), ms(lat.P99), ms(lat.Max), lat.N)
	fmt.Fprintf(stdout, "errors: %d (of which %d pairs failed setup, %d rounds unfinished at the end)\n",
		errCount, o.pairs-len(pairs), incomplete)
	if s.limited.Load() {
		fmt.Fprintln(stdout, "hint: the server rate-limited the clients; start it with a higher limit (switchboard serve --rate-limit 100000 --rate-burst 100000)")
	}
	cpu := diffCPU(cpu0, cpu1)
	if cpuErr != nil {
		fmt.Fprintf(stderr, "bench: warning: server CPU: %v\n", cpuErr)
	}
	printCPU(stdout, o.pid, cpu, window, recv, "relayed message")
	if rssOK {
		fmt.Fprintf(stdout, "server pid %d: RSS %d kB at the end of the window\n", o.pid, rssKB)
	} else if rssErr != nil {
		fmt.Fprintf(stderr, "bench: warning: server RSS: %v\n", rssErr)
	}

	r := newResultLine("signal", o.proto)
	r.int("pairs", int64(len(pairs)))
	nodes := int64(1)
	if o.url2 != "" {
		nodes = 2
	}
	r.int("nodes", nodes)
	r.float("rate", o.rate, 0)
	r.float("msgs_per_s", msgsPerS, 1)
	r.float("p50_ms", ms(lat.P50), 3)
	r.float("p90_ms", ms(lat.P90), 3)
	r.float("p99_ms", ms(lat.P99), 3)
	r.float("max_ms", ms(lat.Max), 3)
	r.int("rounds", rounds)
	r.int("errors", errCount)
	cpu.addTo(r, window, recv, "cpu_us_per_msg")
	r.optFloat("rss_kb", float64(rssKB), rssOK, 0)
	fmt.Fprintln(stdout, r)
	return nil
}

func (s *signalRun) loadDesc() string {
	if s.interval == 0 {
		return "closed loop"
	}
	return fmt.Sprintf("paced at %.0f relayed msgs/s", s.opts.rate)
}

// setup connects and introduces all pairs with opts.concurrency workers.
// Pairs that fail are counted as errors and left out.
func (s *signalRun) setup(ctx context.Context) ([]*signalPair, error) {
	o := s.opts
	slots := make([]*signalPair, o.pairs)
	var next atomic.Int64
	var wg sync.WaitGroup
	for range min(o.concurrency, o.pairs) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= o.pairs || ctx.Err() != nil {
					return
				}
				p, err := s.setupPair(ctx, i)
				if err != nil {
					s.errs.add("pair %d setup: %v", i, err)
					continue
				}
				slots[i] = p
			}
		}()
	}
	wg.Wait()
	pairs := make([]*signalPair, 0, len(slots))
	for _, p := range slots {
		if p != nil {
			pairs = append(pairs, p)
		}
	}
	if err := ctx.Err(); err != nil {
		for _, p := range pairs {
			p.caller.close()
			p.callee.close()
		}
		return nil, fmt.Errorf("pair setup interrupted: %w", context.Cause(ctx))
	}
	return pairs, nil
}

// setupPair connects the callee then the caller, makes each learn the other's
// id and pre-encodes the frames they will send.
func (s *signalRun) setupPair(ctx context.Context, i int) (_ *signalPair, err error) {
	room := fmt.Sprintf("sb-%s-%d", s.runID, i)
	callee, err := s.d.open(ctx, 2*i, room)
	if err != nil {
		return nil, fmt.Errorf("callee: %w", err)
	}
	defer func() {
		if err != nil {
			callee.close()
		}
	}()
	caller, err := s.d2.open(ctx, 2*i+1, room)
	if err != nil {
		return nil, fmt.Errorf("caller: %w", err)
	}
	defer func() {
		if err != nil {
			caller.close()
		}
	}()
	if s.opts.proto == protoNative {
		if len(caller.peers) != 1 || caller.peers[0] != callee.id {
			return nil, fmt.Errorf("caller's welcome lists peers %q, want [%q]", caller.peers, callee.id)
		}
		joined, err := awaitPeerJoined(ctx, callee, s.opts.dialTimeout)
		if err != nil {
			return nil, fmt.Errorf("callee: %w", err)
		}
		if joined != caller.id {
			return nil, fmt.Errorf("callee saw peer %q join, want %q", joined, caller.id)
		}
	}
	r := rand.New(rand.NewPCG(uint64(i), 0x5b5b))
	p := &signalPair{idx: i, caller: caller, callee: callee}
	if p.callerMsgs, err = buildRoundMessages(s.opts.proto, r, "offer", caller.id, callee.id, s.opts.sdpBytes); err != nil {
		return nil, err
	}
	if p.calleeMsgs, err = buildRoundMessages(s.opts.proto, r, "answer", callee.id, caller.id, s.opts.sdpBytes); err != nil {
		return nil, err
	}
	return p, nil
}

// awaitPeerJoined reads c's frames until a peer-joined and returns its id.
func awaitPeerJoined(ctx context.Context, c *client, timeout time.Duration) (string, error) {
	rctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	for range 16 {
		msg, err := c.readCtx(rctx)
		if err != nil {
			return "", fmt.Errorf("wait for peer-joined: %w", err)
		}
		switch classify(c.proto, msg) {
		case kindPeerJoined:
			return peerJoinedID(msg)
		case kindError:
			return "", fmt.Errorf("error frame while waiting for peer-joined: %s", truncate(msg))
		}
	}
	return "", fmt.Errorf("no peer-joined within 16 frames")
}

// failed records an error unless the run is shutting down (when closed
// connections are expected).
func (s *signalRun) failed(format string, args ...any) {
	if !s.closing.Load() {
		s.errs.add(format, args...)
	}
}

// errorFrame records an error frame received by one side of pair idx.
func (s *signalRun) errorFrame(idx int, side string, msg []byte) {
	if bytes.Contains(msg, []byte(`"rate-limited"`)) {
		s.limited.Store(true)
	}
	s.failed("pair %d %s got %s", idx, side, truncate(msg))
}

// runCaller sends rounds until the window ends: closed loop, or one round per
// interval at the pair's offset when paced. A round is complete when the
// answer and the callee's two candidates have arrived.
func (s *signalRun) runCaller(p *signalPair) {
	c := p.caller
	msgs := p.callerMsgs.all()
	var timer *time.Timer
	var next time.Time
	if s.interval > 0 {
		next = s.start.Add(p.offset)
		timer = time.NewTimer(time.Until(next))
		defer timer.Stop()
	}
	for range maxRoundsPerPair {
		if timer != nil {
			select {
			case <-timer.C:
			case <-s.stop:
				return
			}
		} else {
			select {
			case <-s.stop:
				return
			default:
			}
		}
		sentPhase := s.phase.Load()
		t0 := time.Now()
		for _, m := range msgs {
			if err := c.write(m); err != nil {
				s.failed("pair %d caller: %v", p.idx, err)
				return
			}
		}
		gotAnswer, cands := false, 0
		for !gotAnswer || cands < 2 {
			kind, msg, err := c.next()
			if err != nil {
				if s.closing.Load() {
					p.incomplete = true
				}
				s.failed("pair %d caller: %v", p.idx, err)
				return
			}
			switch kind {
			case kindAnswer:
				rtt := time.Since(t0)
				if gotAnswer {
					s.failed("pair %d caller: two answers in one round", p.idx)
				}
				gotAnswer = true
				if sentPhase == phaseMeasure && len(p.rtts) < maxSamplesPerPair {
					p.rtts = append(p.rtts, rtt)
				}
			case kindCandidate:
				cands++
			case kindError:
				s.errorFrame(p.idx, "caller", msg)
				continue
			default:
				continue
			}
			if s.phase.Load() == phaseMeasure {
				p.callerRecv++
			}
		}
		if sentPhase == phaseMeasure {
			p.rounds++
		}
		if timer != nil {
			next = next.Add(s.interval)
			if now := time.Now(); next.Before(now) {
				skipped := int64(now.Sub(next)/s.interval) + 1
				p.late += skipped
				next = next.Add(time.Duration(skipped) * s.interval)
			}
			timer.Reset(time.Until(next))
		}
	}
}

// runCallee answers every offer with an answer and two candidates, until its
// connection is closed.
func (s *signalRun) runCallee(p *signalPair) {
	c := p.callee
	msgs := p.calleeMsgs.all()
	for {
		kind, msg, err := c.next()
		if err != nil {
			s.failed("pair %d callee: %v", p.idx, err)
			return
		}
		switch kind {
		case kindOffer:
			for _, m := range msgs {
				if err := c.write(m); err != nil {
					s.failed("pair %d callee: %v", p.idx, err)
					return
				}
			}
		case kindCandidate:
		case kindError:
			s.errorFrame(p.idx, "callee", msg)
			continue
		default:
			continue
		}
		if s.phase.Load() == phaseMeasure {
			p.calleeRecv++
		}
	}
}
