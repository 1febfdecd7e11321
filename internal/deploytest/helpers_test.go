package deploytest

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/switchboard-rtc/switchboard/internal/certs"
	"github.com/switchboard-rtc/switchboard/internal/config"
	"github.com/switchboard-rtc/switchboard/internal/server"
	"github.com/switchboard-rtc/switchboard/internal/testenv"
)

const (
	deployDoc = "../../docs/deploy.md"
	waitFor   = 10 * time.Second
)

// docBlock returns the fenced code block between <!-- deploytest:name --> and
// <!-- /deploytest:name --> in docs/deploy.md, without its fences.
func docBlock(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile(deployDoc)
	if err != nil {
		t.Fatal(err)
	}
	open, end := "<!-- deploytest:"+name+" -->", "<!-- /deploytest:"+name+" -->"
	if bytes.Count(b, []byte(open)) != 1 || bytes.Count(b, []byte(end)) != 1 {
		t.Fatalf("docs/deploy.md: want exactly one %s ... %s", open, end)
	}
	s := string(b)
	s = s[strings.Index(s, open)+len(open) : strings.Index(s, end)]
	s = strings.TrimSpace(s)
	first := strings.IndexByte(s, '\n')
	if !strings.HasPrefix(s, "```") || first < 0 || !strings.HasSuffix(s, "```") {
		t.Fatalf("docs/deploy.md: %s does not hold one fenced code block", open)
	}
	return strings.TrimSuffix(s[first+1:], "```")
}

// replaceOnce replaces the one occurrence of old in s, failing the test when old is not there
// exactly once: the page changed shape, and the test must be told how to run it.
func replaceOnce(t *testing.T, what, s, old, new string) string {
	t.Helper()
	if n := strings.Count(s, old); n != 1 {
		t.Fatalf("docs/deploy.md, %s: %q appears %d times, want once (update the test with the page)", what, old, n)
	}
	return strings.Replace(s, old, new, 1)
}

// serveArgs returns the flags of the `switchboard serve` command in block name; `export`
// lines (secrets in the environment) are left out.
func serveArgs(t *testing.T, name string) []string {
	t.Helper()
	var cmd []string
	for _, line := range strings.Split(docBlock(t, name), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "export ") {
			continue
		}
		if i := strings.Index(line, " #"); i >= 0 {
			line = line[:i]
		}
		cmd = append(cmd, strings.Fields(strings.TrimSuffix(line, `\`))...)
	}
	if len(cmd) < 2 || cmd[0] != "switchboard" || cmd[1] != "serve" {
		t.Fatalf("docs/deploy.md, %s: %q is not a switchboard serve command", name, cmd)
	}
	return cmd[2:]
}

// serveConfig loads the configuration the serve command of block name makes, with env as its
// environment, as `switchboard serve` does.
func serveConfig(t *testing.T, name string, env map[string]string) config.Config {
	t.Helper()
	cfg, err := config.Load(serveArgs(t, name), func(k string) (string, bool) {
		v, ok := env[k]
		return v, ok
	}, io.Discard)
	if err != nil {
		t.Fatalf("docs/deploy.md, %s: %v", name, err)
	}
	return cfg
}

// runServer starts a server with cfg, logging at debug level to logTo, and stops it when the
// test ends.
func runServer(t *testing.T, cfg config.Config, logTo io.Writer) *server.Server {
	t.Helper()
	cfg.ShutdownTimeout = 3 * time.Second
	srv, err := server.New(cfg, slog.New(slog.NewTextHandler(logTo, &slog.HandlerOptions{Level: slog.LevelDebug})))
	if err != nil {
		t.Fatalf("server.New: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("server.Run: %v", err)
			}
		case <-time.After(15 * time.Second):
			t.Errorf("server did not stop")
		}
	})
	return srv
}

// testCert writes a certificate for 127.0.0.1 and its key into dir and returns their paths and
// a pool that trusts it.
func testCert(t *testing.T, dir string) (certPath, keyPath string, pool *x509.CertPool) {
	t.Helper()
	c, err := certs.SelfSigned(nil)
	if err != nil {
		t.Fatal(err)
	}
	certPath, keyPath = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := certs.WritePEM(c, certPath, keyPath); err != nil {
		t.Fatal(err)
	}
	pool = x509.NewCertPool()
	pool.AddCert(c.Leaf)
	return certPath, keyPath, pool
}

// freePort returns a TCP port nobody listens on now, for a proxy to listen on. It is picked
// below the kernel's ephemeral range (32768 and up by default), which the clients' own ports
// come from: a port of the kernel's choosing can be some connection's by the time the proxy
// binds it.
func freePort(t *testing.T) int {
	t.Helper()
	for range 100 {
		port := 20000 + rand.IntN(12000)
		ln, err := net.Listen("tcp", fmt.Sprintf(":%d", port))
		if err == nil {
			ln.Close()
			return port
		}
	}
	t.Fatal("no free port in 20000-31999")
	return 0
}

// tool returns the path of a program the test needs, or ends the test (testenv.Missing).
func tool(t *testing.T, name string, also ...string) string {
	t.Helper()
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	for _, p := range also {
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	testenv.Missing(t, name+" is missing", "run scripts/install-test-deps.sh")
	return ""
}

// startProcess starts cmd (its output in log), waits until something accepts connections on
// 127.0.0.1:port, and stops it with SIGTERM when the test ends. It fails the test with the
// log if the process exits first or the port does not open within waitFor.
func startProcess(t *testing.T, name string, cmd *exec.Cmd, port int) {
	t.Helper()
	var log bytes.Buffer
	cmd.Stdout, cmd.Stderr = &log, &log
	if err := cmd.Start(); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(waitFor):
			_ = cmd.Process.Kill()
			<-exited
			t.Errorf("%s did not stop on SIGTERM", name)
		}
		if t.Failed() {
			t.Logf("%s output:\n%s", name, log.String())
		}
	})
	deadline := time.Now().Add(waitFor)
	for {
		select {
		case err := <-exited:
			exited <- err
			t.Fatalf("%s exited before it listened (%v):\n%s", name, err, log.String())
		default:
		}
		c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", port), time.Second)
		if err == nil {
			c.Close()
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: nothing listens on port %d after %v:\n%s", name, port, waitFor, log.String())
		}
		<-time.After(20 * time.Millisecond)
	}
}

// httpsClient returns a client that connects from the loopback address src and trusts pool.
func httpsClient(t *testing.T, src string, pool *x509.CertPool) *http.Client {
	t.Helper()
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}, Timeout: waitFor}
	tr := &http.Transport{DialContext: d.DialContext, TLSClientConfig: &tls.Config{RootCAs: pool}}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: waitFor,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

// get answers GET url with hc: the status and the body.
func get(t *testing.T, hc *http.Client, url string) (int, string, http.Header) {
	t.Helper()
	resp, err := hc.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), resp.Header
}

// nodeScenario runs a scenario of the official socket.io-client's harness
// (internal/sioserver/nodetest/sio.mjs) against url, trusting caFile, and returns its output.
func nodeScenario(t *testing.T, url, scenario, caFile string) string {
	t.Helper()
	node := tool(t, "node")
	dir := "../sioserver/nodetest"
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "socket.io-client", "package.json")); err != nil {
		testenv.Missing(t, "socket.io-client is missing ("+err.Error()+")", "run scripts/install-test-deps.sh (npm ci in internal/sioserver/nodetest)")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, "sio.mjs", scenario, url)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "NODE_EXTRA_CA_CERTS="+caFile)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("socket.io-client scenario %s through %s: %v\n%s%s", scenario, url, err, stdout.String(), stderr.String())
	}
	return stdout.String()
}

// logged counts the log lines of joins by client (its key: "127.0.0.2/32").
func logged(log string) map[string]int {
	n := map[string]int{}
	for _, m := range joinLine.FindAllStringSubmatch(log, -1) {
		n[m[1]]++
	}
	return n
}

var joinLine = regexp.MustCompile(`msg="peer joined" .*client=(\S+)`)
