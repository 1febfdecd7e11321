package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/switchboard-rtc/switchboard/internal/transfer"
	"github.com/switchboard-rtc/switchboard/sdk"
)

// How send and recv pick their path (docs/file-transfer.md, "Over QUIC"): each announces
// "quic":1 in its join meta unless --no-quic; when the other side announced it too, both
// call Peer.QUIC, the sender within quicSendWait, the receiver within quicRecvWait (longer,
// so that a sender that got its connection finds the receiver still waiting for the stream).
// The sender sends over a QUIC stream when the connection comes up, else over a data channel
// as before; the receiver takes whichever arrives first. Browsers announce nothing and get
// the data channel.
const (
	quicSendWait = 5 * time.Second
	quicRecvWait = quicSendWait + 3*time.Second
)

// transferMeta is the join meta of send and recv.
func transferMeta(role string, quic bool) map[string]any {
	m := map[string]any{"role": role}
	if quic {
		m["quic"] = 1
	}
	return m
}

// quicOf reports whether a peer announced QUIC in its meta.
func quicOf(p *sdk.Peer) bool {
	var m struct {
		QUIC int `json:"quic"`
	}
	_ = json.Unmarshal(p.Meta(), &m)
	return m.QUIC == 1
}

// senderChannel returns the channel the sender sends to p on, and says which it is ("over
// QUIC (direct)", "over the data channel (...)").
func senderChannel(ctx context.Context, p *sdk.Peer, useQUIC bool) (transfer.Channel, string, error) {
	why := ""
	if useQUIC && quicOf(p) {
		qctx, cancel := context.WithTimeout(ctx, quicSendWait)
		ch, err := openQUICStream(qctx, p)
		cancel()
		if err == nil {
			return ch, "over QUIC (" + p.QUICPath() + ")", nil
		}
		if ctx.Err() != nil {
			return nil, "", ctx.Err()
		}
		why = " (no QUIC: " + quicReason(err) + ")"
	}
	dc, err := p.CreateDataChannel(transfer.Label, transfer.DataChannelInit())
	if err != nil {
		return nil, "", err
	}
	return transfer.DataChannel(dc, &sdk.ChannelWriterOptions{MessageSize: transfer.ChunkSize}), "over the data channel" + why, nil
}

func openQUICStream(ctx context.Context, p *sdk.Peer) (transfer.Channel, error) {
	conn, err := p.QUIC(ctx)
	if err != nil {
		return nil, err
	}
	return transfer.OpenStream(ctx, conn)
}

// quicReason shortens a QUIC setup error for the path line.
func quicReason(err error) string {
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		return fmt.Sprintf("none within %v", quicSendWait)
	default:
		return err.Error()
	}
}

// quicAcceptor accepts the sender's QUIC stream for recv, beside its data channel: one
// goroutine per sending peer that announced QUIC, stopped by stop.
type quicAcceptor struct {
	ctx    context.Context //nolint:containedctx // the command's lifetime, for its goroutines
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

func newQUICAcceptor(ctx context.Context) *quicAcceptor {
	a := &quicAcceptor{}
	a.ctx, a.cancel = context.WithCancel(ctx)
	return a
}

// watch waits for p to connect, sets up QUIC with it and hands the first stream to take,
// which returns false when the receiver is already busy (the stream is then closed).
func (a *quicAcceptor) watch(p *sdk.Peer, take func(transfer.Channel, string) bool) {
	a.wg.Add(1)
	go func() {
		defer a.wg.Done()
		select {
		case <-p.Connected():
		case <-p.Closed():
			return
		case <-a.ctx.Done():
			return
		}
		qctx, cancel := context.WithTimeout(a.ctx, quicRecvWait)
		conn, err := p.QUIC(qctx)
		cancel()
		if err != nil {
			return // the data channel, then
		}
		ch, err := transfer.AcceptStream(a.ctx, conn)
		if err != nil {
			return
		}
		if !take(ch, "over QUIC ("+p.QUICPath()+")") {
			_ = ch.Close()
		}
	}()
}

// stop ends the watches and waits for them.
func (a *quicAcceptor) stop() {
	a.cancel()
	a.wg.Wait()
}
