package sdk_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"math/rand/v2"
	"testing"

	"github.com/pion/webrtc/v4"

	"github.com/switchboard-rtc/switchboard/internal/testserver"
	"github.com/switchboard-rtc/switchboard/sdk"
)

// bulkPair connects two peers through a fresh server and returns the open "bulk" channel
// that a created to b; every message b receives on it goes to onMsg, on Pion's read goroutine.
func bulkPair(t *testing.T, onMsg func(webrtc.DataChannelMessage)) *webrtc.DataChannel {
	t.Helper()
	url := testserver.Start(t, nil)
	dial(t, url, "bulk", sdk.Options{Name: "b", OnPeer: func(p *sdk.Peer) {
		p.OnDataChannel(func(dc *webrtc.DataChannel) { dc.OnMessage(onMsg) })
	}})
	opened := make(chan *webrtc.DataChannel, 1)
	dial(t, url, "bulk", sdk.Options{Name: "a", OnPeer: func(p *sdk.Peer) {
		dc, err := p.CreateDataChannel("bulk", nil)
		if err != nil {
			t.Error(err)
			return
		}
		dc.OnOpen(func() { opened <- dc })
	}})
	return waitChan(t, opened, "bulk channel open")
}

// Writes of every shape arrive intact and in order, and after each one the channel's buffer
// holds at most HighWater plus one message.
func TestChannelWriterBoundsBufferedAmount(t *testing.T) {
	const (
		total = 6 << 20
		msg   = 16 << 10
		high  = 256 << 10
	)
	data := make([]byte, total)
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range data {
		data[i] = byte(rng.Uint32())
	}
	want := sha256.Sum256(data)

	type result struct {
		n    int
		sum  [32]byte
		over bool // a message over msg bytes arrived
	}
	got := make(chan result, 1)
	h := sha256.New()
	n, over := 0, false
	dc := bulkPair(t, func(m webrtc.DataChannelMessage) {
		h.Write(m.Data)
		n += len(m.Data)
		over = over || len(m.Data) > msg
		if n >= total {
			var r result
			r.n, r.over = n, over
			copy(r.sum[:], h.Sum(nil))
			got <- r
		}
	})

	w := sdk.NewChannelWriter(dc, &sdk.ChannelWriterOptions{MessageSize: msg, HighWater: high})
	defer w.Close()
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	sizes := []int{1, msg - 1, msg, msg + 1, 3*msg + 7, 200 << 10, 5}
	var peak uint64
	for off, i := 0, 0; off < total; i++ {
		end := min(off+sizes[i%len(sizes)], total)
		k, err := w.WriteContext(ctx, data[off:end])
		if err != nil || k != end-off {
			t.Fatalf("write %d bytes at %d: wrote %d, %v", end-off, off, k, err)
		}
		off = end
		// Only this writer sends, so the amount cannot grow between the write and this read.
		b := dc.BufferedAmount()
		if b > high+msg {
			t.Fatalf("buffered amount %d after a write: over high water %d + one message %d", b, high, msg)
		}
		peak = max(peak, b)
	}
	if err := w.Flush(ctx); err != nil {
		t.Fatalf("flush: %v", err)
	}
	if b := dc.BufferedAmount(); b != 0 {
		t.Fatalf("buffered amount %d after Flush", b)
	}
	r := waitChan(t, got, "all bytes")
	if r.n != total || r.sum != want || r.over {
		t.Fatalf("received %d bytes (want %d), hash match %v, a message over %d bytes: %v", r.n, total, r.sum == want, msg, r.over)
	}
	if peak <= high-msg {
		t.Fatalf("peak buffered amount %d never neared high water %d: back-pressure was not exercised", peak, high)
	}
	t.Logf("peak buffered amount %d (high water %d, message %d)", peak, high, msg)
}

// With the receiver stalled, writes wait instead of buffering: a waiting WriteContext returns
// when its context is canceled, a waiting Write when the writer is closed, and a waiting
// write on a channel that closes returns ErrChannelNotOpen.
func TestChannelWriterWaitsAndAborts(t *testing.T) {
	stall := make(chan struct{})
	first := make(chan struct{}, 1)
	dc := bulkPair(t, func(webrtc.DataChannelMessage) {
		select {
		case first <- struct{}{}:
		default:
		}
		<-stall // block Pion's read loop: the SCTP window fills up, the sender's buffer grows
	})
	t.Cleanup(func() { close(stall) }) // runs before the clients close (cleanups are LIFO)

	const high = 128 << 10
	data := make([]byte, 32<<20) // far more than the SCTP receive window and HighWater together
	w := sdk.NewChannelWriter(dc, &sdk.ChannelWriterOptions{HighWater: high})

	ctx, cancel := context.WithCancel(context.Background())
	type res struct {
		n   int
		err error
	}
	done := make(chan res, 1)
	go func() {
		n, err := w.WriteContext(ctx, data)
		done <- res{n, err}
	}()
	waitChan(t, first, "the first message at the receiver")
	// The write cannot finish: it waits for the buffer to drain, which never happens.
	select {
	case r := <-done:
		t.Fatalf("write of %d bytes to a stalled receiver returned: %d, %v", len(data), r.n, r.err)
	default:
	}
	cancel()
	r := waitChan(t, done, "the canceled write")
	if !errors.Is(r.err, context.Canceled) || r.n >= len(data) || r.n%w.MessageSize() != 0 {
		t.Fatalf("canceled write: n=%d err=%v", r.n, r.err)
	}
	if b := dc.BufferedAmount(); b > high+uint64(w.MessageSize()) {
		t.Fatalf("buffered amount %d: over high water %d + one message", b, high)
	}

	go func() {
		n, err := w.Write(data)
		done <- res{n, err}
	}()
	w.Close()
	if r := waitChan(t, done, "the write aborted by Close"); !errors.Is(r.err, sdk.ErrWriterClosed) || r.n != 0 {
		t.Fatalf("write after Close: n=%d err=%v", r.n, r.err)
	}

	w2 := sdk.NewChannelWriter(dc, &sdk.ChannelWriterOptions{HighWater: high})
	go func() {
		n, err := w2.Write(bytes.Repeat([]byte{1}, 1<<20))
		done <- res{n, err}
	}()
	if err := dc.Close(); err != nil {
		t.Fatal(err)
	}
	if r := waitChan(t, done, "the write on a closed channel"); !errors.Is(r.err, sdk.ErrChannelNotOpen) {
		t.Fatalf("write on a closed channel: n=%d err=%v", r.n, r.err)
	}
}
