package main

import (
	"bufio"
	"context"
	"errors"
	"os/exec"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/coder/websocket"
)

// TestServeSIGTERM runs the real binary, connects a peer, sends SIGTERM and checks the peer
// gets 1012 Service Restart (reason restart: come back and resume) and the process exits
// cleanly within the deadline.
func TestServeSIGTERM(t *testing.T) {
	bin := cliBinary(t)
	cmd := exec.Command(bin, "serve", "--listen", "127.0.0.1:0", "--turn-listen", "127.0.0.1:0", "--log-format", "json", "--shutdown-timeout", "5s")
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill() })

	addrRE := regexp.MustCompile(`"addr":"([0-9.]+:[0-9]+)"`)
	lines := make(chan string, 100)
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	var addr string
	for addr == "" {
		select {
		case l, ok := <-lines:
			if !ok {
				t.Fatal("server exited before listening")
			}
			if m := addrRE.FindStringSubmatch(l); m != nil && strings.Contains(l, "switchboard serving") {
				addr = m[1]
			}
		case <-time.After(10 * time.Second):
			t.Fatal("server did not log its address")
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, _, err := websocket.Dial(ctx, "ws://"+addr+"/ws", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.CloseNow()
	if err := c.Write(ctx, websocket.MessageText, []byte(`{"type":"join","room":"r"}`)); err != nil {
		t.Fatal(err)
	}
	if _, b, err := c.Read(ctx); err != nil || !strings.Contains(string(b), "welcome") {
		t.Fatalf("welcome: %s %v", b, err)
	}

	start := time.Now()
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	_, _, err = c.Read(ctx)
	var ce websocket.CloseError
	if !errors.As(err, &ce) || ce.Code != websocket.StatusServiceRestart || ce.Reason != "restart" {
		t.Fatalf("want close 1012 restart, got %v", err)
	}
	done := make(chan error, 1)
	go func() {
		for range lines {
		}
		done <- cmd.Wait()
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("exit: %v", err)
		}
	case <-time.After(8 * time.Second):
		t.Fatal("did not exit within the shutdown deadline")
	}
	t.Logf("exited %v after SIGTERM", time.Since(start).Round(time.Millisecond))
}

func TestUnknownCommand(t *testing.T) {
	var out, errb strings.Builder
	if err := run(context.Background(), []string{"frobnicate"}, &out, &errb); err == nil {
		t.Fatal("unknown command accepted")
	}
	if !strings.Contains(errb.String(), "serve") {
		t.Fatalf("usage not printed: %q", errb.String())
	}
}
