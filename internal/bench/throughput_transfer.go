package bench

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"time"

	"github.com/pion/webrtc/v4"

	"github.com/switchboard-rtc/switchboard/sdk"
)

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

// tcpTransfer copies n bytes over a loopback TCP connection.
func tcpTransfer(ctx context.Context, n int64) (transfer, error) {
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", "127.0.0.1:0")
	if err != nil {
		return transfer{}, fmt.Errorf("tcp listen: %w", err)
	}
	defer ln.Close()
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
	start := time.Now()
	sent, err := writeN(c, n)
	if err != nil {
		_ = c.Close()
		<-got
		return transfer{}, fmt.Errorf("tcp write: %w", err)
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

// readResult is what the receiving goroutine of a TCP or QUIC transfer reports: the bytes it
// read, when it read the last one, and why it stopped early.
type readResult struct {
	n   int64
	at  time.Time
	err error
}

// writeN writes n zero bytes to w in 64 KiB writes and returns how many it wrote, stopping at
// the first error.
func writeN(w io.Writer, n int64) (int64, error) {
	buf := make([]byte, 64<<10)
	var sent int64
	for sent < n {
		m, err := w.Write(buf[:min(int64(len(buf)), n-sent)])
		sent += int64(m)
		if err != nil {
			return sent, err
		}
	}
	return sent, nil
}
