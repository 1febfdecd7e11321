package transfer

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"io"
	"testing"
	"testing/iotest"
)

// drain takes every chunk of ra's current file, handing each buffer back at once, and
// returns the data and the last chunk.
func drain(t *testing.T, ra *readAhead) ([]byte, chunk) {
	t.Helper()
	var got []byte
	for {
		c, err := ra.next(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, c.buf[:c.n]...)
		ra.release()
		if c.last || c.err != nil {
			return got, c
		}
	}
}

// checkBuffers fails unless ra holds all its buffers, and only the ones it started with.
func checkBuffers(t *testing.T, ra *readAhead, want map[*byte]bool) {
	t.Helper()
	if len(ra.free) != readAheadDepth {
		t.Fatalf("%d buffers free after stop, want %d", len(ra.free), readAheadDepth)
	}
	for range readAheadDepth {
		b := <-ra.free
		if !want[&b[:1][0]] {
			t.Fatal("a buffer that is not one of the readAhead's")
		}
		ra.free <- b
	}
	if n := readAheads.Load(); n != 0 {
		t.Fatalf("%d readAhead goroutines running after stop", n)
	}
}

func TestReadAhead(t *testing.T) {
	ra := newReadAhead()
	bufs := map[*byte]bool{}
	for range readAheadDepth {
		b := <-ra.free
		bufs[&b[:1][0]] = true
		ra.free <- b
	}
	data := make([]byte, 17*ChunkSize+100)
	for i := range data {
		data[i] = byte(i * 31)
	}
	sum := sha256.Sum256(data)

	t.Run("whole file, twice", func(t *testing.T) {
		for range 2 {
			h := sha256.New()
			ra.start(bytes.NewReader(data), int64(len(data)), h)
			got, last := drain(t, ra)
			ra.stop()
			if !bytes.Equal(got, data) || last.err != nil || !bytes.Equal(h.Sum(nil), sum[:]) {
				t.Fatalf("%d of %d bytes, last chunk %+v, hash matches: %v", len(got), len(data), last, bytes.Equal(h.Sum(nil), sum[:]))
			}
			checkBuffers(t, ra, bufs)
		}
	})
	t.Run("only n bytes", func(t *testing.T) {
		h := sha256.New()
		ra.start(bytes.NewReader(data), 3*ChunkSize, h)
		got, _ := drain(t, ra)
		ra.stop()
		want := sha256.Sum256(data[:3*ChunkSize])
		if !bytes.Equal(got, data[:3*ChunkSize]) || !bytes.Equal(h.Sum(nil), want[:]) {
			t.Fatalf("%d bytes, want %d", len(got), 3*ChunkSize)
		}
		checkBuffers(t, ra, bufs)
	})
	t.Run("shorter than announced", func(t *testing.T) {
		ra.start(bytes.NewReader(data), int64(len(data))+ChunkSize, sha256.New())
		got, last := drain(t, ra)
		ra.stop()
		if !bytes.Equal(got, data) || last.err != nil || !last.last {
			t.Fatalf("%d bytes, last chunk %+v; want the %d there are, then the end", len(got), last, len(data))
		}
		checkBuffers(t, ra, bufs)
	})
	t.Run("read error", func(t *testing.T) {
		boom := errors.New("boom")
		ra.start(io.MultiReader(bytes.NewReader(data[:5*ChunkSize+7]), iotest.ErrReader(boom)), int64(len(data)), sha256.New())
		got, last := drain(t, ra)
		ra.stop()
		if !errors.Is(last.err, boom) || len(got) != 5*ChunkSize+7 {
			t.Fatalf("%d bytes, then %v; want %d, then boom", len(got), last.err, 5*ChunkSize+7)
		}
		checkBuffers(t, ra, bufs)
	})
	t.Run("stopped early", func(t *testing.T) {
		for _, take := range []int{0, 1, readAheadDepth} {
			ra.start(bytes.NewReader(data), int64(len(data)), sha256.New())
			for i := range take { // the last one taken is not released: stop takes it back
				if _, err := ra.next(context.Background()); err != nil {
					t.Fatal(err)
				}
				if i < take-1 {
					ra.release()
				}
			}
			ra.stop()
			ra.stop() // again: nothing to do
			checkBuffers(t, ra, bufs)
		}
	})
	t.Run("canceled", func(t *testing.T) {
		pr, pw := io.Pipe() // never written: the reader waits in Read
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		ra.start(pr, 10, sha256.New())
		if _, err := ra.next(ctx); !errors.Is(err, context.Canceled) {
			t.Fatalf("next with a canceled context: %v", err)
		}
		_ = pw.CloseWithError(errors.New("closed")) // as a file read returns, eventually
		ra.stop()
		checkBuffers(t, ra, bufs)
	})
}
