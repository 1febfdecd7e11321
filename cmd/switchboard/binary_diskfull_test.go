package main

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/switchboard-rtc/switchboard/internal/testenv"
)

// A receiver whose disk fills up (recv in a mount namespace of its own with a 512 KiB tmpfs
// as its folder, 2 MiB sent): both sides say so in words, with what to do, no raw error.
func TestBinaryDiskFull(t *testing.T) {
	if _, err := exec.LookPath("unshare"); err != nil || os.Geteuid() != 0 {
		testenv.Missing(t, "root and unshare to mount a small tmpfs for the receiver", "run as root with util-linux installed")
	}
	url := startServe(t, "--turn=false")
	src, out := t.TempDir(), t.TempDir()
	writeRandom(t, filepath.Join(src, "big.dat"), 2<<20)
	ctx, cancel := context.WithTimeout(context.Background(), transferWait)
	defer cancel()
	send, code, _ := startCLISend(t, ctx, url, nil, filepath.Join(src, "big.dat"))

	recv := &command{done: make(chan error, 1)}
	script := `mount -t tmpfs -o size=512k tmpfs "$1" && shift && exec "$@"`
	cmd := exec.CommandContext(ctx, "unshare", "-m", "sh", "-c", script, "sh", out,
		cliBinary(t), "recv", "--server", url, "--loopback", code, "--out", out)
	startCommand(t, recv, cmd)

	if err := recv.wait(t, "recv on a full disk"); err == nil {
		t.Fatalf("recv on a full disk succeeded:\n%s", recv.stderr.String())
	}
	if err := send.wait(t, "send to a full disk"); err == nil {
		t.Fatalf("send to a full disk succeeded:\n%s", send.stderr.String())
	}
	if r := recv.stderr.String(); !strings.Contains(r, "big.dat: not received: the disk of "+out+" is full") {
		t.Fatalf("recv did not say the disk is full:\n%s", r)
	}
	if s := send.stderr.String(); !strings.Contains(s, "big.dat: the receiver's disk is full") {
		t.Fatalf("send did not say the receiver's disk is full:\n%s", s)
	}
	for _, c := range []*command{send, recv} {
		if s := c.stderr.String(); strings.Contains(s, "no space left on device") {
			t.Fatalf("a raw error reached the user:\n%s", s)
		}
	}
	t.Logf("send:\n%s\nrecv:\n%s", send.stderr.String(), recv.stderr.String())
}
