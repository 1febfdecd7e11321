package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"
)

// Tests that run the real binary: it is built once per test run (cliBinary) and removed by
// TestMain.

var (
	binOnce sync.Once
	binDir  string
	binPath string
	binErr  error
)

func TestMain(m *testing.M) {
	code := m.Run()
	if binDir != "" {
		_ = os.RemoveAll(binDir)
	}
	os.Exit(code)
}

// cliBinary builds the switchboard binary (once per test run) and returns its path.
func cliBinary(t *testing.T) string {
	t.Helper()
	binOnce.Do(func() {
		if binDir, binErr = os.MkdirTemp("", "switchboard-test-bin-"); binErr != nil {
			return
		}
		binPath = filepath.Join(binDir, "switchboard")
		if out, err := exec.Command("go", "build", "-o", binPath, ".").CombinedOutput(); err != nil {
			binErr = fmt.Errorf("go build: %w\n%s", err, out)
		}
	})
	if binErr != nil {
		t.Fatal(binErr)
	}
	return binPath
}

// serveAddr matches the address serve logs once it listens.
var serveAddr = regexp.MustCompile(`"addr":"([0-9.]+:[0-9]+)"`)

// startServe runs `switchboard serve` as a process on free loopback ports (the embedded TURN
// server too), with args added, and returns its base URL once /readyz answers 200. The
// process is killed when the test ends; its log is shown if the test failed.
func startServe(t *testing.T, args ...string) string {
	t.Helper()
	argv := append([]string{"serve", "--listen", "127.0.0.1:0", "--turn-listen", "127.0.0.1:0", "--log-format", "json"}, args...)
	cmd := exec.Command(cliBinary(t), argv...)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	addrc := make(chan string, 1)
	var logMu sync.Mutex
	var log []string
	read := make(chan struct{})
	go func() { // until the process ends
		defer close(read)
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			l := sc.Text()
			logMu.Lock()
			log = append(log, l)
			logMu.Unlock()
			if m := serveAddr.FindStringSubmatch(l); m != nil && strings.Contains(l, "switchboard serving") {
				select {
				case addrc <- m[1]:
				default:
				}
			}
		}
		_, _ = io.Copy(io.Discard, stderr)
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-read
		_ = cmd.Wait()
		if t.Failed() {
			logMu.Lock()
			t.Logf("serve's log:\n%s", strings.Join(log, "\n"))
			logMu.Unlock()
		}
	})
	var addr string
	select {
	case addr = <-addrc:
	case <-read:
		t.Fatal("serve exited before listening")
	case <-time.After(10 * time.Second):
		t.Fatal("serve did not log its address")
	}
	url := "http://" + addr
	deadline := time.Now().Add(10 * time.Second)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		resp, err := http.Get(url + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return url
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("serve at %s not ready", addr)
		}
		<-tick.C
	}
}

// startCLI runs `switchboard ARGS` as a process with stdin (nil: none), bounded by ctx; its
// output goes to the command's line buffers as it comes. The process is killed if still
// running when the test ends.
func startCLI(t *testing.T, ctx context.Context, stdin io.Reader, args ...string) *command {
	t.Helper()
	c := &command{done: make(chan error, 1)}
	runProcess(t, ctx, c, stdin, args...)
	return c
}

// runProcess starts the process of c (whose line buffers may have watches set).
func runProcess(t *testing.T, ctx context.Context, c *command, stdin io.Reader, args ...string) {
	t.Helper()
	cmd := exec.CommandContext(ctx, cliBinary(t), args...)
	cmd.Stdin = stdin
	startCommand(t, c, cmd)
}

// startCommand starts cmd as the process of c: its output to c's line buffers, no server or
// token from the environment; it is killed if still running when the test ends.
func startCommand(t *testing.T, c *command, cmd *exec.Cmd) {
	t.Helper()
	cmd.Stdout, cmd.Stderr = &c.stdout, &c.stderr
	cmd.WaitDelay = 2 * time.Second
	cmd.Env = append(os.Environ(), "SWITCHBOARD_SERVER=", "SWITCHBOARD_TOKEN=")
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", strings.Join(cmd.Args, " "), err)
	}
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		c.done <- cmd.Wait()
	}()
	t.Cleanup(func() {
		select {
		case <-finished:
		default:
			_ = cmd.Process.Kill()
			<-finished
		}
	})
}

// startCLISend runs `switchboard send` (code mode unless args say otherwise) through the
// server at url and returns it with the code it printed and its stderr lines as they come.
func startCLISend(t *testing.T, ctx context.Context, url string, stdin io.Reader, args ...string) (*command, string, <-chan string) {
	t.Helper()
	printed := make(chan string, 1)
	lines := make(chan string, 256)
	c := &command{done: make(chan error, 1)}
	c.stdout.watch = func(l string) {
		if l = strings.TrimSpace(l); strings.HasPrefix(l, "switchboard recv ") {
			select {
			case printed <- strings.Fields(l)[2]:
			default:
			}
		}
	}
	c.stderr.watch = func(l string) {
		select {
		case lines <- l:
		default:
		}
	}
	runProcess(t, ctx, c, stdin, append([]string{"send", "--server", url, "--loopback"}, args...)...)
	select {
	case code := <-printed:
		return c, code, lines
	case err := <-c.done:
		t.Fatalf("send ended before printing a code: %v\n%s", err, c.stderr.String())
	case <-time.After(transferWait):
		t.Fatalf("send printed no code:\n%s", c.stderr.String())
	}
	return nil, "", nil
}

// startCLIRecv runs `switchboard recv ARGS` through the server at url.
func startCLIRecv(t *testing.T, ctx context.Context, url string, args ...string) *command {
	t.Helper()
	return startCLI(t, ctx, nil, append([]string{"recv", "--server", url, "--loopback"}, args...)...)
}

// errorLine returns the line the binary printed its error on ("switchboard: ..."), failing
// the test if there is none or more than one.
func errorLine(t *testing.T, c *command, what string) string {
	t.Helper()
	var found []string
	for _, l := range strings.Split(c.stderr.String(), "\n") {
		if strings.HasPrefix(l, "switchboard: ") {
			found = append(found, l)
		}
	}
	if len(found) != 1 {
		t.Fatalf("%s printed %d error lines, want 1:\n%s", what, len(found), c.stderr.String())
	}
	return found[0]
}
