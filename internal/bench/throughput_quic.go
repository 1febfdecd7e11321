package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"time"

	"github.com/quic-go/quic-go"

	"github.com/switchboard-rtc/switchboard/internal/netimpair"
	"github.com/switchboard-rtc/switchboard/sdk"
)

// quicTransfer sends n bytes between two SDK peers over their QUIC connection (Peer.QUIC):
// one stream, 64 KiB writes, on the network of ours (k's UDP buffers and impairment, which
// the SDK's QUIC sessions use through Options.Net). The time counts from the first write to
// the last byte read; the QUIC setup (both QUIC calls) is reported beside it.
func quicTransfer(ctx context.Context, url string, loopback bool, k dcKnobs, n int64) (transfer, error) {
	ctr := newPionCounters()
	se, err := knobSettingEngine(sdkSettingEngine(loopback), k, ctr)
	if err != nil {
		return transfer{}, err
	}
	nt, err := sdk.BufferedNet(k.udpBuffer, nil)
	if err != nil {
		return transfer{}, fmt.Errorf("network: %w", err)
	}
	if k.impair != (netimpair.Config{}) {
		nt = netimpair.Net(nt, k.impair)
	}
	quiet := slog.New(slog.DiscardHandler)
	room := "quic-" + newRunID()
	dialOne := func(peers chan<- *sdk.Peer) (*sdk.Client, error) {
		return sdk.Dial(ctx, url, room, &sdk.Options{Loopback: loopback, SettingEngine: &se, Net: nt, Logger: quiet,
			OnPeer: func(p *sdk.Peer) {
				select {
				case peers <- p:
				default:
				}
			}})
	}
	rxPeers, txPeers := make(chan *sdk.Peer, 1), make(chan *sdk.Peer, 1)
	rx, err := dialOne(rxPeers)
	if err != nil {
		return transfer{}, fmt.Errorf("receiver: %w", err)
	}
	defer rx.Close()
	tx, err := dialOne(txPeers)
	if err != nil {
		return transfer{}, fmt.Errorf("sender: %w", err)
	}
	defer tx.Close()
	var pr, pt *sdk.Peer
	for pr == nil || pt == nil {
		select {
		case pr = <-rxPeers:
		case pt = <-txPeers:
		case <-ctx.Done():
			return transfer{}, fmt.Errorf("waiting for the peers: %w", context.Cause(ctx))
		}
	}
	for _, p := range []*sdk.Peer{pr, pt} {
		select {
		case <-p.Connected():
		case <-ctx.Done():
			return transfer{}, fmt.Errorf("waiting for the connection: %w", context.Cause(ctx))
		}
	}
	setupStart := time.Now()
	var rc, tc *quic.Conn
	var re, te error
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); rc, re = pr.QUIC(ctx) }()
	go func() { defer wg.Done(); tc, te = pt.QUIC(ctx) }()
	wg.Wait()
	if err := errors.Join(re, te); err != nil {
		return transfer{}, err
	}
	setup := time.Since(setupStart)

	type readResult struct {
		n   int64
		at  time.Time
		err error
	}
	got := make(chan readResult, 1)
	go func() {
		s, err := rc.AcceptStream(ctx)
		if err != nil {
			got <- readResult{err: fmt.Errorf("accept stream: %w", err)}
			return
		}
		m, err := io.CopyBuffer(io.Discard, io.LimitReader(s, n), make([]byte, 64<<10))
		got <- readResult{n: m, at: time.Now(), err: err}
	}()
	s, err := tc.OpenStreamSync(ctx)
	if err != nil {
		return transfer{}, fmt.Errorf("open stream: %w", err)
	}
	stop := context.AfterFunc(ctx, func() { s.CancelWrite(0) })
	defer stop()
	buf := make([]byte, 64<<10)
	start := time.Now()
	var sent int64
	for sent < n {
		w, err := s.Write(buf[:min(int64(len(buf)), n-sent)])
		sent += int64(w)
		if err != nil {
			break // the reader reports it, or ctx
		}
	}
	var res readResult
	select {
	case res = <-got:
	case <-ctx.Done():
		_ = tc.CloseWithError(0, "timeout")
		<-got
		return transfer{}, fmt.Errorf("quic read: %w", context.Cause(ctx))
	}
	if res.err != nil {
		return transfer{}, fmt.Errorf("quic read: %w", res.err)
	}
	st := tc.ConnectionStats()
	note := fmt.Sprintf("quic setup %v (%s); sender: %d packets, %d declared lost, cwnd %s, srtt %v",
		setup.Round(time.Millisecond), pt.QUICPath(), st.PacketsSent, st.PacketsLost, sizeStr(st.CongestionWindow), st.SmoothedRTT.Round(time.Millisecond))
	return transfer{sent: sent, received: res.n, elapsed: res.at.Sub(start), note: note}, nil
}
