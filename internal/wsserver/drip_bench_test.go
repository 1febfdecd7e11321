package wsserver

import (
	"encoding/binary"
	"io"
	"log/slog"
	"strconv"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/switchboard-rtc/switchboard/internal/hub"
)

// nopHandler takes adopted messages and does nothing with them.
type nopHandler struct{ n int }

func (h *nopHandler) Text([]byte, time.Time) error   { h.n++; return nil }
func (h *nopHandler) Binary([]byte, time.Time) error { h.n++; return nil }
func (h *nopHandler) Ping(time.Time)                 {}
func (h *nopHandler) Closed(string)                  {}

// BenchmarkDrippedFrame measures reading one 60 KiB binary frame that arrives in N pieces
// (one read per piece), straight through a loop's read path on a socket pair: the cost of
// carrying a partial frame from read to read.
//
//	go test -run '^$' -bench DrippedFrame -benchmem ./internal/wsserver/
func BenchmarkDrippedFrame(b *testing.B) {
	for _, pieces := range []int{1, 16, 256, 4096} {
		b.Run("pieces="+strconv.Itoa(pieces), func(b *testing.B) { benchDrip(b, pieces) })
	}
}

func benchDrip(b *testing.B, pieces int) {
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	h, err := hub.New(hub.Config{Logger: log})
	if err != nil {
		b.Fatal(err)
	}
	s := &Server{hub: h, stats: h.Stats(), log: log}
	s.cfg = Config{Hub: h, Logger: log}
	s.cfg.setDefaults()
	l, err := newLoop(s)
	if err != nil {
		b.Fatal(err)
	}
	defer unix.Close(l.epfd)
	defer unix.Close(l.wakefd)
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		b.Fatal(err)
	}
	defer unix.Close(fds[0])
	defer unix.Close(fds[1])
	hd := &nopHandler{}
	c := &conn{l: l, fd: fds[0], ext: hd}
	payload := make([]byte, 60<<10)
	frame := binary.BigEndian.AppendUint16([]byte{0x82, 0x80 | 126}, uint16(len(payload)))
	frame = append(frame, 0, 0, 0, 0)
	frame = append(frame, payload...)
	step := (len(frame) + pieces - 1) / pieces
	now := time.Now()
	b.SetBytes(int64(len(frame)))
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		for off := 0; off < len(frame); off += step {
			end := min(off+step, len(frame))
			if n, err := unix.Write(fds[1], frame[off:end]); err != nil || n != end-off {
				b.Fatalf("write: %d %v", n, err)
			}
			l.read(c, now)
		}
	}
	b.StopTimer()
	if hd.n != b.N || c.state != stateOpen {
		b.Fatalf("%d messages for %d frames, state %d", hd.n, b.N, c.state)
	}
}

// TestPartialFrameBufferFollowsWhatArrived: a header announcing a 60 KiB frame pins a
// buffer sized for the bytes that came, not for the announced length; it grows by doubling
// as the frame arrives (a few allocations per frame, not one per read), and the whole frame
// is delivered intact.
func TestPartialFrameBufferFollowsWhatArrived(t *testing.T) {
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	h, err := hub.New(hub.Config{Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	s := &Server{hub: h, stats: h.Stats(), log: log}
	s.cfg = Config{Hub: h, Logger: log}
	s.cfg.setDefaults()
	l, err := newLoop(s)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(l.epfd)
	defer unix.Close(l.wakefd)
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fds[0])
	defer unix.Close(fds[1])
	var got []byte
	hd := &recordHandler{got: &got}
	c := &conn{l: l, fd: fds[0], ext: hd}
	payload := make([]byte, 60<<10)
	for i := range payload {
		payload[i] = byte(i)
	}
	mask := [4]byte{1, 2, 3, 4}
	frame := binary.BigEndian.AppendUint16([]byte{0x82, 0x80 | 126}, uint16(len(payload)))
	frame = append(frame, mask[:]...)
	for i, b := range payload {
		frame = append(frame, b^mask[i%4])
	}
	// A second frame's first byte follows in the last piece: it is carried over.
	frame = append(frame, 0x82)
	now := time.Now()
	write := func(b []byte) {
		t.Helper()
		if n, err := unix.Write(fds[1], b); err != nil || n != len(b) {
			t.Fatalf("write: %d %v", n, err)
		}
		l.read(c, now)
	}
	write(frame[:10])
	if cap(c.in) > 2*minPartial {
		t.Fatalf("10 bytes of a 60 KiB frame pin %d bytes", cap(c.in))
	}
	for off := 10; off < len(frame); off += 100 {
		write(frame[off:min(off+100, len(frame))])
		if len(c.in) > 0 && cap(c.in) > 2*len(c.in)+2*minPartial {
			t.Fatalf("%d bytes held in a buffer of %d", len(c.in), cap(c.in))
		}
	}
	if string(got) != string(payload) {
		t.Fatalf("frame delivered as %d bytes, want the %d sent", len(got), len(payload))
	}
	if len(c.in) != 1 || c.in[0] != 0x82 || cap(c.in) > 2*minPartial {
		t.Fatalf("carried over %d bytes in a buffer of %d, want the next frame's first byte in a small one", len(c.in), cap(c.in))
	}

	// The same frame in 600 pieces again (after the carried byte): the buffer doubles a few
	// times rather than being copied anew on every read (which took ~600 allocations).
	rest := frame[1:]
	allocs := testing.AllocsPerRun(1, func() {
		for off := 0; off < len(rest); off += 103 {
			write(rest[off:min(off+103, len(rest))])
		}
	})
	if allocs > 30 {
		t.Errorf("a frame in 600 pieces took %v allocations", allocs)
	}
	if string(got) != string(payload) {
		t.Fatalf("second frame delivered as %d bytes", len(got))
	}
}

// recordHandler keeps a copy of the last binary message.
type recordHandler struct {
	nopHandler
	got *[]byte
}

func (h *recordHandler) Binary(p []byte, _ time.Time) error {
	*h.got = append([]byte(nil), p...)
	return nil
}
