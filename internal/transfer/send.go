package transfer

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"
	"sync"
	"time"

	"github.com/pion/webrtc/v4"

	"github.com/switchboard-rtc/switchboard/sdk"
)

// SendOptions configure a Sender. The zero value means defaults.
type SendOptions struct {
	// Progress, when set, is called with the transfer's progress (see Progress).
	Progress func(Progress)
	// ProgressInterval is the least time between two progress calls during a file
	// (default DefaultProgressInterval).
	ProgressInterval time.Duration
	// Writer tunes the channel writer (message size is always ChunkSize).
	Writer sdk.ChannelWriterOptions
	// Resume offers the receiver to continue files of ResumeMin bytes or more from what it
	// kept of them (resume.go). Only for a receiver that announced it can.
	Resume bool
	// Text marks every file a text message (MaxText bytes at most): a receiver that shows
	// text shows it; others write it as a file.
	Text bool
}

// Sender sends files over a channel it is given: a data channel or a QUIC stream.
type Sender struct {
	ch   Channel
	opts SendOptions

	answers chan message
	opened  chan struct{}
	closed  chan struct{}
	stop    chan struct{} // closed when Send returns: the channel's callbacks stop waiting on us
	wake    waker         // interrupts a write waiting for the buffer when a message arrives
	ra      *readAhead    // reads and hashes files ahead of the writes; made at the first data

	openOnce, closeOnce, stopOnce sync.Once
}

// NewSender takes over dc's OnOpen, OnClose, OnMessage and buffered-amount handlers. Call it
// right after creating the channel (with label Label and DataChannelInit: ordered, reliable,
// protocol Protocol). A nil opts means defaults.
func NewSender(dc *webrtc.DataChannel, opts *SendOptions) *Sender {
	var w sdk.ChannelWriterOptions
	if opts != nil {
		w = opts.Writer
	}
	w.MessageSize = ChunkSize
	return NewSenderOn(DataChannel(dc, &w), opts)
}

// NewSenderOn returns a sender on ch (a data channel through DataChannel, a QUIC stream
// through OpenStream), installing its handlers. A nil opts means defaults; opts.Writer
// applies only to data channels made by NewSender.
func NewSenderOn(ch Channel, opts *SendOptions) *Sender {
	var o SendOptions
	if opts != nil {
		o = *opts
	}
	s := &Sender{
		ch:      ch,
		opts:    o,
		answers: make(chan message, 64),
		opened:  make(chan struct{}),
		closed:  make(chan struct{}),
		stop:    make(chan struct{}),
	}
	ch.Handle(
		func() { s.openOnce.Do(func() { close(s.opened) }) },
		func(m Message) {
			a := message{Type: "binary"}
			if m.Text {
				var err error
				if a, err = decode(m.Data); err != nil {
					a = message{Type: "malformed", Message: err.Error()}
				}
			}
			select {
			case s.answers <- a:
				s.wake.kick()
			case <-s.stop:
			}
		},
		func() { s.closeOnce.Do(func() { close(s.closed) }) },
	)
	return s
}

// DataChannelInit returns the options of the channel a sender opens.
func DataChannelInit() *webrtc.DataChannelInit {
	p := Protocol
	return &webrtc.DataChannelInit{Protocol: &p}
}

// outgoing is a file to send.
type outgoing struct {
	path string
	name string
	size int64
}

// Send sends the files at paths, named by their base names, waiting first for the channel to
// open, and returns once the receiver has answered every file and the final done. It closes
// the channel when it returns, as the protocol wants of the sender. It returns
// one Result per file and a non-nil error if any file failed (all *FileError, joined) or the
// transfer could not finish. Send may be called once.
func (s *Sender) Send(ctx context.Context, paths []string) (results []Result, err error) {
	defer s.stopOnce.Do(func() {
		close(s.stop)
		_ = s.ch.Close() // the sender hangs up: done, failed or canceled
	})
	files, _, err := plan(paths)
	if err != nil {
		return nil, err
	}
	st := newSendState(files, newMeter(s.opts.Progress, s.opts.ProgressInterval))
	defer func() { // files left unanswered failed with the transfer
		for i := st.answered; err != nil && i < len(results); i++ {
			results[i].Err = err
		}
	}()
	select {
	case <-s.opened:
	case <-s.closed:
		return st.results, ErrClosed
	case <-ctx.Done():
		return st.results, fmt.Errorf("transfer: waiting for the channel to open: %w", ctx.Err())
	}
	for i := range files {
		if err := s.sendFile(ctx, st, i); err != nil {
			return st.results, err
		}
	}
	if err := s.write(ctx, st, func(ctx context.Context) error {
		return s.ch.SendText(ctx, encode(answerMsg{Type: typeDone}))
	}); err != nil {
		return st.results, err
	}
	for !st.done {
		select {
		case a := <-s.answers:
			if err := st.answer(a); err != nil {
				return st.results, err
			}
		case <-s.closed:
			return st.results, s.settle(st, ErrClosed)
		case <-ctx.Done():
			return st.results, s.settle(st, fmt.Errorf("transfer: waiting for the receiver: %w", ctx.Err()))
		}
	}
	return st.results, st.failures()
}

// settle decides the outcome when the channel closes or ctx ends before the receiver's done:
// answers already queued count (a channel delivers every message before it reports the close),
// and a transfer with every file answered has succeeded even if the done went missing.
func (s *Sender) settle(st *sendState, cause error) error {
	if err := s.pollAnswers(st); err != nil {
		return err
	}
	if st.done || st.answered == len(st.files) {
		return st.failures()
	}
	if ferr := frameErr(s.ch); ferr != nil {
		return fmt.Errorf("%w: %w", ErrProtocol, ferr)
	}
	return fmt.Errorf("%w: %d of %d files unanswered", cause, len(st.files)-st.answered, len(st.files))
}

func (s *Sender) sendErr(err error) error {
	if errors.Is(err, ErrClosed) {
		return err // a stream's write error says so already
	}
	select {
	case <-s.closed:
		return fmt.Errorf("%w: %w", ErrClosed, err)
	default:
		return err
	}
}

// write runs one write of the channel writer (send), handling the receiver's messages that
// arrive while it waits for room in the buffer: their progress is reported as it comes, not
// once the buffer has drained (minutes on a slow link).
func (s *Sender) write(ctx context.Context, st *sendState, send func(context.Context) error) error {
	for {
		if err := s.pollAnswers(st); err != nil {
			return err
		}
		wctx, disarm := s.wake.arm(ctx)
		err := send(wctx)
		disarm()
		if err == nil {
			return nil
		}
		if ctx.Err() == nil && errors.Is(err, context.Canceled) && wctx.Err() != nil {
			continue // woken by a message before anything was sent: handle it, try again
		}
		if perr := s.pollAnswers(st); perr != nil {
			return perr // the receiver's reason (it gave up) rather than the write's failure
		}
		return s.sendErr(err)
	}
}

// sendFile sends file i: header, data, end. It reads answers between chunks so that an early
// refusal stops the data.
func (s *Sender) sendFile(ctx context.Context, st *sendState, i int) error {
	f := st.files[i]
	fh, err := os.Open(f.path)
	if err != nil {
		return fmt.Errorf("transfer: %w", err)
	}
	defer fh.Close()
	text := s.opts.Text && f.size <= MaxText
	resume := s.opts.Resume && f.size >= ResumeMin && !text
	hdr := encode(fileMsg{Type: typeFile, Name: f.name, Size: f.size, Acks: true, Resume: resume, Text: text})
	if resume {
		st.resuming = i
	}
	if err := s.write(ctx, st, func(ctx context.Context) error { return s.ch.SendText(ctx, hdr) }); err != nil {
		return err
	}
	st.started++
	if st.answered == i {
		st.report(true)
	}
	var h hash.Hash = sha256.New()
	if resume {
		have, err := s.waitHave(ctx, st, i)
		if err != nil {
			return err
		}
		if have != nil { // else refused: its end follows at once
			n, rh, err := resumeFrom(f.path, f.size, *have)
			if err != nil {
				return err
			}
			from := encode(fromMsg{Type: typeFrom, Bytes: n})
			if err := s.write(ctx, st, func(ctx context.Context) error { return s.ch.SendText(ctx, from) }); err != nil {
				return err
			}
			if _, err := fh.Seek(n, io.SeekStart); err != nil {
				return fmt.Errorf("transfer: %w", err)
			}
			h = rh
			st.sent[i], st.results[i].Resumed = n, n
		}
	}
	if st.sent[i] < f.size && st.answered <= i {
		if err := s.sendData(ctx, st, i, fh, h); err != nil {
			return err
		}
	}
	end := encode(endMsg{Type: typeEnd, SHA256: hex.EncodeToString(h.Sum(nil))})
	if err := s.write(ctx, st, func(ctx context.Context) error { return s.ch.SendText(ctx, end) }); err != nil {
		return err
	}
	st.ended++
	return nil
}

// sendData sends the rest of file i from fh, from st.sent[i] on, hashing it into h: a
// readAhead reads and hashes ahead of the writes. It stops early when the receiver refuses
// the file (it discards the rest anyway), and when the file turns out shorter than announced
// (the receiver will answer size-mismatch). h is complete when it returns.
func (s *Sender) sendData(ctx context.Context, st *sendState, i int, fh *os.File, h hash.Hash) error {
	if s.ra == nil {
		s.ra = newReadAhead()
	}
	ra := s.ra
	ra.start(fh, st.files[i].size-st.sent[i], h)
	defer ra.stop()
	for {
		c, err := ra.next(ctx)
		if err != nil {
			return err
		}
		if c.err != nil {
			return readErr(st.files[i].path, c.err)
		}
		if c.n > 0 {
			if err := s.write(ctx, st, func(ctx context.Context) error { return s.ch.Send(ctx, c.buf[:c.n]) }); err != nil {
				return err
			}
			st.sent[i] += int64(c.n)
			if st.answered == i {
				st.report(false)
			}
		}
		ra.release()
		if c.last {
			return nil
		}
		if err := s.pollAnswers(st); err != nil {
			return err
		}
		if st.answered > i { // refused early: the receiver discards the rest anyway
			return nil
		}
	}
}

// pollAnswers handles the answers that have arrived, without waiting.
func (s *Sender) pollAnswers(st *sendState) error {
	for {
		select {
		case a := <-s.answers:
			if err := st.answer(a); err != nil {
				return err
			}
		default:
			return nil
		}
	}
}

// waker interrupts a channel write waiting for room in the buffer when a message from the
// receiver arrives, so that the sender handles it (and reports progress) at once.
type waker struct {
	mu      sync.Mutex
	cancel  context.CancelFunc // of the armed write; nil when none is armed
	pending bool               // a message arrived while none was armed
}

// kick interrupts the armed write, or the next one.
func (k *waker) kick() {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.cancel != nil {
		k.cancel()
		k.cancel = nil
	} else {
		k.pending = true
	}
}

// arm returns a context for one write that kick cancels (at once, if a message arrived
// since the last write), and the function that ends it.
func (k *waker) arm(ctx context.Context) (context.Context, func()) {
	wctx, cancel := context.WithCancel(ctx)
	k.mu.Lock()
	if k.pending {
		k.pending = false
		cancel()
	} else {
		k.cancel = cancel
	}
	k.mu.Unlock()
	return wctx, func() {
		k.mu.Lock()
		k.cancel = nil
		k.mu.Unlock()
		cancel()
	}
}
