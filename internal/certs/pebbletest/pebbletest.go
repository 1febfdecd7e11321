// Package pebbletest runs Pebble, Let's Encrypt's ACME test CA, as a process for a test, with
// pebble-challtestsrv as its DNS server answering every name with 127.0.0.1: a name like
// call.switchboard.test validates against a server of the test on loopback. Validation
// really happens (PEBBLE_VA_ALWAYS_VALID is never set): the CA connects to HTTPPort for
// HTTP-01 and TLSPort for TLS-ALPN-01 on 127.0.0.1.
//
// Both programs are the go.mod tools of this module (`go tool pebble`, pinned with
// `go get -tool`); their binaries are built into the Go build cache on first use (about half
// a minute; scripts/install-test-deps.sh builds them ahead). Without the go command the test
// ends through testenv.Missing.
//
//	ca := pebbletest.Start(t, pebbletest.Options{HTTPPort: httpPort, TLSPort: tlsPort})
//	// ACME client: directory ca.Directory, trusting ca.RootsFile for the CA's own HTTPS.
//	// TLS client of the server: RootCAs ca.Roots() to verify what the CA issued.
package pebbletest

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/switchboard-rtc/switchboard/internal/certs"
	"github.com/switchboard-rtc/switchboard/internal/testenv"
)

// Options are the ports of the server under test that the CA checks challenges on.
type Options struct {
	// HTTPPort is where HTTP-01 challenges are fetched (plain HTTP on 127.0.0.1); 0: a port
	// nothing listens on.
	HTTPPort int
	// TLSPort is where TLS-ALPN-01 challenges are checked (TLS on 127.0.0.1); 0: a port
	// nothing listens on.
	TLSPort int
}

// CA is a running Pebble.
type CA struct {
	// Directory is the ACME directory URL.
	Directory string
	// RootsFile is a PEM file of the CA's own HTTPS certificate, for an ACME client to trust
	// (--acme-ca-root).
	RootsFile string

	t       testing.TB
	mgmt    string // Pebble's management address (roots)
	dnsMgmt string // pebble-challtestsrv's management address
	roots   *x509.CertPool
	rootPEM []byte
	pebble  *process
	dns     *process
}

// Start runs pebble-challtestsrv and Pebble on loopback ports, waits until both answer, and
// stops them when the test ends.
func Start(t testing.TB, o Options) *CA {
	t.Helper()
	pebbleBin, dnsBin := binaries(t)
	dir := t.TempDir()
	https, err := certs.SelfSigned(nil) // localhost and 127.0.0.1: Pebble's own HTTPS
	if err != nil {
		t.Fatal(err)
	}
	certPath, keyPath := filepath.Join(dir, "pebble-cert.pem"), filepath.Join(dir, "pebble-key.pem")
	if err := certs.WritePEM(https, certPath, keyPath); err != nil {
		t.Fatal(err)
	}
	// All at once, distinct: one at a time, the kernel may hand the same free port back twice
	// (it did: the directory and the management interface on one port, a CI run failed).
	ports := FreePorts(t, 6, o.HTTPPort, o.TLSPort)
	if o.HTTPPort == 0 {
		o.HTTPPort = ports[4]
	}
	if o.TLSPort == 0 {
		o.TLSPort = ports[5]
	}
	dnsAddr := "127.0.0.1:" + strconv.Itoa(ports[0])
	ca := &CA{
		t:         t,
		Directory: "https://127.0.0.1:" + strconv.Itoa(ports[1]) + "/dir",
		RootsFile: certPath,
		mgmt:      "127.0.0.1:" + strconv.Itoa(ports[2]),
		dnsMgmt:   "127.0.0.1:" + strconv.Itoa(ports[3]),
	}
	ca.dns = startProcess(t, "pebble-challtestsrv", exec.Command(dnsBin,
		"-dnsserver", dnsAddr, "-management", ca.dnsMgmt,
		"-defaultIPv4", "127.0.0.1", "-defaultIPv6", "",
		"-http01", "", "-https01", "", "-doh", "", "-tlsalpn01", ""))
	waitTCP(t, ca.dns, ca.dnsMgmt, dnsAddr)

	conf := fmt.Sprintf(`{"pebble": {
  "listenAddress": %q, "managementListenAddress": %q,
  "certificate": %q, "privateKey": %q,
  "httpPort": %d, "tlsPort": %d,
  "ocspResponderURL": "", "externalAccountBindingRequired": false,
  "keyAlgorithm": "ecdsa"
}}`, strings.TrimSuffix(strings.TrimPrefix(ca.Directory, "https://"), "/dir"), ca.mgmt, certPath, keyPath, o.HTTPPort, o.TLSPort)
	confPath := filepath.Join(dir, "pebble-config.json")
	if err := os.WriteFile(confPath, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(pebbleBin, "-config", confPath, "-dnsserver", dnsAddr)
	cmd.Env = append(os.Environ(),
		"PEBBLE_VA_NOSLEEP=1",      // validate at once
		"PEBBLE_WFE_NONCEREJECT=0", // no random bad nonces
		"PEBBLE_AUTHZREUSE=0",      // every order is validated again (renewals too)
	)
	ca.pebble = startProcess(t, "pebble", cmd)

	pool := x509.NewCertPool()
	pool.AddCert(https.Leaf)
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}, Timeout: 5 * time.Second}
	defer hc.CloseIdleConnections()
	deadline := time.Now().Add(30 * time.Second)
	for {
		ca.rootPEM, err = get(hc, "https://"+ca.mgmt+"/roots/0")
		if err == nil {
			break
		}
		if time.Now().After(deadline) || ca.pebble.exited() {
			t.Fatalf("pebble did not start: %v\n%s", err, ca.pebble.out.String())
		}
		time.Sleep(20 * time.Millisecond) // polling for a process to come up
	}
	ca.roots = x509.NewCertPool()
	if !ca.roots.AppendCertsFromPEM(ca.rootPEM) {
		t.Fatalf("pebble's root is not PEM: %q", ca.rootPEM)
	}
	return ca
}

// Roots trusts the certificates the CA issues (its root, from the management API).
func (ca *CA) Roots() *x509.CertPool { return ca.roots }

// RootPEM is the CA's root certificate in PEM (to install as a trusted root elsewhere).
func (ca *CA) RootPEM() []byte { return bytes.Clone(ca.rootPEM) }

// Stop stops Pebble (its DNS server stays until the test ends): the CA becomes unreachable.
func (ca *CA) Stop() { ca.pebble.stop() }

// ServFail makes the CA's DNS answer SERVFAIL for host: the name cannot be resolved, so
// validation fails.
func (ca *CA) ServFail(host string) {
	ca.t.Helper()
	resp, err := http.Post("http://"+ca.dnsMgmt+"/set-servfail", "application/json", strings.NewReader(fmt.Sprintf(`{"host":%q}`, host)))
	if err != nil {
		ca.t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		ca.t.Fatalf("set-servfail %s: %s", host, resp.Status)
	}
}

// FreePort returns a TCP port free on 127.0.0.1 now, for a program that takes its ports from
// its configuration (another program may take it in between: rare).
func FreePort(t testing.TB) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// FreePorts returns n distinct TCP ports free on 127.0.0.1 now, none of them in taken (ports
// already given out, maybe free again): each is held until all are picked, so none comes
// back twice.
func FreePorts(t testing.TB, n int, taken ...int) []int {
	t.Helper()
	ports := make([]int, 0, n)
	for tries := 0; len(ports) < n; tries++ {
		if tries > 10*n {
			t.Fatalf("no %d free ports apart from %v", n, taken)
		}
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		if p := ln.Addr().(*net.TCPAddr).Port; !slices.Contains(taken, p) {
			ports = append(ports, p)
		}
	}
	return ports
}

func get(hc *http.Client, url string) ([]byte, error) {
	resp, err := hc.Get(url)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err == nil && resp.StatusCode != http.StatusOK {
		err = fmt.Errorf("%s: %s", url, resp.Status)
	}
	return b, err
}

var (
	binOnce              sync.Once
	pebbleBin, dnsBin    string
	binErr               error
	buildTook            time.Duration
	errGoCommandNotFound = fmt.Errorf("the go command is not on PATH")
)

// binaries returns the paths of the pebble and pebble-challtestsrv tools, built into the Go
// build cache if they are not there yet (`go tool -n`).
func binaries(t testing.TB) (string, string) {
	t.Helper()
	binOnce.Do(func() {
		gocmd, err := exec.LookPath("go")
		if err != nil {
			binErr = errGoCommandNotFound
			return
		}
		start := time.Now()
		for _, p := range []struct {
			tool string
			path *string
		}{{"pebble", &pebbleBin}, {"pebble-challtestsrv", &dnsBin}} {
			out, err := exec.Command(gocmd, "tool", "-n", p.tool).Output()
			if err != nil {
				var stderr []byte
				if ee, ok := err.(*exec.ExitError); ok {
					stderr = ee.Stderr
				}
				binErr = fmt.Errorf("go tool -n %s: %v: %s", p.tool, err, stderr)
				return
			}
			*p.path = strings.TrimSpace(string(out))
		}
		buildTook = time.Since(start)
	})
	if binErr != nil {
		testenv.Missing(t, "Pebble (the ACME test CA): "+binErr.Error(), "run scripts/install-test-deps.sh (it builds the go.mod tools pebble and pebble-challtestsrv)")
	}
	if buildTook > 5*time.Second {
		t.Logf("pebbletest: building pebble and pebble-challtestsrv took %v (once per build cache)", buildTook.Round(100*time.Millisecond))
	}
	return pebbleBin, dnsBin
}

// process is a program of the test, stopped at cleanup; what it printed is in the test's log
// when the test fails.
type process struct {
	name string
	cmd  *exec.Cmd
	out  *testenv.Buffer
	done chan struct{}
	once sync.Once
}

func startProcess(t testing.TB, name string, cmd *exec.Cmd) *process {
	t.Helper()
	p := &process{name: name, cmd: cmd, out: new(testenv.Buffer), done: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = p.out, p.out
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL} // never outlive the test binary
	if err := cmd.Start(); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	go func() { _ = cmd.Wait(); close(p.done) }() // ends when the process does (stop)
	t.Cleanup(func() {
		p.stop()
		if t.Failed() {
			t.Logf("%s output:\n%s", name, p.out.String())
		}
	})
	return p
}

func (p *process) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// stop ends the process and waits for it.
func (p *process) stop() {
	p.once.Do(func() {
		_ = p.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-p.done:
		case <-time.After(5 * time.Second):
			_ = p.cmd.Process.Kill()
			<-p.done
		}
	})
}

// waitTCP waits until every address accepts connections.
func waitTCP(t testing.TB, p *process, addrs ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, a := range addrs {
		for {
			c, err := (&net.Dialer{}).DialContext(ctx, "tcp", a)
			if err == nil {
				c.Close()
				break
			}
			if ctx.Err() != nil || p.exited() {
				t.Fatalf("%s does not answer on %s: %v\n%s", p.name, a, err, p.out.String())
			}
			time.Sleep(20 * time.Millisecond) // polling for a process to come up
		}
	}
}
