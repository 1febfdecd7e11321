package transfer

import (
	"context"
	"errors"
	"fmt"
	"hash"
	"io"
	"sync/atomic"
)

// readAheadDepth is how many chunks a sender reads and hashes ahead of the channel writes:
// the buffers it holds (readAheadDepth × ChunkSize, 512 KiB), allocated once per Sender.
const readAheadDepth = 8

// readAheads counts the readAhead goroutines running, for the tests' leak checks.
var readAheads atomic.Int64

// chunk is one read of a file: buf[:n] is its data (buf is one of the readAhead's buffers).
type chunk struct {
	buf []byte
	n   int
	// last: nothing follows (the file's end, or it ended early: shorter than announced).
	last bool
	err  error // a read error: nothing follows
}

// readAhead reads a file and hashes it ahead of the sender's writes, on a goroutine of its
// own, into a fixed set of buffers that the sender hands back once written: reading the
// disk and hashing overlap with the network instead of stalling it between chunks. The
// sender's goroutine owns it: start runs the reader for one file, stop ends it (on every
// path, before the file is closed) and takes back every buffer.
type readAhead struct {
	free chan []byte // buffers to fill; holds them all between files
	full chan chunk  // chunks read, in order
	quit chan struct{}
	done chan struct{}
	cur  *chunk // the chunk next returned, until release
}

func newReadAhead() *readAhead {
	ra := &readAhead{free: make(chan []byte, readAheadDepth)}
	for range readAheadDepth {
		ra.free <- make([]byte, ChunkSize)
	}
	return ra
}

// start reads n bytes of r (fewer if r ends first), hashing them into h, on a new
// goroutine. h and r belong to that goroutine until stop returns.
func (ra *readAhead) start(r io.Reader, n int64, h hash.Hash) {
	ra.full = make(chan chunk, readAheadDepth)
	ra.quit = make(chan struct{})
	ra.done = make(chan struct{})
	readAheads.Add(1)
	go ra.run(r, n, h, ra.full, ra.quit, ra.done)
}

func (ra *readAhead) run(r io.Reader, n int64, h hash.Hash, full chan<- chunk, quit <-chan struct{}, done chan<- struct{}) {
	defer func() {
		readAheads.Add(-1)
		close(done)
	}()
	for left := n; ; {
		select { // stopped: no more reads, even with buffers free and room in full
		case <-quit:
			return
		default:
		}
		var b []byte
		select {
		case b = <-ra.free:
		case <-quit:
			return
		}
		k, err := io.ReadFull(r, b[:min(int64(len(b)), left)])
		h.Write(b[:k])
		left -= int64(k)
		c := chunk{buf: b, n: k, last: left == 0}
		switch {
		case errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF):
			c.last = true // the file shrank: the receiver will answer size-mismatch
		case err != nil:
			c.err = err
		}
		select {
		case full <- c:
		case <-quit:
			ra.free <- b
			return
		}
		if c.last || c.err != nil {
			return
		}
	}
}

// next waits for the next chunk; the sender hands its buffer back with release once it
// has written it.
func (ra *readAhead) next(ctx context.Context) (chunk, error) {
	select {
	case c := <-ra.full:
		ra.cur = &c
		return c, nil
	case <-ctx.Done():
		return chunk{}, ctx.Err() //nolint:wrapcheck // the context's own
	}
}

// release hands back the buffer of the chunk next returned.
func (ra *readAhead) release() {
	if ra.cur != nil {
		ra.free <- ra.cur.buf
		ra.cur = nil
	}
}

// stop ends the reader and takes back every buffer, the one the sender holds included.
// After stop, the hash given to start has seen exactly the bytes of the chunks read. It may
// be called more than once.
func (ra *readAhead) stop() {
	ra.release()
	if ra.quit == nil {
		return
	}
	close(ra.quit)
	<-ra.done
	for {
		select {
		case c := <-ra.full:
			ra.free <- c.buf
		default:
			ra.quit, ra.full, ra.done = nil, nil, nil
			return
		}
	}
}

// readErr wraps a read error of the file at path.
func readErr(path string, err error) error {
	return fmt.Errorf("transfer: read %s: %w", path, err)
}
