package sdk_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pion/ice/v4"
	"github.com/pion/transport/v5"
	"github.com/pion/transport/v5/stdnet"
	"github.com/pion/webrtc/v4"

	"github.com/switchboard-rtc/switchboard/internal/config"
	"github.com/switchboard-rtc/switchboard/internal/server"
	"github.com/switchboard-rtc/switchboard/sdk"
)

// The go test versions of `switchboard bench setup` and `switchboard bench throughput`
// (internal/bench), which add percentiles, a loopback TCP ceiling and diagnostics:
//
//	go test -run '^$' -bench . ./sdk/

const benchWait = 10 * time.Second

// benchServer runs a real switchboard server on loopback for a benchmark or test.
func benchServer(tb testing.TB) string {
	tb.Helper()
	cfg := config.Default()
	cfg.Listen = "127.0.0.1:0"
	cfg.TURN = false
	cfg.JoinsPerClient, cfg.JoinBurstPerClient = 1e6, 1e6 // one address plays every peer
	srv, err := server.New(cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		tb.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx) }()
	tb.Cleanup(func() {
		cancel()
		<-done
	})
	return "http://" + srv.Addr().String()
}

// benchAwait waits for ch, failing tb after benchWait.
func benchAwait(tb testing.TB, ch <-chan struct{}, what string) {
	tb.Helper()
	select {
	case <-ch:
	case <-time.After(benchWait):
		tb.Fatalf("timed out waiting for %s", what)
	}
}

// BenchmarkSetup reports ms/op from the start of the newcomer's sdk.Dial (an SDK pair) or the
// first NewPeerConnection (a bare Pion pair signaled in this process, default SettingEngine
// plus the loopback candidate) until a data channel is open on both sides. ns/op also counts
// closing the pair.
func BenchmarkSetup(b *testing.B) {
	url := benchServer(b)
	b.Run("sdk", func(b *testing.B) {
		var total time.Duration
		n := 0
		for b.Loop() {
			total += benchSDKSetup(b, url, fmt.Sprintf("bench-setup-%d", n))
			n++
		}
		b.ReportMetric(float64(total)/float64(time.Millisecond)/float64(n), "ms/op")
	})
	b.Run("bare-pion", func(b *testing.B) {
		var se webrtc.SettingEngine
		se.SetIncludeLoopbackCandidate(true) // a loopback-only host gathers nothing without it
		api := webrtc.NewAPI(webrtc.WithSettingEngine(se))
		var total time.Duration
		n := 0
		for b.Loop() {
			start := time.Now()
			p := newBenchPair(b, api)
			open := make(chan struct{})
			remoteOpen := make(chan struct{})
			p.answer.pc.OnDataChannel(func(dc *webrtc.DataChannel) { dc.OnOpen(func() { close(remoteOpen) }) })
			dc, err := p.offer.pc.CreateDataChannel("bench", nil)
			if err != nil {
				b.Fatal(err)
			}
			dc.OnOpen(func() { close(open) })
			p.negotiate(b)
			benchAwait(b, open, "open")
			benchAwait(b, remoteOpen, "remote open")
			total += time.Since(start)
			n++
			p.close()
		}
		b.ReportMetric(float64(total)/float64(time.Millisecond)/float64(n), "ms/op")
	})
}

// benchSDKSetup joins one peer to room, then times a newcomer from sdk.Dial to its data
// channel open on both sides, and closes both.
func benchSDKSetup(tb testing.TB, url, room string) time.Duration {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), benchWait)
	defer cancel()
	quiet := slog.New(slog.DiscardHandler)
	remoteOpen := make(chan struct{})
	var once sync.Once
	first, err := sdk.Dial(ctx, url, room, &sdk.Options{Loopback: true, Logger: quiet, OnPeer: func(p *sdk.Peer) {
		p.OnDataChannel(func(dc *webrtc.DataChannel) {
			dc.OnOpen(func() { once.Do(func() { close(remoteOpen) }) })
			dc.OnMessage(func(m webrtc.DataChannelMessage) { _ = dc.Send(m.Data) })
		})
	}})
	if err != nil {
		tb.Fatal(err)
	}
	defer first.Close()
	open := make(chan struct{})
	echo := make(chan struct{}, 1)
	var dc *webrtc.DataChannel
	start := time.Now()
	second, err := sdk.Dial(ctx, url, room, &sdk.Options{Loopback: true, Logger: quiet, OnPeer: func(p *sdk.Peer) {
		var err error
		if dc, err = p.CreateDataChannel("bench", nil); err != nil {
			tb.Error(err)
			return
		}
		dc.OnOpen(func() { close(open) })
		dc.OnMessage(func(webrtc.DataChannelMessage) { echo <- struct{}{} })
	}})
	if err != nil {
		tb.Fatal(err)
	}
	defer second.Close()
	benchAwait(tb, open, "open")
	benchAwait(tb, remoteOpen, "remote open")
	d := time.Since(start)
	// One echo before closing lets the first peer finish accepting the SDK's control channel.
	if err := dc.SendText("ping"); err != nil {
		tb.Fatal(err)
	}
	benchAwait(tb, echo, "echo")
	return d
}

// BenchmarkThroughput reports MB/s (b.SetBytes: bytes sent per op) on one data channel:
//   - ours: two SDK peers, 64 KiB messages on an ordered reliable detached channel,
//     bufferedAmount between 512 KiB and 1 MiB, 4 MiB UDP socket buffers;
//   - stock-example: Pion's examples/data-channels-flow-control settings on a bare pair:
//     1024-byte messages, unordered with maxRetransmits 0, the same watermarks, default
//     SettingEngine plus the loopback candidate. That channel drops messages by design, so
//     MB/s-received (what arrived) is its real figure; lost-% is the rest.
func BenchmarkThroughput(b *testing.B) {
	const perOp = 8 << 20
	b.Run("ours", func(b *testing.B) {
		url := benchServer(b)
		se := benchOurSettingEngine(b)
		rx := newBenchReceiver()
		b.Cleanup(rx.wait) // after the clients' Close (cleanups run last in, first out)
		room := fmt.Sprintf("bench-throughput-%d", time.Now().UnixNano())
		benchDial(b, url, room, &sdk.Options{SettingEngine: &se, OnPeer: func(p *sdk.Peer) {
			p.OnDataChannel(func(dc *webrtc.DataChannel) {
				dc.OnOpen(func() {
					rw, err := dc.Detach()
					if err != nil {
						b.Error(err)
						return
					}
					rx.readLoop(rw)
				})
			})
		}})
		open := make(chan struct{})
		var dc *webrtc.DataChannel
		var rw io.ReadWriteCloser
		benchDial(b, url, room, &sdk.Options{SettingEngine: &se, OnPeer: func(p *sdk.Peer) {
			var err error
			if dc, err = p.CreateDataChannel("bench", nil); err != nil {
				b.Error(err)
				return
			}
			dc.OnOpen(func() {
				if rw, err = dc.Detach(); err != nil {
					b.Error(err)
					return
				}
				close(open)
			})
		}})
		benchAwait(b, open, "open")
		tx := newBenchSender(dc, rw.Write, 64<<10, 1<<20, 512<<10)
		benchTransfer(b, tx, rx, perOp, true)
	})
	b.Run("stock-example", func(b *testing.B) {
		var se webrtc.SettingEngine
		se.SetIncludeLoopbackCandidate(true)
		p := newBenchPair(b, webrtc.NewAPI(webrtc.WithSettingEngine(se)))
		defer p.close()
		rx := newBenchReceiver()
		p.answer.pc.OnDataChannel(func(dc *webrtc.DataChannel) {
			dc.OnMessage(func(m webrtc.DataChannelMessage) { rx.add(len(m.Data)) })
		})
		ordered, retransmits := false, uint16(0)
		dc, err := p.offer.pc.CreateDataChannel("data", &webrtc.DataChannelInit{Ordered: &ordered, MaxRetransmits: &retransmits})
		if err != nil {
			b.Fatal(err)
		}
		open := make(chan struct{})
		dc.OnOpen(func() { close(open) })
		tx := newBenchSender(dc, func(m []byte) (int, error) { return len(m), dc.Send(m) }, 1024, 1<<20, 512<<10)
		p.negotiate(b)
		benchAwait(b, open, "open")
		benchTransfer(b, tx, rx, perOp, false)
	})
}

// benchTransfer sends perOp bytes per op; a reliable op ends when the receiver has them all,
// an unreliable one when nothing is left in flight (every chunk acknowledged or abandoned).
func benchTransfer(b *testing.B, tx *benchSender, rx *benchReceiver, perOp int64, reliable bool) {
	b.Helper()
	b.SetBytes(perOp)
	var sent int64
	for b.Loop() {
		if err := tx.send(perOp); err != nil {
			b.Fatal(err)
		}
		sent += perOp
		deadline := time.Now().Add(benchWait)
		for !(reliable && rx.got.Load() >= sent || !reliable && tx.dc.BufferedAmount() == 0) {
			if time.Now().After(deadline) {
				b.Fatalf("%d of %d bytes received", rx.got.Load(), sent)
			}
			time.Sleep(100 * time.Microsecond)
		}
	}
	got := rx.got.Load()
	b.ReportMetric(float64(got)/1e6/b.Elapsed().Seconds(), "MB/s-received")
	b.ReportMetric(100*float64(sent-got)/float64(sent), "lost-%")
}

// benchSender writes messages with the buffered-amount flow control of Pion's example.
type benchSender struct {
	dc    *webrtc.DataChannel
	write func([]byte) (int, error)
	msg   []byte
	high  uint64
	more  chan struct{}
}

func newBenchSender(dc *webrtc.DataChannel, write func([]byte) (int, error), size int, high, low uint64) *benchSender {
	s := &benchSender{dc: dc, write: write, msg: make([]byte, size), high: high, more: make(chan struct{}, 1)}
	dc.SetBufferedAmountLowThreshold(low)
	dc.OnBufferedAmountLow(func() {
		select {
		case s.more <- struct{}{}:
		default:
		}
	})
	return s
}

func (s *benchSender) send(n int64) error {
	for sent := int64(0); sent < n; {
		m := s.msg[:min(int64(len(s.msg)), n-sent)]
		if _, err := s.write(m); err != nil {
			return fmt.Errorf("write: %w", err)
		}
		sent += int64(len(m))
		if s.dc.BufferedAmount() > s.high {
			select {
			case <-s.more:
			case <-time.After(benchWait):
				return fmt.Errorf("bufferedAmount stuck at %d", s.dc.BufferedAmount())
			}
		}
	}
	return nil
}

// benchReceiver counts bytes; a detached channel's read loop ends when the channel closes.
type benchReceiver struct {
	got atomic.Int64
	wg  sync.WaitGroup
}

func newBenchReceiver() *benchReceiver { return &benchReceiver{} }

func (r *benchReceiver) add(n int) { r.got.Add(int64(n)) }

func (r *benchReceiver) readLoop(rw io.Reader) {
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		buf := make([]byte, 64<<10)
		for {
			n, err := rw.Read(buf)
			if err != nil {
				return
			}
			r.add(n)
		}
	}()
}

func (r *benchReceiver) wait() { r.wg.Wait() }

func benchDial(tb testing.TB, url, room string, opts *sdk.Options) *sdk.Client {
	tb.Helper()
	opts.Logger = slog.New(slog.DiscardHandler)
	ctx, cancel := context.WithTimeout(context.Background(), benchWait)
	defer cancel()
	c, err := sdk.Dial(ctx, url, room, opts)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { c.Close() })
	return c
}

// benchOurSettingEngine is the SDK's loopback SettingEngine (sdk.Options.Loopback) with
// detached data channels and 4 MiB UDP socket buffers.
func benchOurSettingEngine(tb testing.TB) webrtc.SettingEngine {
	tb.Helper()
	var se webrtc.SettingEngine
	const w = 100 * time.Millisecond
	se.SetSrflxAcceptanceMinWait(w)
	se.SetPrflxAcceptanceMinWait(w)
	se.SetRelayAcceptanceMinWait(w)
	se.SetIncludeLoopbackCandidate(true)
	se.SetNetworkTypes([]webrtc.NetworkType{webrtc.NetworkTypeUDP4})
	se.SetInterfaceFilter(func(name string) bool { return name == "lo" })
	se.SetIPFilter(func(ip net.IP) bool { return ip.IsLoopback() })
	se.SetICEMulticastDNSMode(ice.MulticastDNSModeDisabled)
	se.DetachDataChannels()
	n, err := stdnet.NewNet()
	if err != nil {
		tb.Fatal(err)
	}
	se.SetNet(benchBufferedNet{n})
	return se
}

// benchBufferedNet gives every UDP socket ICE opens 4 MiB buffers (capped by
// net.core.rmem_max): with the default 208 KiB the kernel drops packets under load, and each
// loss stalls a reliable SCTP stream for its 1 s minimum retransmission timeout.
type benchBufferedNet struct{ *stdnet.Net }

func (n benchBufferedNet) ListenUDP(network string, laddr *net.UDPAddr) (transport.UDPConn, error) {
	c, err := n.Net.ListenUDP(network, laddr)
	if uc, ok := c.(*net.UDPConn); ok && err == nil {
		_ = uc.SetReadBuffer(4 << 20)
		_ = uc.SetWriteBuffer(4 << 20)
	}
	return c, err //nolint:wrapcheck // Pion's own error, passed through
}

// benchPair is two Pion PeerConnections signaled by direct function calls, with the
// candidates that arrive before a remote description queued.
type benchPair struct{ offer, answer *benchSide }

type benchSide struct {
	pc        *webrtc.PeerConnection
	mu        sync.Mutex
	remoteSet bool
	pending   []webrtc.ICECandidateInit
}

func newBenchPair(tb testing.TB, api *webrtc.API) *benchPair {
	tb.Helper()
	p := &benchPair{}
	for _, s := range []**benchSide{&p.offer, &p.answer} {
		pc, err := api.NewPeerConnection(webrtc.Configuration{})
		if err != nil {
			tb.Fatal(err)
		}
		*s = &benchSide{pc: pc}
	}
	trickle := func(from, to *benchSide) {
		from.pc.OnICECandidate(func(c *webrtc.ICECandidate) {
			if c == nil {
				return
			}
			to.mu.Lock()
			defer to.mu.Unlock()
			if !to.remoteSet {
				to.pending = append(to.pending, c.ToJSON())
				return
			}
			if err := to.pc.AddICECandidate(c.ToJSON()); err != nil {
				tb.Error(err)
			}
		})
	}
	trickle(p.offer, p.answer)
	trickle(p.answer, p.offer)
	return p
}

func (s *benchSide) setRemote(tb testing.TB, d webrtc.SessionDescription) {
	tb.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.pc.SetRemoteDescription(d); err != nil {
		tb.Fatal(err)
	}
	s.remoteSet = true
	for _, c := range s.pending {
		if err := s.pc.AddICECandidate(c); err != nil {
			tb.Fatal(err)
		}
	}
	s.pending = nil
}

func (p *benchPair) negotiate(tb testing.TB) {
	tb.Helper()
	offer, err := p.offer.pc.CreateOffer(nil)
	if err != nil {
		tb.Fatal(err)
	}
	if err := p.offer.pc.SetLocalDescription(offer); err != nil {
		tb.Fatal(err)
	}
	p.answer.setRemote(tb, offer)
	answer, err := p.answer.pc.CreateAnswer(nil)
	if err != nil {
		tb.Fatal(err)
	}
	if err := p.answer.pc.SetLocalDescription(answer); err != nil {
		tb.Fatal(err)
	}
	p.offer.setRemote(tb, answer)
}

func (p *benchPair) close() {
	_ = p.offer.pc.Close()
	_ = p.answer.pc.Close()
}
