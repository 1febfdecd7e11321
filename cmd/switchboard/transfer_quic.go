package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/quic-go/quic-go"

	"github.com/switchboard-rtc/switchboard/internal/transfer"
	"github.com/switchboard-rtc/switchboard/sdk"
)

// How send and recv pick their path (docs/file-transfer.md, "Over QUIC"): each announces
// "quic":1 in its join meta unless --no-quic. As soon as a side learns of a peer that
// announced it too (OnPeer), it calls Peer.QUIC, in parallel with the peer connection's
// negotiation. The sender sends over a QUIC stream if the QUIC connection is up before the
// peer connection, or within quicSendWait after it; else over a data channel as before. It
// never opens both, and the receiver takes whichever arrives first (and closes anything
// after), so exactly one carries the files. The receiver's QUIC setup waits quicRecvWait
// (longer, so that a sender that got its connection finds the receiver still waiting for
// the stream). Browsers announce nothing and get the data channel.
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

// quicSetups runs the QUIC setups of a command, one goroutine per peer, stopped by stop.
type quicSetups struct {
	ctx    context.Context //nolint:containedctx // the command's lifetime, for its goroutines
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

func newQUICSetups(ctx context.Context) *quicSetups {
	s := &quicSetups{}
	s.ctx, s.cancel = context.WithCancel(ctx)
	return s
}

// quicAttempt is one peer's QUIC setup: up is closed if it succeeds, done once it is over
// (conn or err set).
type quicAttempt struct {
	up, done chan struct{}
	conn     *quic.Conn
	err      error
}

// start calls p.QUIC now, in the background. The setup ends with the command, when p's
// connection fails, or wait after p's connection is up (the data channel is there then):
// it is never bounded before the peer connection, which it runs beside, has had its chance.
// then, if set, runs after a successful setup, in the same goroutine.
func (s *quicSetups) start(p *sdk.Peer, failed <-chan struct{}, wait time.Duration, then func(*quic.Conn)) *quicAttempt {
	a := &quicAttempt{up: make(chan struct{}), done: make(chan struct{})}
	ctx, cancel := context.WithCancel(s.ctx)
	s.wg.Add(2)
	go func() { // the bound
		defer s.wg.Done()
		select {
		case <-p.Connected():
		case <-failed:
			cancel()
			return
		case <-a.done:
			return
		}
		t := time.NewTimer(wait)
		defer t.Stop()
		select {
		case <-t.C:
			cancel()
		case <-failed:
			cancel()
		case <-a.done:
		}
	}()
	go func() {
		defer s.wg.Done()
		defer cancel()
		a.conn, a.err = p.QUIC(ctx)
		if a.err == nil {
			close(a.up)
		}
		close(a.done)
		if a.err == nil && then != nil {
			then(a.conn)
		}
	}()
	return a
}

// stop ends the setups and what runs after them, and waits for them.
func (s *quicSetups) stop() {
	s.cancel()
	s.wg.Wait()
}

// senderChannel returns the channel the sender sends to p on, and says which it is ("over
// QUIC (direct)", "over the data channel (...)"). q is p's QUIC attempt, nil without one.
func senderChannel(ctx context.Context, p *sdk.Peer, q *quicAttempt, failed <-chan struct{}) (transfer.Channel, string, error) {
	why := ""
	if q != nil {
		select {
		case <-q.done: // within quicSendWait of the peer connection, at most
		case <-ctx.Done():
			return nil, "", ctx.Err()
		}
		err := q.err
		if err == nil {
			var ch transfer.Channel
			octx, cancel := context.WithTimeout(ctx, quicSendWait)
			ch, err = transfer.OpenStream(octx, q.conn)
			cancel()
			if err == nil {
				return ch, "over QUIC (" + p.QUICPath() + ")", nil
			}
		}
		if ctx.Err() != nil {
			return nil, "", ctx.Err()
		}
		why = " (no QUIC: " + quicReason(err) + ")"
	}
	// The data channel is opened once the peer is connected, not before: a channel created on
	// the side that did not join last races the newcomer's offer (glare), and the connection
	// carries the SDK's control channel already, so no new negotiation is needed.
	select {
	case <-p.Connected():
	case <-p.Closed():
		return nil, "", errors.New("the receiver left")
	case <-failed:
		return nil, "", errors.New("the connection to the receiver failed")
	case <-ctx.Done():
		return nil, "", ctx.Err()
	}
	dc, err := p.CreateDataChannel(transfer.Label, transfer.DataChannelInit())
	if err != nil {
		return nil, "", err
	}
	return transfer.DataChannel(dc, &sdk.ChannelWriterOptions{MessageSize: transfer.ChunkSize}), "over the data channel" + why, nil
}

// quicReason shortens a QUIC setup error for the path line.
func quicReason(err error) string {
	switch {
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return fmt.Sprintf("none within %v of the peer connection", quicSendWait)
	default:
		return err.Error()
	}
}
