package sdk

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/pion/webrtc/v4"
)

// Defaults of ChannelWriterOptions.
const (
	// DefaultMessageSize is the largest message Write sends: 64 KiB, which every current
	// browser and Pion accept (Chromium announces a max-message-size of 256 KiB).
	DefaultMessageSize = 64 << 10
	// DefaultHighWater is the buffered amount above which writes wait. The buffered amount
	// counts bytes in flight until the remote acknowledges them, so the mark bounds the rate
	// to about HighWater/RTT: 4 MiB keeps a 100 ms path near 40 MB/s, more than Pion's
	// default 1 MiB SCTP receive window lets through; on loopback 256 KiB to 4 MiB measure
	// the same.
	DefaultHighWater = 4 << 20
)

// Errors returned by a ChannelWriter.
var (
	// ErrWriterClosed is returned by writes after (or blocked during) ChannelWriter.Close.
	ErrWriterClosed = errors.New("sdk: channel writer closed")
	// ErrChannelNotOpen is returned when the data channel is not (or no longer) open.
	ErrChannelNotOpen = errors.New("sdk: data channel not open")
)

// closedPoll is how often a waiting write looks at the channel's state, as a backstop: Pion
// fires no buffered-amount event once a channel has closed, and a ChannelWriter does not
// take the channel's OnClose handler from the application.
const closedPoll = 200 * time.Millisecond

// ChannelWriterOptions tune a ChannelWriter. The zero value means defaults.
type ChannelWriterOptions struct {
	// MessageSize is the largest message Write sends; bigger writes are split (default
	// DefaultMessageSize).
	MessageSize int
	// HighWater: a message is only sent while the channel's BufferedAmount is at or below
	// it, so the amount never exceeds HighWater plus one message (default DefaultHighWater).
	HighWater uint64
	// LowWater is the BufferedAmountLowThreshold at which waiting writes resume (default
	// HighWater/4; at most HighWater).
	LowWater uint64
}

// ChannelWriter sends on a WebRTC data channel with back-pressure. Pion's Send never blocks:
// it queues everything it is given, so a fast producer would buffer a whole file in memory.
// A ChannelWriter sends only while the channel's BufferedAmount (bytes queued and not yet
// acknowledged by the remote) is at most HighWater, and otherwise waits, woken by the
// channel's buffered-amount-low event, until the amount has drained to LowWater.
//
// Writes are serialized, so BufferedAmount never exceeds HighWater plus one message through
// this writer (bytes sent on the channel directly are not accounted for). A waiting write
// returns when its context is done, when Close is called, or when the channel closes.
//
// NewChannelWriter takes over the channel's OnBufferedAmountLow handler and its
// BufferedAmountLowThreshold; other handlers (OnOpen, OnClose, OnMessage) stay the
// application's. Write on a channel that is not open yet fails with ErrChannelNotOpen.
type ChannelWriter struct {
	dc   *webrtc.DataChannel
	msg  int
	high uint64
	low  uint64

	mu        sync.Mutex    // held by the one write in progress
	wake      chan struct{} // 1-buffered: the buffered amount fell to the low threshold
	closed    chan struct{}
	closeOnce sync.Once
}

// NewChannelWriter returns a writer for dc. A nil opts means defaults.
func NewChannelWriter(dc *webrtc.DataChannel, opts *ChannelWriterOptions) *ChannelWriter {
	var o ChannelWriterOptions
	if opts != nil {
		o = *opts
	}
	if o.MessageSize <= 0 {
		o.MessageSize = DefaultMessageSize
	}
	if o.HighWater == 0 {
		o.HighWater = DefaultHighWater
	}
	if o.LowWater == 0 {
		o.LowWater = o.HighWater / 4
	}
	o.LowWater = min(o.LowWater, o.HighWater)
	w := &ChannelWriter{
		dc:     dc,
		msg:    o.MessageSize,
		high:   o.HighWater,
		low:    o.LowWater,
		wake:   make(chan struct{}, 1),
		closed: make(chan struct{}),
	}
	dc.SetBufferedAmountLowThreshold(w.low)
	dc.OnBufferedAmountLow(w.signal)
	return w
}

func (w *ChannelWriter) signal() {
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

// MessageSize returns the largest message Write sends.
func (w *ChannelWriter) MessageSize() int { return w.msg }

// HighWater returns the buffered amount above which writes wait.
func (w *ChannelWriter) HighWater() uint64 { return w.high }

// Write sends p as binary messages of at most MessageSize bytes, waiting whenever the
// channel's buffer is above HighWater. It blocks until all of p is queued, Close is called or
// the channel closes; use WriteContext to bound the wait. It returns the number of bytes
// queued. Write implements io.Writer.
func (w *ChannelWriter) Write(p []byte) (int, error) {
	return w.WriteContext(context.Background(), p)
}

// WriteContext is Write that also gives up when ctx is done.
func (w *ChannelWriter) WriteContext(ctx context.Context, p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	n := 0
	for n < len(p) {
		end := min(n+w.msg, len(p))
		if err := w.waitBelow(ctx, w.high); err != nil {
			return n, err
		}
		if err := w.dc.Send(p[n:end]); err != nil {
			return n, fmt.Errorf("sdk: data channel send: %w", err)
		}
		n = end
	}
	return n, nil
}

// Send sends b as one binary message, whatever its size, once the buffer is at or below
// HighWater. Pion copies b: the caller may reuse it when Send returns.
func (w *ChannelWriter) Send(ctx context.Context, b []byte) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if err := w.waitBelow(ctx, w.high); err != nil {
		return err
	}
	if err := w.dc.Send(b); err != nil {
		return fmt.Errorf("sdk: data channel send: %w", err)
	}
	return nil
}

// SendText sends s as one text message, once the buffer is at or below HighWater.
func (w *ChannelWriter) SendText(ctx context.Context, s string) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if err := w.waitBelow(ctx, w.high); err != nil {
		return err
	}
	if err := w.dc.SendText(s); err != nil {
		return fmt.Errorf("sdk: data channel send: %w", err)
	}
	return nil
}

// Flush waits until the channel's BufferedAmount is zero: everything sent so far has been
// acknowledged by the remote's SCTP stack (received, though not necessarily read by the
// application). Call it before closing a connection whose last messages must arrive.
func (w *ChannelWriter) Flush(ctx context.Context) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.dc.SetBufferedAmountLowThreshold(0)
	defer w.dc.SetBufferedAmountLowThreshold(w.low)
	return w.waitBelow(ctx, 0)
}

// Close makes waiting and later writes fail with ErrWriterClosed. It does not close the
// data channel. Close is safe to call from any goroutine, more than once.
func (w *ChannelWriter) Close() error {
	w.closeOnce.Do(func() { close(w.closed) })
	return nil
}

// waitBelow returns once the buffered amount is at most limit. The low threshold must be at
// most limit, so that the amount draining past it fires the event that wakes the wait.
// Called with w.mu held.
func (w *ChannelWriter) waitBelow(ctx context.Context, limit uint64) error {
	var poll *time.Timer
	defer func() {
		if poll != nil {
			poll.Stop()
		}
	}()
	for {
		select { // drop a stale wake-up: the state checked below is newer
		case <-w.wake:
		default:
		}
		select {
		case <-w.closed:
			return ErrWriterClosed
		default:
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if s := w.dc.ReadyState(); s != webrtc.DataChannelStateOpen {
			return fmt.Errorf("%w (%s)", ErrChannelNotOpen, s)
		}
		if w.dc.BufferedAmount() <= limit {
			return nil
		}
		// The amount is above the threshold, so its fall to the threshold is still ahead and
		// will put a token in w.wake.
		if poll == nil {
			poll = time.NewTimer(closedPoll)
		} else {
			poll.Reset(closedPoll)
		}
		select {
		case <-w.wake:
		case <-poll.C:
		case <-w.closed:
			return ErrWriterClosed
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}
