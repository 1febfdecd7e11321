package transfer_test

import (
	"context"
	"io"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/switchboard-rtc/switchboard/internal/transfer"
)

// BenchmarkQUICFileVsRaw is BenchmarkFileVsRaw over the pair's QUIC connection: in each
// iteration, the raw rate of a unidirectional QUIC stream written in ChunkSize writes and read into a
// buffer (no framing, no hashing, no disk), and the end-to-end rate of sending a file of the
// same size with the file protocol on a stream of the same connection (read, hash, frame,
// send, receive, hash, write, sync, rename, confirmation).
//
//	go test -run '^$' -bench QUICFileVsRaw -benchtime 3x ./internal/transfer
func BenchmarkQUICFileVsRaw(b *testing.B) {
	size := int64(64 << 20)
	if raceEnabled {
		size = 8 << 20
	}
	src, out := b.TempDir(), b.TempDir()
	randomFile(b, src, "bench.bin", size, 7)
	path := filepath.Join(src, "bench.bin")
	sc, rc := quicConns(b)
	ctx, cancel := context.WithTimeout(context.Background(), 10*wait)
	defer cancel()

	chunk := make([]byte, transfer.ChunkSize)
	raw := func() time.Duration {
		got := make(chan error, 1)
		go func() {
			s, err := rc.AcceptUniStream(ctx)
			if err != nil {
				got <- err
				return
			}
			_, err = io.Copy(io.Discard, s)
			got <- err
		}()
		start := time.Now()
		s, err := sc.OpenUniStreamSync(ctx)
		if err != nil {
			b.Fatal(err)
		}
		for sent := int64(0); sent < size; {
			k := min(int64(len(chunk)), size-sent)
			if _, err := s.Write(chunk[:k]); err != nil {
				b.Fatal(err)
			}
			sent += k
		}
		if err := s.Close(); err != nil {
			b.Fatal(err)
		}
		if err := waitChan(b, got, "the raw bytes"); err != nil {
			b.Fatal(err)
		}
		return time.Since(start)
	}
	file := func() time.Duration {
		accepted := make(chan transfer.Channel, 1)
		go func() {
			ch, err := transfer.AcceptStream(ctx, rc)
			if err != nil {
				b.Error(err)
			}
			accepted <- ch
		}()
		start := time.Now()
		ch, err := transfer.OpenStream(ctx, sc)
		if err != nil {
			b.Fatal(err)
		}
		s := transfer.NewSenderOn(ch, nil)
		rch := waitChan(b, accepted, "the stream")
		if rch == nil {
			b.FailNow()
		}
		r := transfer.NewReceiverOn(rch, transfer.ReceiveOptions{Dir: out, Overwrite: true})
		run := make(chan error, 1)
		go func() {
			_, err := r.Run(ctx)
			run <- err
		}()
		_, err = s.Send(ctx, []string{path})
		d := time.Since(start)
		if rerr := waitChan(b, run, "the receiver"); err != nil || rerr != nil {
			b.Fatalf("send: %v, receive: %v", err, rerr)
		}
		return d
	}
	raw() // warm up: the congestion window, the page cache
	var rawTime, fileTime, rawCPU, fileCPU time.Duration
	// timed runs f and adds its wall time and the process's CPU time (all threads: both
	// peers, user and system) to the totals.
	timed := func(f func() time.Duration, wall, cpu *time.Duration) {
		c := cpuTime(b)
		*wall += f()
		*cpu += cpuTime(b) - c
	}
	n := 0
	for b.Loop() {
		if n%2 == 0 {
			timed(raw, &rawTime, &rawCPU)
			timed(file, &fileTime, &fileCPU)
		} else {
			timed(file, &fileTime, &fileCPU)
			timed(raw, &rawTime, &rawCPU)
		}
		n++
	}
	mb := float64(size) * float64(n) / 1e6
	rawRate, fileRate := mb/rawTime.Seconds(), mb/fileTime.Seconds()
	b.ReportMetric(rawRate, "raw-MB/s")
	b.ReportMetric(fileRate, "file-MB/s")
	b.ReportMetric(fileRate/rawRate, "file/raw")
	// CPU per MB: what bounds the rate when the cores are busy (2 cores: 2000/that MB/s).
	b.ReportMetric(float64(rawCPU.Microseconds())/1e3/mb, "raw-cpu-ms/MB")
	b.ReportMetric(float64(fileCPU.Microseconds())/1e3/mb, "file-cpu-ms/MB")
}

// cpuTime returns the CPU time the process has used so far, user and system, all threads.
func cpuTime(tb testing.TB) time.Duration {
	var u syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &u); err != nil {
		tb.Fatal(err)
	}
	return time.Duration(u.Utime.Nano() + u.Stime.Nano())
}
