package transfer

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"

	"github.com/quic-go/quic-go"
)

// The QUIC binding (docs/file-transfer.md, "Over QUIC"): the sender opens one bidirectional
// stream of the pair's QUIC connection (sdk.Peer.QUIC), and each direction of it carries
// frames: 1 byte of kind, a 4-byte big-endian payload length, the payload. The first frame
// the sender sends is an open frame whose payload is Protocol; then text and binary frames
// carry the protocol's messages exactly as data-channel messages do. Closing the channel is
// closing the stream (a FIN after the last frame).

// Frame kinds.
const (
	frameOpen   = 0 // payload: the protocol string; first frame of the sender's direction
	frameText   = 1 // a JSON text message
	frameBinary = 2 // file data
)

// Frame bounds: a frame is checked against them before its payload is allocated.
const (
	// MaxFrame is the largest binary frame payload accepted: ChunkSize, what the sender sends.
	MaxFrame = ChunkSize
	// MaxTextFrame is the largest text (and open) frame payload accepted: JSON messages are
	// a few hundred bytes (a name is at most MaxNameBytes).
	MaxTextFrame = 16 << 10
	// frameHeader is the size of a frame's header.
	frameHeader = 5
	// readerSize is the buffer of a stream's reader: enough for the frame headers and text
	// frames, small so that a binary payload is read mostly straight from the stream into
	// its buffer rather than copied through this one.
	readerSize = 4 << 10
	// streamOpenTimeout bounds how long AcceptStream waits for the open frame.
	streamOpenTimeout = 10 * time.Second
	// quicCodeRefused is the QUIC application error code of a stream refused or abandoned.
	quicCodeRefused = 0x5b
	// closeWait bounds how long Close waits for the remote to close its side, so that what
	// was written reaches it before the connection may close.
	closeWait = 2 * time.Second
)

// maxPayload returns the largest payload of a frame of kind.
func maxPayload(kind byte) int {
	if kind == frameBinary {
		return MaxFrame
	}
	return MaxTextFrame
}

// ErrFrame means a stream carried a frame that is not one: unknown kind, too long, or cut.
var ErrFrame = errors.New("transfer: bad frame")

// appendFrame appends one frame to b.
func appendFrame(b []byte, kind byte, payload []byte) []byte {
	b = append(b, kind, 0, 0, 0, 0)
	binary.BigEndian.PutUint32(b[len(b)-4:], uint32(len(payload))) //nolint:gosec // len <= MaxFrame, checked by callers
	return append(b, payload...)
}

// framePool holds binary frame buffers (MaxFrame bytes) for streams' readers: a receiver
// releases each once it has written it (Message.release), so that a transfer does not
// allocate a buffer per frame. How many are in use at once is bounded by the receiver's
// queue of messages.
var framePool = sync.Pool{New: func() any {
	b := make([]byte, MaxFrame)
	return &b
}}

// readFrame reads one frame. io.EOF only at a frame boundary; a frame cut short is
// ErrFrame. With pool, the payload of a binary frame is read into a buffer from framePool,
// returned as pooled (nil otherwise), which the caller puts back once done with it.
func readFrame(r *bufio.Reader, pool bool) (kind byte, payload []byte, pooled *[]byte, err error) {
	var h [frameHeader]byte
	if _, err := io.ReadFull(r, h[:]); err != nil {
		if errors.Is(err, io.ErrUnexpectedEOF) {
			return 0, nil, nil, fmt.Errorf("%w: cut in its header", ErrFrame)
		}
		return 0, nil, nil, err //nolint:wrapcheck // io.EOF, or the stream's own error
	}
	kind = h[0]
	if kind > frameBinary {
		return 0, nil, nil, fmt.Errorf("%w: kind %d", ErrFrame, kind)
	}
	n := binary.BigEndian.Uint32(h[1:])
	if limit := maxPayload(kind); n > uint32(limit) { //nolint:gosec // limit is a small constant
		return 0, nil, nil, fmt.Errorf("%w: a %d-byte frame of kind %d (at most %d)", ErrFrame, n, kind, limit)
	}
	if pool && kind == frameBinary && n > 0 {
		pooled = framePool.Get().(*[]byte) //nolint:forcetypeassert // only *[]byte are put
		payload = (*pooled)[:n]
	} else {
		payload = make([]byte, n)
	}
	if k, err := io.ReadFull(r, payload); err != nil {
		if pooled != nil {
			framePool.Put(pooled)
		}
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return 0, nil, nil, fmt.Errorf("%w: cut after %d of %d bytes", ErrFrame, k, n)
		}
		return 0, nil, nil, err //nolint:wrapcheck // the stream's own error
	}
	return kind, payload, pooled, nil
}

// OpenStream opens a stream on conn for a sender and announces the protocol on it.
func OpenStream(ctx context.Context, conn *quic.Conn) (Channel, error) {
	s, err := conn.OpenStreamSync(ctx)
	if err != nil {
		return nil, fmt.Errorf("transfer: open stream: %w", err)
	}
	c := newStreamChannel(s, bufio.NewReaderSize(s, readerSize))
	if err := c.write(ctx, frameOpen, []byte(Protocol)); err != nil {
		s.CancelRead(quicCodeRefused)
		s.CancelWrite(quicCodeRefused)
		return nil, err
	}
	return c, nil
}

// AcceptStream waits for the sender's stream on conn and checks its open frame (at most
// streamOpenTimeout after the stream arrives). A stream of another protocol is refused: its
// error wraps ErrProtocol.
func AcceptStream(ctx context.Context, conn *quic.Conn) (Channel, error) {
	s, err := conn.AcceptStream(ctx)
	if err != nil {
		return nil, fmt.Errorf("transfer: accept stream: %w", err)
	}
	refuse := func(err error) (Channel, error) {
		s.CancelRead(quicCodeRefused)
		s.CancelWrite(quicCodeRefused)
		return nil, err
	}
	_ = s.SetReadDeadline(time.Now().Add(streamOpenTimeout))
	stop := context.AfterFunc(ctx, func() { _ = s.SetReadDeadline(time.Now()) })
	r := bufio.NewReaderSize(s, readerSize)
	kind, payload, _, err := readFrame(r, false)
	stop()
	_ = s.SetReadDeadline(time.Time{})
	switch {
	case err != nil && ctx.Err() != nil:
		return refuse(fmt.Errorf("transfer: waiting for the stream's open frame: %w", ctx.Err()))
	case err != nil:
		return refuse(fmt.Errorf("%w: the stream's open frame: %w", ErrProtocol, err))
	case kind != frameOpen || string(payload) != Protocol:
		return refuse(fmt.Errorf("%w: the stream is not %s", ErrProtocol, Protocol))
	}
	return newStreamChannel(s, r), nil
}

// streamChannel is a Channel on a QUIC stream. Its reader goroutine runs from Handle until
// the stream's read side ends (the remote's FIN or reset, the connection's end, Close).
type streamChannel struct {
	s *quic.Stream
	r *bufio.Reader

	mu      sync.Mutex // one write at a time
	buf     []byte     // the frame being written
	pending []byte     // the rest of a frame whose write was interrupted after its start

	handled  atomic.Bool   // Handle ran: the reader goroutine runs until readDone
	readDone chan struct{} // closed when the reader goroutine ends
	closing  atomic.Bool   // Close was called: messages are no longer delivered
	badFrame error         // the remote's bad frame, if any; set before closed runs

	closeOnce sync.Once
}

func newStreamChannel(s *quic.Stream, r *bufio.Reader) *streamChannel {
	return &streamChannel{s: s, r: r, readDone: make(chan struct{})}
}

// Handle starts the reader. A bad frame (ErrFrame: too long, unknown kind, a second open)
// ends the channel for the handlers at once (frameErr tells why); the reader then goes on
// reading and discarding what follows, so that the remote's writes do not fail before it
// has read the answer to it, until the remote closes its side or Close gives up on it.
func (c *streamChannel) Handle(open func(), message func(Message), closed func()) {
	c.handled.Store(true)
	open()
	go func() {
		defer close(c.readDone)
		for {
			kind, payload, pooled, err := readFrame(c.r, true)
			if err == nil && kind == frameOpen {
				err = fmt.Errorf("%w: an open frame after the first", ErrFrame)
			}
			if err != nil {
				if errors.Is(err, ErrFrame) {
					c.badFrame = err
					closed()
					_, _ = io.Copy(io.Discard, c.r) // until the remote's FIN, or Close cancels
					return
				}
				closed()
				return
			}
			m := Message{Text: kind == frameText, Data: payload, pooled: pooled}
			if c.closing.Load() {
				m.release()
				continue
			}
			message(m)
		}
	}()
}

// frameErr returns the remote's bad frame that ended the channel, if any. Valid once the
// closed handler has run.
func (c *streamChannel) frameErr() error { return c.badFrame }

func (c *streamChannel) SendText(ctx context.Context, s string) error {
	return c.write(ctx, frameText, []byte(s))
}

func (c *streamChannel) Send(ctx context.Context, b []byte) error {
	return c.write(ctx, frameBinary, b)
}

// write sends one frame. A frame interrupted (ctx) before any of it went out is not sent;
// one interrupted after its start counts as sent, and its rest goes out before the next
// frame (or at Flush and Close).
func (c *streamChannel) write(ctx context.Context, kind byte, payload []byte) error {
	if limit := maxPayload(kind); len(payload) > limit {
		return fmt.Errorf("transfer: a %d-byte message (at most %d)", len(payload), limit)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.drain(ctx); err != nil {
		return err
	}
	c.buf = appendFrame(c.buf[:0], kind, payload)
	n, err := c.streamWrite(ctx, c.buf)
	switch {
	case err == nil:
		return nil
	case n == 0:
		return err
	default:
		c.pending = c.buf[n:]
		c.buf = nil // pending keeps it
		return nil
	}
}

// drain writes the rest of an interrupted frame. Called with c.mu held.
func (c *streamChannel) drain(ctx context.Context) error {
	if len(c.pending) == 0 {
		return nil
	}
	n, err := c.streamWrite(ctx, c.pending)
	c.pending = c.pending[n:]
	return err
}

// streamWrite writes b, giving up when ctx ends.
func (c *streamChannel) streamWrite(ctx context.Context, b []byte) (int, error) {
	if err := ctx.Err(); err != nil {
		return 0, err //nolint:wrapcheck // the context's own
	}
	fired := make(chan struct{})
	stop := context.AfterFunc(ctx, func() {
		_ = c.s.SetWriteDeadline(time.Now())
		close(fired)
	})
	n, err := c.s.Write(b)
	if !stop() {
		<-fired
		_ = c.s.SetWriteDeadline(time.Time{})
	}
	if err != nil {
		if ctx.Err() != nil {
			return n, ctx.Err() //nolint:wrapcheck // the context's own
		}
		return n, fmt.Errorf("%w: stream write: %w", ErrClosed, err) // the remote or the connection went away
	}
	return n, nil
}

// Flush writes the rest of an interrupted frame. QUIC delivers what was written as long as
// the connection lives; it does not tell when the remote has it.
func (c *streamChannel) Flush(ctx context.Context) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.drain(ctx)
}

// Close ends the stream: a write waiting for flow control gives up (what it had written
// counts as sent), what was written goes out, then a FIN. QUIC does not tell when the remote
// has the data, and closing the connection right after would throw away what is still
// unsent (a receiver's last answer, such as the reason it gave up): so Close waits, at most
// closeWait, for the remote to close its side too (the remote's reader got the FIN, or went
// away), reading and discarding what still comes; then the read side stops.
func (c *streamChannel) Close() error {
	c.closeOnce.Do(func() {
		c.closing.Store(true)
		_ = c.s.SetWriteDeadline(time.Now())
		c.mu.Lock()
		_ = c.s.SetWriteDeadline(time.Time{})
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		_ = c.drain(ctx)
		cancel()
		_ = c.s.Close()
		c.mu.Unlock()
		if c.handled.Load() {
			t := time.NewTimer(closeWait)
			select {
			case <-c.readDone:
			case <-t.C:
			}
			t.Stop()
		}
		c.s.CancelRead(quicCodeRefused)
	})
	return nil
}
