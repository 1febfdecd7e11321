package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/switchboard-rtc/switchboard/internal/testserver"
	"github.com/switchboard-rtc/switchboard/internal/transfer"
	"github.com/switchboard-rtc/switchboard/internal/wormhole"
)

const transferWait = 30 * time.Second

// lineBuf is an io.Writer safe for concurrent use that hands each complete line to watch.
type lineBuf struct {
	mu      sync.Mutex
	buf     bytes.Buffer
	partial []byte
	watch   func(line string)
}

func (b *lineBuf) Write(p []byte) (int, error) {
	b.mu.Lock()
	b.buf.Write(p)
	b.partial = append(b.partial, p...)
	var lines []string
	for {
		i := bytes.IndexByte(b.partial, '\n')
		if i < 0 {
			break
		}
		lines = append(lines, string(b.partial[:i]))
		b.partial = b.partial[i+1:]
	}
	watch := b.watch
	b.mu.Unlock()
	if watch != nil {
		for _, l := range lines {
			watch(l)
		}
	}
	return len(p), nil
}

func (b *lineBuf) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// command runs one of the transfer commands in a goroutine that the test waits for.
type command struct {
	stdout, stderr lineBuf
	done           chan error
}

func start(t *testing.T, ctx context.Context, f func(context.Context, []string, io.Writer, io.Writer) error, args ...string) *command {
	t.Helper()
	c := &command{done: make(chan error, 1)}
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		c.done <- f(ctx, args, &c.stdout, &c.stderr)
	}()
	t.Cleanup(func() { <-finished })
	return c
}

func (c *command) wait(t *testing.T, what string) error {
	t.Helper()
	select {
	case err := <-c.done:
		return err
	case <-time.After(transferWait):
		t.Fatalf("%s did not finish; stderr:\n%s", what, c.stderr.String())
	}
	return nil
}

// writeRandom writes size pseudo-random bytes to path and returns their SHA-256.
func writeRandom(t *testing.T, path string, size int) [32]byte {
	t.Helper()
	b := make([]byte, size)
	rng := rand.NewChaCha8([32]byte{byte(size), byte(size >> 8), byte(size >> 16)})
	_, _ = rng.Read(b)
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return sha256.Sum256(b)
}

func sumFile(t *testing.T, path string) [32]byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return sha256.Sum256(b)
}

func TestSendRecvCommands(t *testing.T) {
	url := testserver.Start(t, nil)
	src, out := t.TempDir(), filepath.Join(t.TempDir(), "new", "out")
	big := 64<<20 + 17 // a 64 MiB file through the commands; 16 MiB under the race detector
	if raceEnabled {
		big = 16<<20 + 17
	}
	sizes := map[string]int{"a.bin": big, "b.txt": 1000, "empty": 0}
	sums := map[string][32]byte{}
	var paths []string
	for name, size := range sizes {
		sums[name] = writeRandom(t, filepath.Join(src, name), size)
		paths = append(paths, filepath.Join(src, name))
	}
	ctx, cancel := context.WithTimeout(context.Background(), transferWait)
	defer cancel()

	recv := start(t, ctx, recvFiles, "--room", "cli", "--out", out, "--server", url, "--loopback")
	// Flags after the files work too.
	send := start(t, ctx, sendFiles, append(paths, "--room", "cli", "--server", url, "--loopback")...)
	if err := send.wait(t, "send"); err != nil {
		t.Fatalf("send: %v\n%s", err, send.stderr.String())
	}
	if err := recv.wait(t, "recv"); err != nil {
		t.Fatalf("recv: %v\n%s", err, recv.stderr.String())
	}
	for name := range sizes {
		if sumFile(t, filepath.Join(out, name)) != sums[name] {
			t.Errorf("%s differs", name)
		}
	}
	got := strings.Fields(recv.stdout.String())
	slices.Sort(got)
	if !slices.Equal(got, []string{"a.bin", "b.txt", "empty"}) {
		t.Errorf("recv listed %q", got)
	}
	if s := send.stderr.String(); !strings.Contains(s, "sent 3 file(s)") || !strings.Contains(s, "sending [1/3]") {
		t.Errorf("send stderr:\n%s", s)
	}
	t.Logf("send:\n%s\nrecv:\n%s", send.stderr.String(), recv.stderr.String())
	if s := recv.stderr.String(); !strings.Contains(s, "received 3 file(s)") {
		t.Errorf("recv stderr:\n%s", s)
	}
}

// Without --room, send makes one up and prints the recv command, which works as printed.
func TestSendPrintsRecvCommand(t *testing.T) {
	url := testserver.Start(t, nil)
	src, out := t.TempDir(), t.TempDir()
	want := writeRandom(t, filepath.Join(src, "x.dat"), 100<<10)
	ctx, cancel := context.WithTimeout(context.Background(), transferWait)
	defer cancel()

	printed := make(chan string, 1)
	send := &command{done: make(chan error, 1)}
	send.stdout.watch = func(l string) {
		if l = strings.TrimSpace(l); strings.HasPrefix(l, "switchboard recv ") {
			printed <- l
		}
	}
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		send.done <- sendFiles(ctx, []string{"--server", url, "--loopback", filepath.Join(src, "x.dat")}, &send.stdout, &send.stderr)
	}()
	t.Cleanup(func() { <-finished })

	var line string
	select {
	case line = <-printed:
	case <-time.After(transferWait):
		t.Fatal("send printed no recv command")
	}
	args := strings.Fields(strings.TrimPrefix(line, "switchboard recv "))
	if !slices.Contains(args, url) || !slices.Contains(args, "--loopback") || slices.Contains(args, "--room") {
		t.Fatalf("printed %q; want a code, the server and --loopback", line)
	}
	if _, err := wormhole.ParseCode(args[0]); err != nil {
		t.Fatalf("printed %q: %v", line, err)
	}
	recv := start(t, ctx, recvFiles, append(args, "--out", out)...)
	if err := send.wait(t, "send"); err != nil {
		t.Fatalf("send: %v\n%s", err, send.stderr.String())
	}
	if err := recv.wait(t, "recv"); err != nil {
		t.Fatalf("recv: %v\n%s", err, recv.stderr.String())
	}
	if sumFile(t, filepath.Join(out, "x.dat")) != want {
		t.Fatal("x.dat differs")
	}
}

// An existing file is refused: both commands fail and the file is kept.
func TestRecvRefusesOverwrite(t *testing.T) {
	url := testserver.Start(t, nil)
	src, out := t.TempDir(), t.TempDir()
	writeRandom(t, filepath.Join(src, "keep.txt"), 5000)
	if err := os.WriteFile(filepath.Join(out, "keep.txt"), []byte("mine"), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), transferWait)
	defer cancel()
	recv := start(t, ctx, recvFiles, "--room", "ow", "--out", out, "--server", url, "--loopback")
	send := start(t, ctx, sendFiles, "--room", "ow", "--server", url, "--loopback", filepath.Join(src, "keep.txt"))
	var fe *transfer.FileError
	if err := send.wait(t, "send"); !errors.As(err, &fe) || fe.Code != transfer.CodeExists {
		t.Fatalf("send: %v", err)
	}
	if err := recv.wait(t, "recv"); !errors.As(err, &fe) || fe.Code != transfer.CodeExists {
		t.Fatalf("recv: %v", err)
	}
	for _, c := range []*command{send, recv} {
		if !strings.Contains(c.stderr.String(), "keep.txt:") || !strings.Contains(c.stderr.String(), "--overwrite") {
			t.Fatalf("no line about keep.txt with the flag to overwrite:\n%s", c.stderr.String())
		}
	}
	if b, _ := os.ReadFile(filepath.Join(out, "keep.txt")); string(b) != "mine" {
		t.Fatalf("keep.txt is now %d bytes", len(b))
	}
	if es, _ := os.ReadDir(out); len(es) != 1 {
		t.Fatalf("out holds %d entries", len(es))
	}
}

// Interrupting send in the middle of a file makes recv fail; what arrived is kept for a resume
// unless --discard-partial.
func TestSendInterrupted(t *testing.T) {
	for _, discard := range []bool{false, true} {
		t.Run(fmt.Sprintf("discard-partial=%v", discard), func(t *testing.T) { testSendInterrupted(t, discard) })
	}
}

// testSendInterrupted: by default recv keeps what arrived (big.bin.part, for a resume);
// with --discard-partial nothing is left.
func testSendInterrupted(t *testing.T, discard bool) {
	url := testserver.Start(t, nil)
	src, out := t.TempDir(), t.TempDir()
	writeRandom(t, filepath.Join(src, "big.bin"), 8<<20)
	ctx, cancel := context.WithTimeout(context.Background(), transferWait)
	defer cancel()

	// ^C on the sender as soon as the receiver has the file started: not earlier (a sender
	// that dies before its channel reached the receiver leaves it waiting for a sender,
	// rightly), not after the end.
	sendCtx, interrupt := context.WithCancel(ctx)
	defer interrupt()
	recv := &command{done: make(chan error, 1)}
	recv.stderr.watch = func(l string) {
		if strings.HasPrefix(l, "receiving big.bin") {
			interrupt()
		}
	}
	send := &command{done: make(chan error, 1)}
	finished := make(chan struct{}, 2)
	go func() {
		defer func() { finished <- struct{}{} }()
		args := []string{"--room", "cut", "--out", out, "--server", url, "--loopback"}
		if discard {
			args = append(args, "--discard-partial")
		}
		recv.done <- recvFiles(ctx, args, &recv.stdout, &recv.stderr)
	}()
	go func() {
		defer func() { finished <- struct{}{} }()
		send.done <- sendFiles(sendCtx, []string{"--room", "cut", "--server", url, "--loopback", filepath.Join(src, "big.bin")}, &send.stdout, &send.stderr)
	}()
	t.Cleanup(func() { <-finished; <-finished })
	if err := send.wait(t, "send"); !errors.Is(err, context.Canceled) {
		t.Fatalf("send: %v", err)
	}
	if err := recv.wait(t, "recv"); err == nil {
		t.Fatal("recv succeeded after the sender was interrupted")
	}
	es, _ := os.ReadDir(out)
	switch {
	case discard && len(es) != 0:
		t.Fatalf("out holds %v", es)
	case !discard && (len(es) != 1 || es[0].Name() != "big.bin.part"):
		t.Fatalf("out holds %v; want big.bin.part alone", es)
	}
}

func TestTransferCommandsUsage(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name    string
		f       func(context.Context, []string, io.Writer, io.Writer) error
		args    []string
		wantErr string // "" means flag.ErrHelp
		wantOut string
	}{
		{"send help", sendFiles, []string{"--help"}, "", "Usage: switchboard send FILE..."},
		{"recv help", recvFiles, []string{"-h"}, "", "Usage: switchboard recv CODE"},
		{"send no files", sendFiles, nil, "no files given", "-room"},
		{"send missing file", sendFiles, []string{"/nonexistent/file"}, "no such file", ""},
		{"send a directory", sendFiles, []string{"."}, "not a regular file", ""},
		{"send duplicate names", sendFiles, []string{"transfer.go", "./transfer.go"}, "same name", ""},
		{"recv no code", recvFiles, []string{"--out", "x"}, "give the code", "-overwrite"},
		{"recv bad code", recvFiles, []string{"7-aardvark-nonsense-acme"}, "is not one of the code words", ""},
		{"recv extra argument", recvFiles, []string{"--room", "r", "file"}, "unexpected argument", ""},
		{"bad flag", recvFiles, []string{"--nope"}, "flag provided but not defined", ""},
		{"server unreachable", sendFiles, []string{"--server", "127.0.0.1:1", "transfer.go"},
			"cannot reach the signaling server at http://127.0.0.1:1 (connection refused)", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			err := tc.f(ctx, tc.args, &stdout, &stderr)
			if tc.wantErr == "" {
				if !errors.Is(err, flag.ErrHelp) {
					t.Fatalf("err %v, want flag.ErrHelp", err)
				}
			} else if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("err %v, want %q", err, tc.wantErr)
			}
			if !strings.Contains(stderr.String(), tc.wantOut) {
				t.Fatalf("stderr %q, want %q", stderr.String(), tc.wantOut)
			}
		})
	}
}

func TestParseInterspersed(t *testing.T) {
	for _, tc := range []struct {
		args     []string
		room     string
		wantArgs []string
	}{
		{[]string{"a", "b"}, "", []string{"a", "b"}},
		{[]string{"a", "--room", "r", "b"}, "r", []string{"a", "b"}},
		{[]string{"--room=r", "a"}, "r", []string{"a"}},
		{[]string{"a", "--", "--room", "b"}, "", []string{"a", "--room", "b"}},
	} {
		fs := flag.NewFlagSet("t", flag.ContinueOnError)
		room := fs.String("room", "", "")
		got, err := parseInterspersed(fs, tc.args)
		if err != nil || *room != tc.room || !slices.Equal(got, tc.wantArgs) {
			t.Errorf("%q: got %q room %q err %v", tc.args, got, *room, err)
		}
	}
}

func TestProgressPrinterPlain(t *testing.T) {
	var b bytes.Buffer
	pp := newProgressPrinter(&b, "sending")
	const size = 100 << 20
	for i := int64(0); i <= 20; i++ {
		pp.update(transfer.Progress{Name: "f", File: 1, Files: 1, Bytes: i * size / 20, Size: size, Rate: 2 << 20, ETA: 3 * time.Second, Done: i == 20})
	}
	lines := strings.Split(strings.TrimSpace(b.String()), "\n")
	// 0 %, every 10 % step and done: 11 lines, not 21.
	if len(lines) != 11 || !strings.Contains(lines[0], "0%") || !strings.HasSuffix(lines[10], "100.0 MiB / 100.0 MiB  2.0 MiB/s") {
		t.Fatalf("%d lines:\n%s", len(lines), b.String())
	}
	if !strings.Contains(lines[5], "50%  50.0 MiB / 100.0 MiB  2.0 MiB/s  ETA 3s") {
		t.Fatalf("line %q", lines[5])
	}
}

// A sender's bar shows confirmed bytes; against a receiver that confirms only whole files it
// says how much was sent besides, and never more than the confirmed percentage.
func TestProgressPrinterConfirmed(t *testing.T) {
	var b bytes.Buffer
	pp := newProgressPrinter(&b, "sending")
	const size = 10 << 20
	pp.update(transfer.Progress{Name: "f", File: 1, Files: 1, Bytes: 2 << 20, Sent: 6 << 20, Size: size, ReceiverAcks: true, ETA: -1})
	pp.update(transfer.Progress{Name: "g", File: 1, Files: 1, Bytes: 0, Sent: 6 << 20, Size: size, ETA: -1})
	pp.update(transfer.Progress{Name: "g", File: 1, Files: 1, Bytes: size, Sent: size, Size: size, Done: true, ETA: 0})
	lines := strings.Split(strings.TrimSpace(b.String()), "\n")
	want := []string{
		"sending f: 20%  2.0 MiB / 10.0 MiB",
		"sending g: 0%  0 B / 10.0 MiB  (6.0 MiB sent, not confirmed yet)",
		"sending g: done  10.0 MiB / 10.0 MiB",
	}
	if !slices.Equal(lines, want) {
		t.Fatalf("got\n%s\nwant\n%s", strings.Join(lines, "\n"), strings.Join(want, "\n"))
	}
}

func TestHumanFormats(t *testing.T) {
	for n, want := range map[int64]string{0: "0 B", 1023: "1023 B", 1536: "1.5 KiB", 64 << 20: "64.0 MiB", 3 << 40: "3.0 TiB"} {
		if got := humanBytes(n); got != want {
			t.Errorf("humanBytes(%d) = %q, want %q", n, got, want)
		}
	}
	for d, want := range map[time.Duration]string{1400 * time.Millisecond: "1s", 185 * time.Second: "3m05s", 3720 * time.Second: "1h02m"} {
		if got := humanDuration(d); got != want {
			t.Errorf("humanDuration(%v) = %q, want %q", d, got, want)
		}
	}
}
