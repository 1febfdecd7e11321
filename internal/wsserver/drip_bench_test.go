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
