package transfer_test

import (
	"context"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/switchboard-rtc/switchboard/internal/transfer"
)

// TestResumeFromPartial: a receiver that kept part of a file gets only the rest: the whole
// blocks of its NAME.part that match the sender's file are kept (a corrupted block and what
// follows are sent again), and the file in place is the sender's, whole, over QUIC and over
// the data channel.
func TestResumeFromPartial(t *testing.T) {
	const mib = 1 << 20
	for _, tc := range []struct {
		name        string
		keep        int64 // bytes of the partial file that are right
		garbage     int64 // bytes of garbage after them
		wantResumed int64
	}{
		{"clean prefix", 3*mib + 5000, 0, 3 * mib},
		{"corrupted block", 2 * mib, mib + 10, 2 * mib},
		{"nothing kept", 0, 0, 0},
		{"garbage only", 0, 2 * mib, 0},
	} {
		for _, path := range []string{"quic", "data channel"} {
			t.Run(tc.name+"/"+path, func(t *testing.T) {
				src, out := t.TempDir(), t.TempDir()
				want := randomFile(t, src, "x.bin", 5*mib+123, 9)
				data, err := os.ReadFile(filepath.Join(src, "x.bin"))
				if err != nil {
					t.Fatal(err)
				}
				if tc.keep+tc.garbage > 0 {
					part := append([]byte(nil), data[:tc.keep]...)
					for i := range tc.garbage {
						part = append(part, byte(i*31+7))
					}
					if err := os.WriteFile(filepath.Join(out, "x.bin.part"), part, 0o644); err != nil {
						t.Fatal(err)
					}
				}
				sopts := &transfer.SendOptions{Resume: true}
				ropts := transfer.ReceiveOptions{Dir: out, Resume: true}
				var s *transfer.Sender
				var run <-chan runResult
				if path == "quic" {
					s, run = quicPair(t, sopts, ropts)
				} else {
					s, run = pair(t, sopts, ropts)
				}
				ctx, cancel := context.WithTimeout(context.Background(), wait)
				defer cancel()
				rs, err := s.Send(ctx, []string{filepath.Join(src, "x.bin")})
				if err != nil || len(rs) != 1 || rs[0].Err != nil {
					t.Fatalf("send: %+v %v", rs, err)
				}
				r := waitChan(t, run, "the receiver")
				if r.err != nil || len(r.results) != 1 {
					t.Fatalf("receive: %+v %v", r.results, r.err)
				}
				if rs[0].Resumed != tc.wantResumed || r.results[0].Resumed != tc.wantResumed {
					t.Fatalf("resumed %d (sender) / %d (receiver), want %d", rs[0].Resumed, r.results[0].Resumed, tc.wantResumed)
				}
				if fileSum(t, filepath.Join(out, "x.bin")) != want {
					t.Fatal("the file in place differs from the sender's")
				}
				if _, err := os.Stat(filepath.Join(out, "x.bin.part")); !os.IsNotExist(err) {
					t.Fatalf("x.bin.part left behind: %v", err)
				}
			})
		}
	}
}

// TestResumeKeepsPartialOnInterrupt: a receiver stopped in the middle of a resumable file
// keeps NAME.part, and the next transfer continues from it.
func TestResumeKeepsPartialOnInterrupt(t *testing.T) {
	const size = 8 << 20
	src, out := t.TempDir(), t.TempDir()
	want := randomFile(t, src, "x.bin", size, 11)
	reached := make(chan struct{})
	var once sync.Once
	s, run := quicPair(t, &transfer.SendOptions{Resume: true}, transfer.ReceiveOptions{Dir: out, Resume: true,
		ProgressInterval: time.Nanosecond, Progress: func(p transfer.Progress) {
			if p.Bytes >= 3<<20 {
				once.Do(func() { close(reached) })
			}
		}})
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	// Stop the sender once the receiver has 3 MiB: the stream closes mid-file.
	sctx, stop := context.WithCancel(ctx)
	sent := make(chan struct{})
	go func() {
		defer close(sent)
		_, _ = s.Send(sctx, []string{filepath.Join(src, "x.bin")})
	}()
	waitChan(t, reached, "3 MiB at the receiver")
	stop()
	<-sent
	r := waitChan(t, run, "the receiver")
	if r.err == nil {
		t.Fatal("the receiver succeeded with part of a file")
	}
	fi, err := os.Stat(filepath.Join(out, "x.bin.part"))
	if err != nil || fi.Size() < 3<<20 {
		t.Fatalf("x.bin.part after the interruption: %v, %v", fi, err)
	}
	s, run = quicPair(t, &transfer.SendOptions{Resume: true}, transfer.ReceiveOptions{Dir: out, Resume: true})
	rs, err := s.Send(ctx, []string{filepath.Join(src, "x.bin")})
	if err != nil || rs[0].Resumed < 2<<20 {
		t.Fatalf("second send: %+v %v", rs, err)
	}
	if r := waitChan(t, run, "the receiver"); r.err != nil {
		t.Fatalf("second receive: %v", r.err)
	}
	if fileSum(t, filepath.Join(out, "x.bin")) != want {
		t.Fatal("the resumed file differs from the sender's")
	}
}

// TestResumeRefusesLinkedPartial: a NAME.part that is a symbolic link (to a file of the
// directory) is not continued through: the file is refused and the link's target is intact.
func TestResumeRefusesLinkedPartial(t *testing.T) {
	src, out := t.TempDir(), t.TempDir()
	randomFile(t, src, "x.bin", 2<<20, 5)
	if err := os.WriteFile(filepath.Join(out, "precious"), []byte("keep me"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("precious", filepath.Join(out, "x.bin.part")); err != nil {
		t.Fatal(err)
	}
	s, run := pair(t, &transfer.SendOptions{Resume: true}, transfer.ReceiveOptions{Dir: out, Resume: true})
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	rs, _ := s.Send(ctx, []string{filepath.Join(src, "x.bin")})
	if len(rs) != 1 || rs[0].Err == nil {
		t.Fatalf("send through a linked partial file: %+v", rs)
	}
	waitChan(t, run, "the receiver")
	if b, _ := os.ReadFile(filepath.Join(out, "precious")); string(b) != "keep me" {
		t.Fatalf("the link's target is now %q", b)
	}
}
