package main

import (
	"context"
	"errors"
	mrand "math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/switchboard-rtc/switchboard/internal/config"
	"github.com/switchboard-rtc/switchboard/internal/testserver"
	"github.com/switchboard-rtc/switchboard/internal/transfer"
	"github.com/switchboard-rtc/switchboard/internal/wormhole"
)

// startCodeSend starts send in code mode and returns it with the code it printed and its
// stderr lines as they come.
func startCodeSend(t *testing.T, ctx context.Context, url string, args ...string) (*command, wormhole.Code, <-chan string) {
	t.Helper()
	printed := make(chan string, 1)
	lines := make(chan string, 256)
	send := &command{done: make(chan error, 1)}
	send.stderr.watch = func(l string) {
		select {
		case lines <- l:
		default:
		}
	}
	send.stdout.watch = func(l string) {
		if l = strings.TrimSpace(l); strings.HasPrefix(l, "switchboard recv ") {
			select {
			case printed <- strings.Fields(l)[2]:
			default:
			}
		}
	}
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		send.done <- sendFiles(ctx, append([]string{"--server", url, "--loopback"}, args...), &send.stdout, &send.stderr)
	}()
	t.Cleanup(func() { <-finished })
	select {
	case s := <-printed:
		c, err := wormhole.ParseCode(s)
		if err != nil {
			t.Fatalf("send printed %q: %v", s, err)
		}
		return send, c, lines
	case err := <-send.done:
		t.Fatalf("send ended before printing a code: %v\n%s", err, send.stderr.String())
	case <-time.After(transferWait):
		t.Fatal("send printed no code")
	}
	return nil, wormhole.Code{}, nil
}

// wrongCode returns c with its last word changed.
func wrongCode(c wormhole.Code) string {
	w := c
	w.Words = append([]string(nil), c.Words...)
	for _, cand := range []string{"aardvark", "zulu"} {
		if cand != c.Words[2] {
			w.Words[2] = cand
			break
		}
	}
	return w.String()
}

// waitLine waits for a line containing s among lines.
func waitLine(t *testing.T, lines <-chan string, s string) {
	t.Helper()
	timeout := time.After(transferWait)
	for {
		select {
		case l := <-lines:
			if strings.Contains(l, s) {
				return
			}
		case <-timeout:
			t.Fatalf("no line with %q", s)
		}
	}
}

// TestCodeWrongThenRight: a receiver with a wrong code is refused at once (its error says
// so) and the sender says someone tried; the receiver with the right code then gets the
// file, over QUIC and over the data channel.
func TestCodeWrongThenRight(t *testing.T) {
	for _, path := range []string{"quic", "data channel"} {
		t.Run(path, func(t *testing.T) {
			url := testserver.Start(t, nil)
			src, out := t.TempDir(), t.TempDir()
			want := writeRandom(t, filepath.Join(src, "x.dat"), 300<<10)
			ctx, cancel := context.WithTimeout(context.Background(), transferWait)
			defer cancel()
			args := []string{filepath.Join(src, "x.dat")}
			if path == "data channel" {
				args = append(args, "--no-quic")
			}
			send, code, lines := startCodeSend(t, ctx, url, args...)

			bad := start(t, ctx, recvFiles, wrongCode(code), "--server", url, "--loopback", "--out", out)
			err := bad.wait(t, "recv with a wrong code")
			if err == nil || !strings.Contains(err.Error(), "the code is wrong") {
				t.Fatalf("recv with a wrong code: %v\n%s", err, bad.stderr.String())
			}
			waitLine(t, lines, "someone tried a wrong code (1 of 3)")

			recv := start(t, ctx, recvFiles, code.String(), "--server", url, "--loopback", "--out", out)
			waitBoth(t, send, recv)
			if sumFile(t, filepath.Join(out, "x.dat")) != want {
				t.Fatal("x.dat differs")
			}
			wantPath := "over QUIC"
			if path == "data channel" {
				wantPath = "over the data channel"
			}
			if !strings.Contains(recv.stderr.String(), wantPath) {
				t.Fatalf("recv did not go %s:\n%s", wantPath, recv.stderr.String())
			}
		})
	}
}

// TestCodeThreeWrongGivesUp: after three wrong codes the sender gives up.
func TestCodeThreeWrongGivesUp(t *testing.T) {
	url := testserver.Start(t, nil)
	src, out := t.TempDir(), t.TempDir()
	writeRandom(t, filepath.Join(src, "x.dat"), 10<<10)
	ctx, cancel := context.WithTimeout(context.Background(), transferWait)
	defer cancel()
	send, code, _ := startCodeSend(t, ctx, url, filepath.Join(src, "x.dat"))
	for i := range 3 {
		bad := start(t, ctx, recvFiles, wrongCode(code), "--server", url, "--loopback", "--out", out)
		if err := bad.wait(t, "recv with a wrong code"); err == nil {
			t.Fatalf("wrong code %d accepted", i+1)
		}
	}
	err := send.wait(t, "send")
	if err == nil || !strings.Contains(err.Error(), "3 wrong codes: giving up") {
		t.Fatalf("send after 3 wrong codes: %v\n%s", err, send.stderr.String())
	}
	if entries, _ := os.ReadDir(out); len(entries) != 0 {
		t.Fatalf("files arrived: %v", entries)
	}
}

// TestCodeBindingRefusesSubstitutedConnection: the pair proved the code, but one side's
// connection does not end where the other's does (what a server that substituted the
// fingerprints in the SDP or the QUIC hello makes each side see, emulated by altering the
// fingerprints the receiver binds): both refuse, and no file moves.
func TestCodeBindingRefusesSubstitutedConnection(t *testing.T) {
	alterBind = func(role wormhole.Role, local, _ *[32]byte) {
		if role == wormhole.Receiver {
			local[0] ^= 1 // the receiver's certificate as the sender did not see it
		}
	}
	t.Cleanup(func() { alterBind = nil })
	url := testserver.Start(t, nil)
	src, out := t.TempDir(), t.TempDir()
	writeRandom(t, filepath.Join(src, "x.dat"), 100<<10)
	ctx, cancel := context.WithTimeout(context.Background(), transferWait)
	defer cancel()
	send, code, _ := startCodeSend(t, ctx, url, filepath.Join(src, "x.dat"))
	recv := start(t, ctx, recvFiles, code.String(), "--server", url, "--loopback", "--out", out)
	for _, c := range []struct {
		cmd  *command
		name string
	}{{recv, "recv"}, {send, "send"}} {
		err := c.cmd.wait(t, c.name)
		if err == nil || !errors.Is(err, errBinding) {
			t.Fatalf("%s: %v, want the binding refused\n%s", c.name, err, c.cmd.stderr.String())
		}
	}
	if entries, _ := os.ReadDir(out); len(entries) != 0 {
		t.Fatalf("files arrived: %v", entries)
	}
}

// TestRecvUnknownCodeWaits: a code nobody sends: recv says so, waits --wait, and gives up
// with a clear error.
func TestRecvUnknownCodeWaits(t *testing.T) {
	url := testserver.Start(t, nil)
	ctx, cancel := context.WithTimeout(context.Background(), transferWait)
	defer cancel()
	code, err := wormhole.NewCode()
	if err != nil {
		t.Fatal(err)
	}
	// The server without its scheme: http:// is understood.
	recv := start(t, ctx, recvFiles, code.String(), "--server", strings.TrimPrefix(url, "http://"), "--loopback", "--out", t.TempDir(), "--wait", "300ms")
	err = recv.wait(t, "recv")
	if err == nil || !strings.Contains(err.Error(), "no sender came with code "+code.String()) {
		t.Fatalf("recv: %v", err)
	}
	if !strings.Contains(recv.stderr.String(), "no sender with this code on the server yet") {
		t.Fatalf("stderr:\n%s", recv.stderr.String())
	}
}

// TestResumeAfterKilledReceiver: ten times, the receiver is stopped at a random point of a
// file; send and recv run again (a new code) and the transfer continues from what recv kept,
// ending with the sender's file, SHA-256 equal.
func TestResumeAfterKilledReceiver(t *testing.T) {
	url := testserver.Start(t, nil)
	src, out := t.TempDir(), t.TempDir()
	const size = 6 << 20
	want := writeRandom(t, filepath.Join(src, "x.dat"), size)
	rng := mrand.New(mrand.NewPCG(1, 2))
	var kill atomic.Pointer[func(transfer.Progress)]
	recvProgressHook = func(p transfer.Progress) {
		if f := kill.Load(); f != nil {
			(*f)(p)
		}
	}
	t.Cleanup(func() { recvProgressHook = nil })
	for trial := range 10 {
		ctx, cancel := context.WithTimeout(context.Background(), transferWait)
		at := int64(1<<20) + rng.Int64N(size-2<<20)
		rctx, stopRecv := context.WithCancel(ctx)
		f := func(p transfer.Progress) {
			if p.Bytes >= at {
				stopRecv()
			}
		}
		kill.Store(&f)
		send, code, _ := startCodeSend(t, ctx, url, filepath.Join(src, "x.dat"))
		recv := start(t, rctx, recvFiles, code.String(), "--server", url, "--loopback", "--out", out)
		if err := recv.wait(t, "the receiver to be stopped"); err == nil {
			t.Fatalf("trial %d: the receiver finished before it was stopped at %d", trial, at)
		}
		if err := send.wait(t, "send after the receiver stopped"); err == nil {
			t.Fatalf("trial %d: send succeeded with a stopped receiver", trial)
		}
		part, err := os.Stat(filepath.Join(out, "x.dat.part"))
		if err != nil || part.Size() < at-(1<<20) {
			t.Fatalf("trial %d: the partial file after a stop at %d: %v %v", trial, at, part, err)
		}
		kill.Store(nil)
		send, code, _ = startCodeSend(t, ctx, url, filepath.Join(src, "x.dat"))
		recv = start(t, ctx, recvFiles, code.String(), "--server", url, "--loopback", "--out", out)
		if err := recv.wait(t, "recv"); err != nil {
			t.Fatalf("trial %d: recv: %v\n%s", trial, err, recv.stderr.String())
		}
		if err := send.wait(t, "send"); err != nil {
			t.Fatalf("trial %d: send: %v\n%s", trial, err, send.stderr.String())
		}
		if !strings.Contains(recv.stderr.String(), "continued from") {
			t.Fatalf("trial %d: recv did not say it continued:\n%s", trial, recv.stderr.String())
		}
		if sumFile(t, filepath.Join(out, "x.dat")) != want {
			t.Fatalf("trial %d: x.dat differs", trial)
		}
		if err := os.Remove(filepath.Join(out, "x.dat")); err != nil {
			t.Fatal(err)
		}
		cancel()
	}
}

// TestSendFolder: a folder tree and a file in one send: the tree arrives under its name,
// every file intact; a link inside the folder is left out and said so.
func TestSendFolder(t *testing.T) {
	url := testserver.Start(t, nil)
	src, out := t.TempDir(), t.TempDir()
	want := map[string][32]byte{
		"photos/a.jpg":          writeRandom(t, filepath.Join(src, "photos", "a.jpg"), 200<<10),
		"photos/2026/b.jpg":     writeRandom(t, filepath.Join(src, "photos", "2026", "b.jpg"), 3<<20),
		"photos/2026/dec/c.txt": writeRandom(t, filepath.Join(src, "photos", "2026", "dec", "c.txt"), 10),
		"photos/2026/dec/empty": writeRandom(t, filepath.Join(src, "photos", "2026", "dec", "empty"), 0),
		"report.pdf":            writeRandom(t, filepath.Join(src, "report.pdf"), 50<<10),
	}
	if err := os.Symlink("/etc/passwd", filepath.Join(src, "photos", "link")); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), transferWait)
	defer cancel()
	send, code, _ := startCodeSend(t, ctx, url, filepath.Join(src, "report.pdf"), filepath.Join(src, "photos"))
	recv := start(t, ctx, recvFiles, code.String(), "--server", url, "--loopback", "--out", out)
	waitBoth(t, send, recv)
	for name, sum := range want {
		if sumFile(t, filepath.Join(out, filepath.FromSlash(name))) != sum {
			t.Fatalf("%s differs", name)
		}
	}
	if _, err := os.Lstat(filepath.Join(out, "photos", "link")); !os.IsNotExist(err) {
		t.Fatalf("the link arrived: %v", err)
	}
	if !strings.Contains(send.stderr.String(), "photos/link: left out") {
		t.Fatalf("send did not say it left the link out:\n%s", send.stderr.String())
	}
}

// TestSendTextAndStdio: send --text shows the message on the receiver's standard output
// (no file written); send - sends standard input, and recv --out - writes the one file to
// standard output once verified.
func TestSendTextAndStdio(t *testing.T) {
	url := testserver.Start(t, nil)
	ctx, cancel := context.WithTimeout(context.Background(), transferWait)
	defer cancel()

	out := t.TempDir()
	send, code, _ := startCodeSend(t, ctx, url, "--text", "meet at 7, gate B")
	recv := start(t, ctx, recvFiles, code.String(), "--server", url, "--loopback", "--out", out)
	waitBoth(t, send, recv)
	if got := recv.stdout.String(); got != "meet at 7, gate B\n" {
		t.Fatalf("recv printed %q", got)
	}
	if es, _ := os.ReadDir(out); len(es) != 0 {
		t.Fatalf("a text message wrote %v", es)
	}

	data := make([]byte, 300<<10)
	for i := range data {
		data[i] = byte(i*7 + i>>9)
	}
	stdin = strings.NewReader(string(data))
	t.Cleanup(func() { stdin = os.Stdin })
	send, code, _ = startCodeSend(t, ctx, url, "-", "--name", "dump.bin")
	recv = start(t, ctx, recvFiles, code.String(), "--server", url, "--loopback", "--out", "-")
	if err := recv.wait(t, "recv --out -"); err != nil {
		t.Fatalf("recv: %v\n%s", err, recv.stderr.String())
	}
	if err := send.wait(t, "send -"); err != nil {
		t.Fatalf("send: %v\n%s", err, send.stderr.String())
	}
	if got := recv.stdout.String(); got != string(data) {
		t.Fatalf("recv --out - wrote %d bytes, want the %d of standard input", len(got), len(data))
	}
}

// TestCodeThroughRelay: both sides with --relay: the code's exchange, the binding and the
// file all work through the embedded TURN relay (QUIC inside the relayed ICE session).
func TestCodeThroughRelay(t *testing.T) {
	url := testserver.Start(t, func(c *config.Config) {
		c.TURN = true
		c.TURNAllowPeers = []string{"127.0.0.0/8"}
	})
	src, out := t.TempDir(), t.TempDir()
	want := writeRandom(t, filepath.Join(src, "x.dat"), 1<<20)
	ctx, cancel := context.WithTimeout(context.Background(), transferWait)
	defer cancel()
	send, code, _ := startCodeSend(t, ctx, url, "--relay", filepath.Join(src, "x.dat"))
	recv := start(t, ctx, recvFiles, code.String(), "--relay", "--server", url, "--loopback", "--out", out)
	waitBoth(t, send, recv)
	if sumFile(t, filepath.Join(out, "x.dat")) != want {
		t.Fatal("x.dat differs")
	}
	if !strings.Contains(recv.stderr.String(), "over QUIC (relay)") {
		t.Fatalf("not through the relay:\n%s", recv.stderr.String())
	}
}

// waitBoth waits for recv, then send, and fails the test with the stderr of one that failed.
func waitBoth(t *testing.T, send, recv *command) {
	t.Helper()
	if err := recv.wait(t, "recv"); err != nil {
		t.Fatalf("recv: %v\n%s", err, recv.stderr.String())
	}
	if err := send.wait(t, "send"); err != nil {
		t.Fatalf("send: %v\n%s", err, send.stderr.String())
	}
}
