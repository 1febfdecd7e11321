package transfer

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
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
}

// Sender sends files over a data channel it is given.
type Sender struct {
	dc   *webrtc.DataChannel
	w    *sdk.ChannelWriter
	opts SendOptions

	answers chan message
	opened  chan struct{}
	closed  chan struct{}
	stop    chan struct{} // closed when Send returns: Pion's callbacks stop waiting on us

	openOnce, closeOnce, stopOnce sync.Once
}

// NewSender takes over dc's OnOpen, OnClose, OnMessage and buffered-amount handlers. Call it
// right after creating the channel (with label Label and DataChannelInit: ordered, reliable,
// protocol Protocol). A nil opts means defaults.
func NewSender(dc *webrtc.DataChannel, opts *SendOptions) *Sender {
	var o SendOptions
	if opts != nil {
		o = *opts
	}
	o.Writer.MessageSize = ChunkSize
	s := &Sender{
		dc:      dc,
		w:       sdk.NewChannelWriter(dc, &o.Writer),
		opts:    o,
		answers: make(chan message, 64),
		opened:  make(chan struct{}),
		closed:  make(chan struct{}),
		stop:    make(chan struct{}),
	}
	dc.OnOpen(func() { s.openOnce.Do(func() { close(s.opened) }) })
	dc.OnClose(func() {
		s.closeOnce.Do(func() { close(s.closed) })
		s.w.Close() // a write waiting for the buffer to drain gives up now
	})
	dc.OnMessage(func(m webrtc.DataChannelMessage) {
		a := message{Type: "binary"}
		if m.IsString {
			var err error
			if a, err = decode(m.Data); err != nil {
				a = message{Type: "malformed", Message: err.Error()}
			}
		}
		select {
		case s.answers <- a:
		case <-s.stop:
		}
	})
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

// Plan checks the files to send before any connection is made: each must be a regular file,
// its base name must pass CheckName, and no two may have the same base name. It returns the
// names and sizes that Send will announce.
func Plan(paths []string) ([]Result, error) {
	files, err := plan(paths)
	if err != nil {
		return nil, err
	}
	rs := make([]Result, len(files))
	for i, f := range files {
		rs[i] = Result{Name: f.name, Size: f.size}
	}
	return rs, nil
}

func plan(paths []string) ([]outgoing, error) {
	if len(paths) == 0 {
		return nil, errors.New("transfer: no files to send")
	}
	seen := make(map[string]string, len(paths))
	files := make([]outgoing, 0, len(paths))
	for _, p := range paths {
		fi, err := os.Stat(p)
		if err != nil {
			return nil, fmt.Errorf("transfer: %w", err)
		}
		if !fi.Mode().IsRegular() {
			return nil, fmt.Errorf("transfer: %s is not a regular file", p)
		}
		name := filepath.Base(p)
		if err := CheckName(name); err != nil {
			return nil, err
		}
		if other, dup := seen[name]; dup {
			return nil, fmt.Errorf("transfer: %s and %s have the same name %q", other, p, name)
		}
		seen[name] = p
		files = append(files, outgoing{path: p, name: name, size: fi.Size()})
	}
	return files, nil
}

// sendState follows the answers to the files sent so far.
type sendState struct {
	files    []outgoing
	results  []Result
	started  int // files whose header was sent
	ended    int // files whose end was sent
	answered int // files answered
	done     bool
}

// Send sends the files at paths, named by their base names, waiting first for the channel to
// open, and returns once the receiver has answered every file and the final done. It closes
// the channel when it returns, as the protocol wants of the sender. It returns
// one Result per file and a non-nil error if any file failed (all *FileError, joined) or the
// transfer could not finish. Send may be called once.
func (s *Sender) Send(ctx context.Context, paths []string) (results []Result, err error) {
	defer s.stopOnce.Do(func() {
		close(s.stop)
		s.w.Close()
		_ = s.dc.Close() // the sender hangs up: done, failed or canceled
	})
	files, err := plan(paths)
	if err != nil {
		return nil, err
	}
	st := &sendState{files: files, results: make([]Result, len(files))}
	for i, f := range files {
		st.results[i] = Result{Name: f.name, Size: f.size}
	}
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
	var total int64
	for _, f := range files {
		total += f.size
	}
	m := newMeter(s.opts.Progress, s.opts.ProgressInterval)
	var sent int64
	for i := range files {
		if err := s.sendFile(ctx, st, i, m, &sent, total); err != nil {
			return st.results, err
		}
	}
	if err := s.w.SendText(ctx, encode(answerMsg{Type: typeDone})); err != nil {
		return st.results, s.sendErr(err)
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
// answers already queued count (Pion delivers every message before it reports the close),
// and a transfer with every file answered has succeeded even if the done went missing.
func (s *Sender) settle(st *sendState, cause error) error {
	if err := s.pollAnswers(st); err != nil {
		return err
	}
	if st.done || st.answered == len(st.files) {
		return st.failures()
	}
	return fmt.Errorf("%w: %d of %d files unanswered", cause, len(st.files)-st.answered, len(st.files))
}

func (s *Sender) sendErr(err error) error {
	select {
	case <-s.closed:
		return fmt.Errorf("%w: %w", ErrClosed, err)
	default:
		return err
	}
}

// sendFile sends file i: header, data, end. It reads answers between chunks so that an early
// refusal stops the data.
func (s *Sender) sendFile(ctx context.Context, st *sendState, i int, m *meter, sent *int64, total int64) error {
	f := st.files[i]
	fh, err := os.Open(f.path)
	if err != nil {
		return fmt.Errorf("transfer: %w", err)
	}
	defer fh.Close()
	if err := s.w.SendText(ctx, encode(fileMsg{Type: typeFile, Name: f.name, Size: f.size})); err != nil {
		return s.sendErr(err)
	}
	st.started++
	p := Progress{Name: f.name, File: i + 1, Files: len(st.files), Size: f.size, TotalBytes: *sent, TotalSize: total}
	m.report(p, true)
	h := sha256.New()
	buf := make([]byte, ChunkSize)
	r := io.LimitReader(fh, f.size)
	var n int64
	for n < f.size {
		k, rerr := io.ReadFull(r, buf)
		if k > 0 {
			h.Write(buf[:k])
			if err := s.w.Send(ctx, buf[:k]); err != nil {
				return s.sendErr(err)
			}
			n += int64(k)
			*sent += int64(k)
			p.Bytes, p.TotalBytes = n, *sent
			m.report(p, false)
		}
		if rerr != nil {
			if !errors.Is(rerr, io.EOF) && !errors.Is(rerr, io.ErrUnexpectedEOF) {
				return fmt.Errorf("transfer: read %s: %w", f.path, rerr)
			}
			break // the file shrank: the receiver will answer size-mismatch
		}
		if err := s.pollAnswers(st); err != nil {
			return err
		}
		if st.answered > i { // refused early: the receiver discards the rest anyway
			break
		}
	}
	*sent += f.size - n // count a short or refused file as done, for the totals
	if err := s.w.SendText(ctx, encode(endMsg{Type: typeEnd, SHA256: hex.EncodeToString(h.Sum(nil))})); err != nil {
		return s.sendErr(err)
	}
	st.ended++
	if st.answered <= i {
		p.Bytes, p.TotalBytes, p.Done = f.size, *sent, true
		m.report(p, true)
	}
	return nil
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

// answer applies one message from the receiver.
func (st *sendState) answer(a message) error {
	name := ""
	if a.Name != nil {
		name = *a.Name
	}
	switch a.Type {
	case typeOK, typeError:
		if a.Type == typeError && (a.Code == CodeProtocol || a.Name == nil) {
			return fmt.Errorf("transfer: the receiver gave up: %s: %s", a.Code, a.Message)
		}
		limit := st.ended // ok only after end
		if a.Type == typeError {
			limit = st.started // an error may come as soon as the header is out
		}
		if st.answered >= limit {
			return fmt.Errorf("%w: unexpected %s for %q", ErrProtocol, a.Type, name)
		}
		want := st.files[st.answered].name
		if name != want {
			return fmt.Errorf("%w: answer for %q while %q is pending", ErrProtocol, name, want)
		}
		if a.Type == typeError {
			st.results[st.answered].Err = &FileError{Name: name, Code: a.Code, Message: a.Message}
		}
		st.answered++
	case typeDone:
		if st.answered < len(st.files) || st.ended < len(st.files) {
			return fmt.Errorf("%w: done before every file was answered", ErrProtocol)
		}
		st.done = true
	case "malformed":
		return fmt.Errorf("%w: from the receiver: %s", ErrProtocol, a.Message)
	default:
		return fmt.Errorf("%w: unexpected %q message from the receiver", ErrProtocol, a.Type)
	}
	return nil
}

// failures joins the files' errors.
func (st *sendState) failures() error {
	var errs []error
	for _, r := range st.results {
		if r.Err != nil {
			errs = append(errs, r.Err)
		}
	}
	return errors.Join(errs...)
}
