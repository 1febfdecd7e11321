package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
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

// resumeOf reports whether a receiver announced that it keeps partial files and continues
// them ("resume":1 in its meta): the sender then offers to (transfer.SendOptions.Resume).
func resumeOf(p *sdk.Peer) bool { return metaFlag(p, "resume") }

// quicOf reports whether a peer announced QUIC in its meta.
func quicOf(p *sdk.Peer) bool { return metaFlag(p, "quic") }

// metaFlag reports whether a peer's meta has key set to 1.
func metaFlag(p *sdk.Peer, key string) bool {
	var m map[string]json.RawMessage
	_ = json.Unmarshal(p.Meta(), &m)
	return string(m[key]) == "1"
}

// Bounds of the QUIC setups a command runs: any peer can announce QUIC, and each setup holds
// an ICE agent, sockets and maybe a TURN allocation, so at most quicMaxSetups run at once
// (the others go without QUIC: their data channel still works) and each ends at most its
// limit after it started, whatever the peer connection does (a silent peer's never fails).
// The sender's limit is shorter than the receiver's, so that a sender that got its
// connection finds the receiver still waiting for the stream.
const (
	quicMaxSetups  = 4
	quicSendLimit  = 12 * time.Second
	quicRecvLimit  = quicSendLimit + 3*time.Second
	quicCodeNoFile = 0x5c // the QUIC application error of a connection that carried no transfer
)

// onQUICSetups, if set (tests), is called with each command's setups as they are made.
var onQUICSetups func(*quicSetups)

// quicSetups runs the QUIC setups of a command, one goroutine per peer, stopped by stop.
type quicSetups struct {
	ctx    context.Context //nolint:containedctx // the command's lifetime, for its goroutines
	cancel context.CancelFunc
	wg     sync.WaitGroup
	limit  time.Duration // a setup's bound from its start

	mu      sync.Mutex
	active  int           // setups running
	peak    int           // most setups running at once
	refused int           // setups not started: quicMaxSetups were running
	changed chan struct{} // closed (and replaced) when active changes
}

func newQUICSetups(ctx context.Context, limit time.Duration) *quicSetups {
	s := &quicSetups{limit: limit, changed: make(chan struct{})}
	s.ctx, s.cancel = context.WithCancel(ctx)
	if onQUICSetups != nil {
		onQUICSetups(s)
	}
	return s
}

// acquire takes a slot for a setup, or reports that none is free.
func (s *quicSetups) acquire() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.active >= quicMaxSetups {
		s.refused++
		return false
	}
	s.active++
	s.peak = max(s.peak, s.active)
	close(s.changed)
	s.changed = make(chan struct{})
	return true
}

func (s *quicSetups) release() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.active--
	close(s.changed)
	s.changed = make(chan struct{})
}

// state returns the setups running, the most at once, the refused, and a channel closed at
// the next change.
func (s *quicSetups) state() (active, peak, refused int, changed <-chan struct{}) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.active, s.peak, s.refused, s.changed
}

// quicAttempt is one peer's QUIC setup: up is closed if it succeeds, done once it is over
// (conn or err set; cause: why the setup's context ended, if it did).
type quicAttempt struct {
	up, done chan struct{}
	conn     *quic.Conn
	err      error
	cause    error
}

// start calls p.QUIC now, in the background, or returns nil if quicMaxSetups are running.
// The setup, then included, ends with the command, when p's connection fails, wait after
// p's connection is up (the data channel is there then: the setup is not bounded before the
// peer connection, which it runs beside, has had its chance), or s.limit after its start.
// then, if set, runs after a successful setup, in the same goroutine; if it returns false
// (the connection carried nothing), the connection is closed.
func (s *quicSetups) start(p *sdk.Peer, failed <-chan struct{}, wait time.Duration, then func(context.Context, *quic.Conn) bool) *quicAttempt {
	if !s.acquire() {
		return nil
	}
	a := &quicAttempt{up: make(chan struct{}), done: make(chan struct{})}
	finished := make(chan struct{})
	lctx, lcancel := context.WithTimeoutCause(s.ctx, s.limit, fmt.Errorf("none within %v", s.limit))
	ctx, cancel := context.WithCancelCause(lctx)
	s.wg.Add(2)
	go func() { // the bound
		defer s.wg.Done()
		select {
		case <-p.Connected():
		case <-failed:
			cancel(errors.New("the peer connection failed"))
			return
		case <-finished:
			return
		}
		t := time.NewTimer(wait)
		defer t.Stop()
		select {
		case <-t.C:
			cancel(fmt.Errorf("none within %v of the peer connection", wait))
		case <-failed:
			cancel(errors.New("the peer connection failed"))
		case <-finished:
		}
	}()
	go func() {
		defer s.wg.Done()
		defer s.release()
		defer lcancel()
		defer cancel(nil)
		defer close(finished)
		a.conn, a.err = p.QUIC(ctx)
		if ctx.Err() != nil {
			a.cause = context.Cause(ctx)
		}
		if a.err == nil {
			close(a.up)
		}
		close(a.done)
		if a.err == nil && then != nil && !then(ctx, a.conn) {
			_ = a.conn.CloseWithError(quicCodeNoFile, "no transfer")
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
		why = " (no QUIC: " + quicReason(q, err) + ")"
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

// quicReason says in a few words why a QUIC setup (a) gave no connection, or its stream
// could not be opened (err).
func quicReason(a *quicAttempt, err error) string {
	switch {
	case errors.Is(err, sdk.ErrPeerClosed):
		return "the receiver left"
	case errors.Is(err, sdk.ErrQUICSignal):
		return "the receiver's QUIC exchange was malformed"
	case a.err != nil && a.cause != nil:
		return a.cause.Error()
	case errors.Is(err, context.DeadlineExceeded):
		return "its stream did not open in time"
	default:
		return err.Error()
	}
}

// heardChannel is a Channel that records whether the remote sent anything on it.
type heardChannel struct {
	transfer.Channel
	any atomic.Bool
}

// Unwrap returns the channel c wraps (the transfer asks it why the channel ended).
func (c *heardChannel) Unwrap() transfer.Channel { return c.Channel }

func (c *heardChannel) Handle(open func(), message func(transfer.Message), closed func()) {
	c.Channel.Handle(open, func(m transfer.Message) {
		c.any.Store(true)
		message(m)
	}, closed)
}
