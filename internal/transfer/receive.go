package transfer

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io/fs"
	"os"
	"path"
	"strings"
	"sync"
	"time"

	"github.com/pion/webrtc/v4"
)

// flushTimeout bounds how long the receiver waits for a protocol error to be delivered.
const flushTimeout = 5 * time.Second

// hangUpTimeout bounds how long the receiver waits, after its done, for the sender to close
// the channel.
const hangUpTimeout = 3 * time.Second

// ReceiveOptions configure a Receiver.
type ReceiveOptions struct {
	// Dir is the directory files are written into (required; it must exist).
	Dir string
	// Overwrite lets a received file replace an existing one of the same name.
	Overwrite bool
	// Text, when set, is given each text message (a file the sender marked text, MaxText
	// bytes at most) once its hash is checked, instead of writing it to Dir.
	Text func(name string, text []byte) error
	// Resume keeps NAME.part when the transfer stops in the middle of a file whose sender
	// can resume it, and continues such a file from the blocks of NAME.part that match
	// (resume.go). Announce it to senders (send/recv: "resume":1 in the join meta).
	Resume bool
	// Progress, when set, is called with the progress of each file (see Progress).
	Progress func(Progress)
	// ProgressInterval is the least time between two progress calls during a file
	// (default DefaultProgressInterval).
	ProgressInterval time.Duration
}

// Receiver receives files from a channel (a data channel or a QUIC stream) into a directory.
type Receiver struct {
	ch   Channel
	opts ReceiveOptions

	msgs   chan Message
	closed chan struct{}
	stop   chan struct{} // closed when Run returns: the channel's callbacks stop waiting on us

	closeOnce, stopOnce sync.Once
}

// Accept reports whether dc is a file-transfer channel: label Label and protocol Protocol or
// empty.
func Accept(dc *webrtc.DataChannel) bool {
	return dc.Label() == Label && (dc.Protocol() == "" || dc.Protocol() == Protocol)
}

// NewReceiver takes over dc's OnClose, OnMessage and buffered-amount handlers. Call it from
// the Peer.OnDataChannel handler, so that no message is missed; then call Run.
func NewReceiver(dc *webrtc.DataChannel, opts ReceiveOptions) *Receiver {
	return NewReceiverOn(DataChannel(dc, nil), opts)
}

// NewReceiverOn returns a receiver on ch (a data channel through DataChannel, a QUIC stream
// from AcceptStream), installing its handlers; then call Run.
func NewReceiverOn(ch Channel, opts ReceiveOptions) *Receiver {
	r := &Receiver{
		ch:     ch,
		opts:   opts,
		msgs:   make(chan Message, 64),
		closed: make(chan struct{}),
		stop:   make(chan struct{}),
	}
	// Blocking in the message handler (the queue is full while the disk catches up) holds
	// the channel's reader, and so its window (SCTP's, or the QUIC stream's flow control):
	// back-pressure reaches the sender.
	ch.Handle(
		func() {},
		func(m Message) {
			select {
			case r.msgs <- m:
			case <-r.stop:
			}
		},
		func() { r.closeOnce.Do(func() { close(r.closed) }) },
	)
	return r
}

// incoming is the file being received.
type incoming struct {
	index    int
	name     string
	size     int64
	got      int64
	part     string
	f        *os.File // nil once closed, and for a refused file
	h        hash.Hash
	rejected bool
	acks     bool // the sender asked for got messages
	// Resume (resume.go): the file's partial data is kept if the transfer stops; until the
	// sender's from, no data may come; offered bytes in blocks were offered in have.
	keep, awaitFrom         bool
	block, offered, resumed int64
	text                    []byte // a text message's bytes (ReceiveOptions.Text); nil: a file
	// flushed: the bytes of the file up to which the kernel was asked to start writing
	// them to the disk (startWriteback).
	flushed int64
}

// writebackEvery is how many bytes a receiver writes before it asks the kernel to start
// writing them to the disk, so that the fsync at a file's end, which the sender waits for,
// has little left to do (a 64 MiB file: 30-50 ms less on a 2.6 GB/s disk).
const writebackEvery = 8 << 20

// recvState is the receiver's state between messages.
type recvState struct {
	r       *Receiver
	root    *os.Root
	results []Result
	cur     *incoming
	total   int64
	m       *meter
	lastAck time.Time // when the last got was sent
}

// Run receives files until the sender's done (and then until the sender closes the channel,
// for a few seconds at most), and returns one Result per file announced. The
// error is nil when every file arrived intact; otherwise it joins the files' *FileError, or
// reports why the transfer stopped (ErrClosed, ErrProtocol, ctx). On any failure the file in
// progress is deleted: only verified files are left in Dir. Run closes the channel when it
// returns. Run may be called once.
func (r *Receiver) Run(ctx context.Context) (results []Result, err error) {
	defer r.stopOnce.Do(func() {
		close(r.stop)
		_ = r.ch.Close()
	})
	root, err := os.OpenRoot(r.opts.Dir)
	if err != nil {
		return nil, fmt.Errorf("transfer: output directory: %w", err)
	}
	defer root.Close()
	st := &recvState{r: r, root: root, m: newMeter(r.opts.Progress, r.opts.ProgressInterval)}
	defer func() { // the file in progress failed with the transfer
		if c := st.cur; c != nil && err != nil && st.results[c.index].Err == nil {
			st.results[c.index].Err = err
		}
		st.discard()
	}()
	for {
		var msg Message
		select {
		case msg = <-r.msgs:
		case <-r.closed:
			select { // the channel delivers every message before it reports the close
			case msg = <-r.msgs:
			default:
				if ferr := frameErr(r.ch); ferr != nil {
					err := fmt.Errorf("%w: %w", ErrProtocol, ferr)
					r.giveUp(ctx, err)
					return st.results, err
				}
				if st.cur != nil {
					return st.results, fmt.Errorf("%w: in the middle of %q", ErrClosed, st.cur.name)
				}
				return st.results, ErrClosed
			}
		case <-ctx.Done():
			return st.results, ctx.Err()
		}
		done, err := st.handle(ctx, msg)
		msg.release() // written and hashed: its buffer may carry a later message
		switch {
		case errors.Is(err, ErrProtocol):
			r.giveUp(ctx, err)
			return st.results, err
		case err != nil:
			return st.results, err
		case done:
			// The sender hangs up once it has the done: so it surely arrived. Every file is
			// settled by now, whatever happens to the channel.
			t := time.NewTimer(hangUpTimeout)
			select {
			case <-r.closed:
			case <-t.C:
			case <-ctx.Done():
			}
			t.Stop()
			return st.results, st.failures()
		}
	}
}

// maxReason bounds the reason a receiver gives when it gives up (it may quote the sender's
// input), so that the answer always fits a message.
const maxReason = 1 << 10

// giveUp tells the sender about a protocol error; Run closes the channel next.
func (r *Receiver) giveUp(ctx context.Context, cause error) {
	ctx, cancel := context.WithTimeout(ctx, flushTimeout)
	defer cancel()
	why := cause.Error()
	if len(why) > maxReason {
		why = strings.ToValidUTF8(why[:maxReason], "") + "…"
	}
	if r.ch.SendText(ctx, encode(answerMsg{Type: typeError, Code: CodeProtocol, Message: why})) == nil {
		_ = r.ch.Flush(ctx)
	}
}

func (r *Receiver) answer(ctx context.Context, a any) error {
	if err := r.ch.SendText(ctx, encode(a)); err != nil {
		select {
		case <-r.closed:
			return fmt.Errorf("%w: answering: %w", ErrClosed, err)
		default:
			return fmt.Errorf("transfer: answering: %w", err)
		}
	}
	return nil
}

// handle applies one message. It returns done after the sender's done, and an error that
// wraps ErrProtocol for a fatal protocol violation.
func (st *recvState) handle(ctx context.Context, msg Message) (done bool, err error) {
	if !msg.Text {
		return false, st.data(ctx, msg.Data)
	}
	m, err := decode(msg.Data)
	if err != nil {
		return false, err
	}
	switch m.Type {
	case typeFile:
		return false, st.start(ctx, m)
	case typeEnd:
		return false, st.end(ctx, m)
	case typeFrom:
		return false, st.from(ctx, m)
	case typeDone:
		if st.cur != nil {
			return false, fmt.Errorf("%w: done in the middle of %q", ErrProtocol, st.cur.name)
		}
		return true, st.r.answer(ctx, answerMsg{Type: typeDone})
	}
	return false, fmt.Errorf("%w: unexpected %q message", ErrProtocol, m.Type)
}

func (st *recvState) start(ctx context.Context, m message) error {
	if st.cur != nil {
		return fmt.Errorf("%w: file before the end of %q", ErrProtocol, st.cur.name)
	}
	if m.Name == nil {
		return fmt.Errorf("%w: file without a name", ErrProtocol)
	}
	if m.Size == nil || *m.Size < 0 || *m.Size > maxSize {
		return fmt.Errorf("%w: file %q without a valid size", ErrProtocol, *m.Name)
	}
	c := &incoming{index: len(st.results), name: *m.Name, size: *m.Size, part: *m.Name + ".part", acks: m.Acks}
	st.cur = c
	st.results = append(st.results, Result{Name: c.name, Size: c.size})
	if err := CheckPath(c.name); err != nil {
		return st.refuse(ctx, CodeBadName, err.Error())
	}
	if dir := path.Dir(c.name); dir != "." {
		if code, err := st.folders(dir); err != nil {
			return st.refuse(ctx, code, err.Error())
		}
	}
	if m.Text && st.r.opts.Text != nil && c.size <= MaxText {
		c.text, c.h = make([]byte, 0, c.size), sha256.New()
		return nil
	}
	if m.Resume && st.r.opts.Resume {
		return st.startResumable(ctx, c)
	}
	f, code, err := st.create(c.name, c.part)
	if err != nil {
		return st.refuse(ctx, code, err.Error())
	}
	c.f, c.h = f, sha256.New()
	st.report(c, true, false)
	return nil
}

// folders makes the folders of a received path (dir, "/"-separated, checked by CheckPath)
// inside the directory. A path through a symbolic link, or through a file, is refused (and
// os.Root would refuse one that leads out of the directory anyway).
func (st *recvState) folders(dir string) (string, error) {
	parts := strings.Split(dir, "/")
	for i := range parts {
		p := strings.Join(parts[:i+1], "/")
		fi, err := st.root.Lstat(p)
		switch {
		case errors.Is(err, fs.ErrNotExist):
			if err := st.root.Mkdir(p, 0o755); err != nil && !errors.Is(err, fs.ErrExist) {
				return CodeIO, err
			}
		case err != nil:
			return CodeIO, err
		case fi.Mode()&fs.ModeSymlink != 0:
			return CodeBadName, fmt.Errorf("%s goes through %s, a link", dir, p)
		case !fi.IsDir():
			return CodeBadName, fmt.Errorf("%s is a file, not a folder", p)
		}
	}
	return "", nil
}

// create opens NAME.part for a new file, exclusively.
func (st *recvState) create(name, part string) (*os.File, string, error) {
	if !st.r.opts.Overwrite {
		if _, err := st.root.Lstat(name); err == nil {
			return nil, CodeExists, fmt.Errorf("%s exists", name)
		} else if !errors.Is(err, fs.ErrNotExist) {
			return nil, CodeIO, err
		}
	}
	for try := 0; ; try++ {
		f, err := st.root.OpenFile(part, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o666)
		switch {
		case err == nil:
			return f, "", nil
		case errors.Is(err, fs.ErrExist) && st.r.opts.Overwrite && try == 0:
			if err := st.root.Remove(part); err != nil { // a leftover from a crash
				return nil, CodeIO, err
			}
		case errors.Is(err, fs.ErrExist):
			return nil, CodeExists, fmt.Errorf("%s exists (another transfer, or left over from one)", part)
		default:
			return nil, CodeIO, err
		}
	}
}

func (st *recvState) data(ctx context.Context, b []byte) error {
	c := st.cur
	if c == nil {
		return fmt.Errorf("%w: data outside a file", ErrProtocol)
	}
	if c.rejected {
		return nil
	}
	if c.awaitFrom {
		return fmt.Errorf("%w: data for %q before from", ErrProtocol, c.name)
	}
	if int64(len(b)) > c.size-c.got {
		return st.refuse(ctx, CodeSize, fmt.Sprintf("more than the announced %d bytes", c.size))
	}
	c.h.Write(b)
	if c.text != nil {
		c.text = append(c.text, b...)
	} else if _, err := c.f.Write(b); err != nil {
		return st.refuse(ctx, CodeIO, err.Error())
	}
	c.got += int64(len(b))
	if c.f != nil && c.got-c.flushed >= writebackEvery {
		startWriteback(c.f, c.flushed, c.got-c.flushed)
		c.flushed = c.got
	}
	st.total += int64(len(b))
	st.report(c, false, false)
	return st.ack(ctx, c)
}

// ack tells a sender that asked for it how many bytes of c are written: at most every
// AckInterval, and when the last byte is written (docs/file-transfer.md, "Progress").
func (st *recvState) ack(ctx context.Context, c *incoming) error {
	if !c.acks {
		return nil
	}
	now := time.Now()
	if c.got < c.size && now.Sub(st.lastAck) < AckInterval {
		return nil
	}
	st.lastAck = now
	return st.r.answer(ctx, gotMsg{Type: typeGot, Name: c.name, Bytes: c.got})
}

func (st *recvState) end(ctx context.Context, m message) error {
	c := st.cur
	if c == nil {
		return fmt.Errorf("%w: end outside a file", ErrProtocol)
	}
	if c.rejected {
		st.cur = nil
		return nil
	}
	if c.got != c.size {
		return st.refuseEnd(ctx, CodeSize, fmt.Sprintf("%d bytes arrived, %d announced", c.got, c.size))
	}
	want, err := hex.DecodeString(m.SHA256)
	if err != nil || len(want) != sha256.Size {
		return st.refuseEnd(ctx, CodeHash, fmt.Sprintf("sha256 %q is not 64 hex digits", m.SHA256))
	}
	if got := c.h.Sum(nil); !bytes.Equal(got, want) {
		return st.refuseEnd(ctx, CodeHash, fmt.Sprintf("sha256 of the data is %x, announced %x", got, want))
	}
	if c.text != nil {
		st.results[c.index].Text = true
		if err := st.r.opts.Text(c.name, c.text); err != nil {
			return st.refuseEnd(ctx, CodeIO, err.Error())
		}
	} else if code, err := st.place(c); err != nil {
		return st.refuseEnd(ctx, code, err.Error())
	}
	st.cur = nil
	st.report(c, true, true)
	return st.r.answer(ctx, answerMsg{Type: typeOK, Name: &c.name})
}

// place syncs NAME.part and moves it to NAME: with a hard link when not overwriting, which
// fails atomically if NAME appeared meanwhile.
func (st *recvState) place(c *incoming) (string, error) {
	f := c.f
	c.f = nil
	err := f.Sync()
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return CodeIO, err
	}
	if st.r.opts.Overwrite {
		if err := st.root.Rename(c.part, c.name); err != nil {
			return CodeIO, err
		}
		return "", nil
	}
	err = st.root.Link(c.part, c.name)
	switch {
	case errors.Is(err, fs.ErrExist):
		return CodeExists, fmt.Errorf("%s exists", c.name)
	case err != nil:
		// No hard links here (some file systems): check and rename, not atomic.
		if _, err := st.root.Lstat(c.name); err == nil {
			return CodeExists, fmt.Errorf("%s exists", c.name)
		}
		if err := st.root.Rename(c.part, c.name); err != nil {
			return CodeIO, err
		}
		return "", nil
	}
	if err := st.root.Remove(c.part); err != nil {
		return CodeIO, err
	}
	return "", nil
}

// refuse answers an error for the current file, deletes its .part and discards the rest of it.
func (st *recvState) refuse(ctx context.Context, code, msg string) error {
	c := st.cur
	st.drop(c)
	c.rejected = true
	e := &FileError{Name: c.name, Code: code, Message: msg}
	st.results[c.index].Err = e
	return st.r.answer(ctx, answerMsg{Type: typeError, Name: &c.name, Code: code, Message: msg})
}

// refuseEnd is refuse at the file's end: the file is over.
func (st *recvState) refuseEnd(ctx context.Context, code, msg string) error {
	err := st.refuse(ctx, code, msg)
	st.cur = nil
	return err
}

// drop closes and deletes the .part of c, if any.
func (st *recvState) drop(c *incoming) {
	if c == nil {
		return
	}
	if c.f != nil {
		_ = c.f.Close()
		c.f = nil
		_ = st.root.Remove(c.part)
	}
}

// discard deletes the file in progress when Run stops early, or keeps what it has of it for
// a resume.
func (st *recvState) discard() {
	if c := st.cur; c != nil && c.keep && c.f != nil && !c.rejected {
		_ = c.f.Sync()
		_ = c.f.Close()
		c.f = nil
		return
	}
	st.drop(st.cur)
}

// report reports the progress of c; force bypasses the throttle.
func (st *recvState) report(c *incoming, force, done bool) {
	st.m.report(Progress{
		Name: c.name, File: c.index + 1, Bytes: c.got, Size: c.size, TotalBytes: st.total, Done: done,
	}, force)
}

func (st *recvState) failures() error {
	var errs []error
	for _, r := range st.results {
		if r.Err != nil {
			errs = append(errs, r.Err)
		}
	}
	return errors.Join(errs...)
}
