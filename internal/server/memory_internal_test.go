package server

import (
	"context"
	"io"
	"log/slog"
	"net"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/switchboard-rtc/switchboard/internal/config"
)

// TestSendBufferListener: every accepted connection gets the configured SO_SNDBUF (which
// the kernel doubles), so a client that does not read is held to it rather than to the
// megabytes autotuning grows to; and that is what the budget charges for a backed-up socket.
func TestSendBufferListener(t *testing.T) {
	inner, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ln := withSendBuffer(inner, 64<<10)
	defer ln.Close()
	go func() {
		if c, err := net.Dial("tcp", inner.Addr().String()); err == nil {
			defer c.Close()
			var b [1]byte
			_, _ = c.Read(b[:])
		}
	}()
	c, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	raw, err := c.(*net.TCPConn).SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var got int
	var gerr error
	if err := raw.Control(func(fd uintptr) { got, gerr = unix.GetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_SNDBUF) }); err != nil || gerr != nil {
		t.Fatal(err, gerr)
	}
	if got != 2*64<<10 {
		t.Fatalf("SO_SNDBUF %d, want %d", got, 2*64<<10)
	}
	cfg := config.Default()
	cfg.SocketSendBuffer = 64 << 10
	if kernelSendBuffer(cfg) != int64(got) {
		t.Fatalf("charged %d for a full kernel buffer of %d", kernelSendBuffer(cfg), got)
	}
	if withSendBuffer(inner, 0) != inner {
		t.Fatal("a zero size wraps the listener")
	}
	cfg.SocketSendBuffer = 0
	if kernelSendBuffer(cfg) < 64<<10 {
		t.Fatalf("with autotuning the charge is %d, want the tcp_wmem maximum", kernelSendBuffer(cfg))
	}
}

// TestBudgetStoppedWhenServeFails: when the listener fails, Run returns and the memory
// budget's reclaimer is stopped with everything else.
func TestBudgetStoppedWhenServeFails(t *testing.T) {
	cfg := config.Default()
	cfg.Listen = "127.0.0.1:0"
	cfg.TURN = false
	s, err := New(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	_ = s.ln.Close() // Serve fails at once
	if err := s.Run(context.Background()); err == nil {
		t.Fatal("Run on a closed listener returned nil")
	}
	select {
	case <-s.budget.done:
	case <-time.After(5 * time.Second):
		t.Fatal("the memory budget's reclaimer still runs after Run returned")
	}
}
