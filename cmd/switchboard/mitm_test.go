package main

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/switchboard-rtc/switchboard/internal/mitmtest"
)

// TestCodeManInTheMiddle: send and recv (the binary, as processes) dial a signaling proxy in
// front of a real serve. The proxy terminates their WebRTC with its own peer connections
// (its own DTLS certificates) and pipes the data channels between them; it strips QUIC from
// the joins so that the pair uses the data channel.
//
//   - With a code, both refuse with their one-line message once the transfer's channel is
//     open (the proxy piped it), no byte of the file goes through the proxy and nothing is
//     written on the receiving side.
//   - With --room (no code, nothing checks the connection) the same proxy carries the whole
//     file, unchanged: the man in the middle works, and is caught only by the binding.
//   - A control: the proxy relaying everything (QUIC stripped still): the code's transfer
//     goes through it.
func TestCodeManInTheMiddle(t *testing.T) {
	url := startServe(t)
	src := t.TempDir()
	const size = 512 << 10
	want := writeRandom(t, filepath.Join(src, "x.dat"), size)
	file := filepath.Join(src, "x.dat")

	t.Run("terminated with a code", func(t *testing.T) {
		px := mitmtest.Start(t, url, mitmtest.Options{Terminate: true, StripQUIC: true})
		out := t.TempDir()
		ctx, cancel := context.WithTimeout(context.Background(), transferWait)
		defer cancel()
		send, code, _ := startCLISend(t, ctx, px.URL(), nil, file)
		recv := startCLIRecv(t, ctx, px.URL(), code, "--out", out)
		for _, c := range []struct {
			cmd  *command
			name string
		}{{recv, "recv"}, {send, "send"}} {
			if err := c.cmd.wait(t, c.name); err == nil {
				t.Fatalf("%s succeeded through the man in the middle:\n%s", c.name, c.cmd.stderr.String())
			}
			if l, w := errorLine(t, c.cmd, c.name), "switchboard: "+c.name+": "+errBinding.Error(); l != w {
				t.Fatalf("%s: %q, want %q", c.name, l, w)
			}
		}
		if entries, _ := os.ReadDir(out); len(entries) != 0 {
			t.Fatalf("files arrived: %v", entries)
		}
		s := px.Stats()
		if s.Pairs != 1 || !slices.Contains(s.Channels, "switchboard-file") || s.Stripped != 2 {
			t.Fatalf("the proxy did not take the pair's transfer channel: %+v", s)
		}
		if s.Bytes != 0 {
			t.Fatalf("%d bytes went over the piped channels before both refused", s.Bytes)
		}
		if errs := px.Errors(); len(errs) > 0 {
			t.Fatalf("proxy errors: %v", errs)
		}
	})

	t.Run("terminated without a code", func(t *testing.T) {
		px := mitmtest.Start(t, url, mitmtest.Options{Terminate: true, StripQUIC: true})
		out := t.TempDir()
		ctx, cancel := context.WithTimeout(context.Background(), transferWait)
		defer cancel()
		recv := startCLIRecv(t, ctx, px.URL(), "--room", "mitm-room", "--out", out)
		send := startCLI(t, ctx, nil, "send", "--server", px.URL(), "--loopback", "--room", "mitm-room", file)
		waitBoth(t, send, recv)
		if sumFile(t, filepath.Join(out, "x.dat")) != want {
			t.Fatal("x.dat differs")
		}
		s := px.Stats()
		if s.Pairs != 1 || !slices.Contains(s.Channels, "switchboard-file") || s.Bytes < size {
			t.Fatalf("the file did not go through the proxy's channels: %+v", s)
		}
		if errs := px.Errors(); len(errs) > 0 {
			t.Fatalf("proxy errors: %v", errs)
		}
	})

	t.Run("relayed with a code", func(t *testing.T) {
		px := mitmtest.Start(t, url, mitmtest.Options{StripQUIC: true})
		out := t.TempDir()
		ctx, cancel := context.WithTimeout(context.Background(), transferWait)
		defer cancel()
		send, code, _ := startCLISend(t, ctx, px.URL(), nil, file)
		recv := startCLIRecv(t, ctx, px.URL(), code, "--out", out)
		waitBoth(t, send, recv)
		if sumFile(t, filepath.Join(out, "x.dat")) != want {
			t.Fatal("x.dat differs")
		}
		if !strings.Contains(recv.stderr.String(), "over the data channel") {
			t.Fatalf("recv did not go over the data channel:\n%s", recv.stderr.String())
		}
		if s := px.Stats(); s.Pairs != 0 || s.Stripped != 2 {
			t.Fatalf("relaying, the proxy terminated a pair or stripped no QUIC: %+v", s)
		}
	})
}
