package transfer_test

import (
	"context"
	"errors"
	"path/filepath"
	"slices"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/switchboard-rtc/switchboard/internal/transfer"
)

// The sender reads and hashes ahead of its writes on a goroutine of its own; these tests
// stop transfers in the middle of a file in every way and check that it has ended once Send
// returns.

func checkNoReadAhead(t *testing.T) {
	t.Helper()
	if n := transfer.ReadAheadsRunning(); n != 0 {
		t.Fatalf("%d read-ahead goroutines still running after Send returned", n)
	}
}

// limitFileSize makes writes of regular files beyond n bytes fail (EFBIG) in this process
// until the test ends: the kernel refuses them as it would on a full disk. The limit is the
// whole process's (this package's tests do not run in parallel), so n leaves room for what
// else the process may write meanwhile (a profile, a log redirected to a file).
func limitFileSize(t *testing.T, n uint64) {
	t.Helper()
	var old syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_FSIZE, &old); err != nil {
		t.Fatal(err)
	}
	lim := old
	lim.Cur = n
	if err := syscall.Setrlimit(syscall.RLIMIT_FSIZE, &lim); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := syscall.Setrlimit(syscall.RLIMIT_FSIZE, &old); err != nil {
			t.Error(err)
		}
	})
}

// TestReceiverWriteFails: the receiver's disk refuses its writes in the middle of a file:
// it answers io and deletes the .part; the sender stops sending that file's data and goes
// on with the next file, which arrives.
func TestReceiverWriteFails(t *testing.T) {
	const size = 32 << 20 // more than can be in flight when the refusal comes back (< 17 MiB)
	src, out := t.TempDir(), t.TempDir()
	randomFile(t, src, "big.bin", size, 21)
	want := randomFile(t, src, "small.bin", 1000, 22)
	var mu sync.Mutex // the hook runs on Send's goroutine; read after Send returns
	var sent int64
	s, run := quicPair(t, &transfer.SendOptions{ProgressInterval: time.Nanosecond, Progress: func(p transfer.Progress) {
		mu.Lock()
		defer mu.Unlock()
		if p.Name == "big.bin" {
			sent = max(sent, p.Sent)
		}
	}}, transfer.ReceiveOptions{Dir: out})
	limitFileSize(t, 4<<20)
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	rs, err := s.Send(ctx, []string{filepath.Join(src, "big.bin"), filepath.Join(src, "small.bin")})
	checkNoReadAhead(t)
	var fe *transfer.FileError
	if !errors.As(err, &fe) || fe.Code != transfer.CodeIO || len(rs) != 2 || rs[1].Err != nil {
		t.Fatalf("send: %+v %v, want big.bin failed with io, small.bin sent", rs, err)
	}
	r := waitChan(t, run, "the receiver")
	if r.err == nil || len(r.results) != 2 || r.results[1].Err != nil {
		t.Fatalf("receive: %+v %v", r.results, r.err)
	}
	if names := listDir(t, out); !slices.Equal(names, []string{"small.bin"}) {
		t.Fatalf("out holds %v", names)
	}
	if fileSum(t, filepath.Join(out, "small.bin")) != want {
		t.Fatal("small.bin differs from the sent one")
	}
	mu.Lock()
	defer mu.Unlock()
	if sent >= size {
		t.Fatalf("the sender sent all %d bytes of a file refused after 4 MiB", sent)
	}
}

// TestReceiverGoesMidFile: the receiver stops in the middle of a file (its stream closes):
// the sender's write fails with ErrClosed and its read-ahead ends.
func TestReceiverGoesMidFile(t *testing.T) {
	src := t.TempDir()
	randomFile(t, src, "big.bin", 32<<20, 23)
	sc, rc := quicConns(t)
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	rctx, stop := context.WithCancel(ctx)
	defer stop()
	accepted := make(chan transfer.Channel, 1)
	go func() {
		ch, err := transfer.AcceptStream(ctx, rc)
		if err != nil {
			t.Error(err)
		}
		accepted <- ch
	}()
	ch, err := transfer.OpenStream(ctx, sc)
	if err != nil {
		t.Fatal(err)
	}
	s := transfer.NewSenderOn(ch, nil)
	rch := waitChan(t, accepted, "the stream")
	if rch == nil {
		t.FailNow()
	}
	run := startReceiverCtx(t, rctx, transfer.NewReceiverOn(rch, transfer.ReceiveOptions{Dir: t.TempDir(),
		ProgressInterval: time.Nanosecond, Progress: func(p transfer.Progress) {
			if p.Bytes >= 1<<20 {
				stop() // Run returns and closes its side
			}
		}}))
	_, err = s.Send(ctx, []string{filepath.Join(src, "big.bin")})
	checkNoReadAhead(t)
	if !errors.Is(err, transfer.ErrClosed) {
		t.Fatalf("send to a receiver gone mid-file: %v, want ErrClosed", err)
	}
	if r := waitChan(t, run, "the receiver"); !errors.Is(r.err, context.Canceled) {
		t.Fatalf("receive: %v, want context.Canceled", r.err)
	}
}

// TestSendCanceledMidFile: a Send canceled in the middle of a file returns the context's
// error, its read-ahead ended.
func TestSendCanceledMidFile(t *testing.T) {
	src := t.TempDir()
	randomFile(t, src, "big.bin", 32<<20, 24)
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	sctx, stop := context.WithCancel(ctx)
	defer stop()
	s, run := quicPair(t, &transfer.SendOptions{ProgressInterval: time.Nanosecond, Progress: func(p transfer.Progress) {
		if p.Bytes >= 1<<20 {
			stop()
		}
	}}, transfer.ReceiveOptions{Dir: t.TempDir()})
	_, err := s.Send(sctx, []string{filepath.Join(src, "big.bin")})
	checkNoReadAhead(t)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("canceled send: %v, want context.Canceled", err)
	}
	if r := waitChan(t, run, "the receiver"); !errors.Is(r.err, transfer.ErrClosed) {
		t.Fatalf("receive: %v, want ErrClosed", r.err)
	}
}
