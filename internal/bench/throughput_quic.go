package bench

import (
	"context"
	"errors"
	"fmt"
	"github.com/pion/transport/v5"
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
// the SDK's QUIC sessions use through Options.Net when there is an impairment; without one
// they run on their own sockets, as send and recv). The time counts from the first write to
// the last byte read; the QUIC setup is reported beside it: from the sender's join to both
// QUIC calls returned, the calls made from OnPeer as send and recv do (not after the peer
// connection is up), and whether the peer connection had connected by then.
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
	// Each side calls QUIC as soon as it learns of the other (OnPeer), as send and recv do,
	// beside the peer connection's negotiation; the time of each is kept.
	type side struct {
		conn   *quic.Conn
		err    error
		quicAt time.Time // QUIC returned
		pcUp   bool      // the peer connection had connected by then
	}
	sides := make(chan side, 2)
	var wg sync.WaitGroup
	defer wg.Wait() // after the clients close (deferred below), which ends every QUIC call
	onPeer := func(p *sdk.Peer) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var sd side
			sd.conn, sd.err = p.QUIC(ctx)
			sd.quicAt = time.Now()
			select {
			case <-p.Connected():
				sd.pcUp = true
			default:
			}
			sides <- sd
		}()
	}
	// Unimpaired, the QUIC sessions get their own sockets (Options.Net nil), as send and recv
	// do; impaired, they share the impaired network (and so go over ice.Conn).
	var qnet transport.Net
	if k.impair != (netimpair.Config{}) {
		qnet = nt
	}
	dialOne := func() (*sdk.Client, error) {
		return sdk.Dial(ctx, url, room, &sdk.Options{Loopback: loopback, SettingEngine: &se, Net: qnet,
			UDPBufferSize: k.udpBuffer, Logger: quiet, OnPeer: onPeer})
	}
	rx, err := dialOne()
	if err != nil {
		return transfer{}, fmt.Errorf("receiver: %w", err)
	}
	defer rx.Close()
	joinAt := time.Now() // the sender joins: the pair's setup starts
	tx, err := dialOne()
	if err != nil {
		return transfer{}, fmt.Errorf("sender: %w", err)
	}
	defer tx.Close()
	var got2 []side
	for len(got2) < 2 {
		select {
		case sd := <-sides:
			got2 = append(got2, sd)
		case <-ctx.Done():
			return transfer{}, fmt.Errorf("waiting for QUIC: %w", context.Cause(ctx))
		}
	}
	if err := errors.Join(got2[0].err, got2[1].err); err != nil {
		return transfer{}, err
	}
	last := got2[0].quicAt
	if got2[1].quicAt.After(last) {
		last = got2[1].quicAt
	}
	setup := last.Sub(joinAt)
	pcNote := "before the peer connection"
	if got2[0].pcUp && got2[1].pcUp {
		pcNote = "after the peer connection"
	}
	pt, rc, tc := tx.Peer(rx.ID()), got2[0].conn, got2[1].conn
	if pt == nil {
		return transfer{}, errors.New("the sender does not know the receiver")
	}
	if c, _ := pt.QUIC(ctx); c != tc { // got2 is in arrival order: put the sender's first
		rc, tc = tc, rc
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
	start := time.Now()
	sent, _ := writeN(s, n) // a failed write: the reader reports it, or ctx
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
	note := fmt.Sprintf("quic up %v after the sender joined (%s; %s); sender: %d packets, %d declared lost, cwnd %s, srtt %v",
		setup.Round(time.Millisecond), pt.QUICPath(), pcNote, st.PacketsSent, st.PacketsLost, sizeStr(st.CongestionWindow), st.SmoothedRTT.Round(time.Millisecond))
	return transfer{sent: sent, received: res.n, elapsed: res.at.Sub(start), note: note}, nil
}
