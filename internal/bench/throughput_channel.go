package bench

import (
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/webrtc/v4"
)

// sender writes n bytes in messages of k.msgSize with buffered-amount flow control. Each
// message starts with its sequence number so the receiver can check order and loss.
type sender struct {
	k    dcKnobs
	n    int64
	dc   *webrtc.DataChannel
	rw   io.ReadWriteCloser // when detached
	sent atomic.Int64

	open     chan struct{}
	openOnce sync.Once
	more     chan struct{} // bufferedAmount fell below the low threshold
	errc     chan error
	done     chan struct{} // closed when the transfer is over
}

func newSender(k dcKnobs, n int64) *sender {
	return &sender{k: k, n: n, open: make(chan struct{}), more: make(chan struct{}, 1), errc: make(chan error, 1), done: make(chan struct{})}
}

func (s *sender) fail(err error) {
	select {
	case s.errc <- err:
	default:
	}
}

// attach sets the channel's handlers; it is called before the channel opens.
func (s *sender) attach(dc *webrtc.DataChannel) {
	s.dc = dc
	dc.SetBufferedAmountLowThreshold(s.k.lowThreshold)
	dc.OnBufferedAmountLow(func() {
		select {
		case s.more <- struct{}{}:
		default:
		}
	})
	dc.OnOpen(func() {
		if s.k.detach {
			rw, err := dc.Detach()
			if err != nil {
				s.fail(fmt.Errorf("detach: %w", err))
				return
			}
			s.rw = rw
		}
		s.openOnce.Do(func() { close(s.open) })
	})
}

// run sends every message; it returns early only on error or when ctx ends.
func (s *sender) run(ctx context.Context) error {
	msg := make([]byte, s.k.msgSize)
	for i := range msg {
		msg[i] = byte(i)
	}
	count := (s.n + int64(s.k.msgSize) - 1) / int64(s.k.msgSize)
	for seq := range count {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("send: %w", context.Cause(ctx))
		}
		size := min(int64(s.k.msgSize), s.n-seq*int64(s.k.msgSize))
		m := msg[:size]
		binary.BigEndian.PutUint64(m[:min(8, size)], uint64(seq))
		var err error
		if s.rw != nil {
			_, err = s.rw.Write(m)
		} else {
			err = s.dc.Send(m)
		}
		if err != nil {
			return fmt.Errorf("send message %d: %w", seq, err)
		}
		s.sent.Add(size)
		if seq < count-1 && s.dc.BufferedAmount() > s.k.maxBuffered {
			select {
			case <-s.more:
			case <-ctx.Done():
				return fmt.Errorf("send: %w", context.Cause(ctx))
			}
		}
	}
	return nil
}

// receiver counts the bytes of one channel and, on a reliable channel, checks that every
// message arrives once and in order.
type receiver struct {
	want     int64
	reliable bool
	got      atomic.Int64
	lastAt   atomic.Int64 // unix nanoseconds of the last message
	start    atomic.Int64 // unix nanoseconds of the first send

	done     chan struct{}
	doneOnce sync.Once
	mu       sync.Mutex
	next     uint64 // next sequence number expected (reliable)
	bad      error
	bufSize  int

	loopMu sync.Mutex // orders read loop starts against wait
	closed bool
	wg     sync.WaitGroup // the detached read loop
}

func newReceiver(want int64, k dcKnobs) *receiver {
	r := &receiver{want: want, reliable: k.reliable, bufSize: max(k.msgSize, 64<<10), done: make(chan struct{})}
	return r
}

// attach starts counting the channel's messages; a detached channel gets a read loop that
// ends when the channel closes.
func (r *receiver) attach(dc *webrtc.DataChannel, detach bool) {
	if !detach {
		dc.OnMessage(func(m webrtc.DataChannelMessage) { r.message(m.Data) })
		return
	}
	dc.OnOpen(func() {
		rw, err := dc.Detach()
		if err != nil {
			r.setErr(fmt.Errorf("detach: %w", err))
			return
		}
		r.loopMu.Lock()
		defer r.loopMu.Unlock()
		if r.closed {
			_ = rw.Close()
			return
		}
		r.wg.Add(1)
		go func() {
			defer r.wg.Done()
			buf := make([]byte, r.bufSize)
			for {
				n, err := rw.Read(buf)
				if err != nil {
					return // the channel or its connection closed
				}
				r.message(buf[:n])
			}
		}()
	})
}

func (r *receiver) message(b []byte) {
	if r.reliable && len(b) >= 8 {
		r.mu.Lock()
		seq := binary.BigEndian.Uint64(b)
		if seq != r.next && r.bad == nil {
			r.bad = fmt.Errorf("message %d arrived when %d was expected", seq, r.next)
		}
		r.next = seq + 1
		r.mu.Unlock()
	}
	r.lastAt.Store(time.Now().UnixNano())
	if r.got.Add(int64(len(b))) >= r.want {
		r.doneOnce.Do(func() { close(r.done) })
	}
}

func (r *receiver) setErr(err error) {
	r.mu.Lock()
	if r.bad == nil {
		r.bad = err
	}
	r.mu.Unlock()
}

func (r *receiver) err() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.bad
}

// last returns when the last message arrived (the start of the transfer if none did).
func (r *receiver) last() time.Time {
	if t := r.lastAt.Load(); t != 0 {
		return time.Unix(0, t)
	}
	return time.Unix(0, r.start.Load())
}

func (r *receiver) result(sent int64) transfer {
	return transfer{sent: sent, received: r.got.Load(), elapsed: r.last().Sub(time.Unix(0, r.start.Load()))}
}

// wait returns once the detached read loop, if any, has ended, and keeps a later OnOpen from
// starting one; call it after closing the connections, which ends the loop's Read.
func (r *receiver) wait() {
	r.loopMu.Lock()
	r.closed = true
	r.loopMu.Unlock()
	r.wg.Wait()
}
