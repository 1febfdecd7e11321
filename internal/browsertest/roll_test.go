package browsertest

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	natsserver "github.com/nats-io/nats-server/v2/server"

	"github.com/switchboard-rtc/switchboard/internal/testserver"
)

// fleet is a set of real `switchboard serve` processes behind a load balancer, as a
// deployment runs them: one node, or a cluster over an embedded NATS server.
type fleet struct {
	t     *testing.T
	ctx   context.Context
	bin   string
	nodes []*fleetNode
	lb    *testserver.Balancer
}

// fleetNode is one node: its address stays across restarts.
type fleetNode struct {
	name string
	addr string
	args []string
	run  *cliRun
}

// freeAddr returns a loopback address with a port nothing listens on now.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// startNATSJS runs an embedded NATS server with JetStream on loopback until the test ends
// and returns its URL.
func startNATSJS(t *testing.T) string {
	t.Helper()
	s, err := natsserver.NewServer(&natsserver.Options{Host: "127.0.0.1", Port: natsserver.RANDOM_PORT,
		NoLog: true, NoSigs: true, JetStream: true, StoreDir: t.TempDir()})
	if err != nil {
		t.Fatalf("nats server: %v", err)
	}
	go s.Start()
	if !s.ReadyForConnections(10 * time.Second) {
		t.Fatal("nats server not ready")
	}
	t.Cleanup(func() {
		s.Shutdown()
		s.WaitForShutdown()
	})
	return s.ClientURL()
}

// newFleet starts n nodes (a cluster when n > 1) sharing a resume secret, each with extra
// flags, behind a balancer.
func newFleet(t *testing.T, ctx context.Context, n int, extra ...string) *fleet {
	t.Helper()
	f := &fleet{t: t, ctx: ctx, bin: buildCLI(t)}
	secret := make([]byte, 32)
	_, _ = rand.Read(secret)
	common := []string{"serve", "--turn=false", "--log-level", "debug", "--resume-secret", base64.RawURLEncoding.EncodeToString(secret),
		"--shutdown-timeout", "15s"} // a draining node exits once its presences are taken over
	if n > 1 {
		common = append(common, "--nats", startNATSJS(t))
	}
	var addrs []string
	for i := range n {
		nd := &fleetNode{name: fmt.Sprintf("node%d", i+1), addr: freeAddr(t)}
		nd.args = append(append(append([]string{}, common...), "--listen", nd.addr), extra...)
		if n == 1 {
			nd.args = append(nd.args, "--state-file", filepath.Join(t.TempDir(), "state.json"))
		}
		f.nodes = append(f.nodes, nd)
		addrs = append(addrs, nd.addr)
	}
	for _, nd := range f.nodes {
		f.start(nd)
	}
	f.lb = testserver.NewBalancer(t, addrs...)
	// While a lone node restarts, new connections wait for it (a load balancer with retries)
	// rather than fail: a browser logs a refused WebSocket as a console error.
	f.lb.TryFor(20 * time.Second)
	return f
}

// base returns the balancer's base URL.
func (f *fleet) base() string { return "http://" + f.lb.Addr() }

// start runs nd and waits for it to be ready.
func (f *fleet) start(nd *fleetNode) {
	f.t.Helper()
	nd.run = startCLI(f.t, f.ctx, f.bin, nd.args...)
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get("http://" + nd.addr + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		if time.Now().After(deadline) {
			f.t.Fatalf("%s not ready within 30 s (last: %v)", nd.name, err)
		}
		select {
		case err := <-nd.run.done:
			nd.run.exited = true
			f.t.Fatalf("%s exited before it was ready: %v\n%s", nd.name, err, nd.run.out.String())
		case <-time.After(50 * time.Millisecond): // polling /readyz: the server has no other signal
		}
	}
}

// restart stops nd with SIGTERM (it must exit cleanly) and starts it again.
func (f *fleet) restart(nd *fleetNode) {
	f.t.Helper()
	if err := nd.run.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		f.t.Fatalf("SIGTERM %s: %v", nd.name, err)
	}
	if err := nd.run.wait(f.t, 30*time.Second); err != nil {
		f.t.Fatalf("%s exited with %v after SIGTERM:\n%s", nd.name, err, nd.run.out.String())
	}
	f.logTail(nd)
	f.start(nd)
}

// kill ends nd with SIGKILL.
func (f *fleet) kill(nd *fleetNode) {
	f.t.Helper()
	_ = nd.run.cmd.Process.Signal(syscall.SIGKILL)
	_ = nd.run.wait(f.t, 10*time.Second)
}

// logTail logs the last lines of nd's output (once it exited).
func (f *fleet) logTail(nd *fleetNode) {
	var lines, drops []string
	for _, l := range strings.Split(strings.TrimSpace(nd.run.out.String()), "\n") {
		switch {
		case strings.Contains(l, "dropped"):
			drops = append(drops, l)
		case !strings.Contains(l, "level=DEBUG"):
			lines = append(lines, l)
		}
	}
	if len(drops) > 0 {
		f.t.Logf("%s dropped relays:\n%s", nd.name, strings.Join(drops, "\n"))
	}
	if len(lines) > 8 {
		lines = lines[len(lines)-8:]
	}
	f.t.Logf("%s's last log lines:\n%s", nd.name, strings.Join(lines, "\n"))
}

// rollScenario runs calls of Go SDK pairs and a call of two web-app pages through f while
// disrupt acts on its nodes, then checks that nothing of any call was lost: no data channel
// closed, no peer-left seen anywhere, no signaling message lost or duplicated, every peer
// kept its id, and the pages rode it out (rideOut).
func rollScenario(t *testing.T, f *fleet, browser context.Context, calls int, disrupt func()) {
	t.Helper()
	var cs []*call
	for i := range calls {
		cs = append(cs, startCall(t, f.base(), fmt.Sprintf("call-%d", i), make(chan struct{}, 1)))
	}
	a := openApp(t, browser, "A", f.base()+"/r/app-call?name=A", 800, 600)
	b := openApp(t, browser, "B", f.base()+"/r/app-call?name=B", 800, 600)
	stop := make(chan struct{})
	var senders sync.WaitGroup
	for _, c := range cs {
		c.run(stop, &senders)
	}
	rideOut(t, a, b, disrupt)
	close(stop)
	senders.Wait()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var faults []string
	total := map[string]int{}
	for _, c := range cs {
		fs, sent := c.check(ctx)
		faults = append(faults, fs...)
		for k, v := range sent {
			total[k] += v
		}
	}
	t.Logf("%d calls sent %v; %d faults", len(cs), total, len(faults))
	if len(faults) > 0 {
		for _, nd := range f.nodes { // what each node running now logged
			if !nd.run.exited {
				_ = nd.run.cmd.Process.Signal(syscall.SIGTERM)
				_ = nd.run.wait(t, 30*time.Second)
				f.logTail(nd)
			}
		}
		t.Fatalf("faults:\n%s", strings.Join(faults, "\n"))
	}
}

// A rolling restart of a 3-node cluster, one node at a time (SIGTERM, start again), during
// 20 calls of Go SDK pairs and a call of 2 Chromium pages: every call goes on untouched.
func TestRollingRestartKeepsCalls(t *testing.T) {
	requireChromium(t)
	browser := startChromium(t, 6*time.Minute)
	f := newFleet(t, browser, 3)
	rollScenario(t, f, browser, 20, func() {
		for _, nd := range f.nodes {
			f.restart(nd)
		}
	})
}

// The same with one node (its state in --state-file) restarted.
func TestRestartKeepsCalls(t *testing.T) {
	requireChromium(t)
	browser := startChromium(t, 4*time.Minute)
	f := newFleet(t, browser, 1)
	rollScenario(t, f, browser, 5, func() { f.restart(f.nodes[0]) })
}

// kill -9 of one node of three during calls of Go SDK pairs: its peers resume on the others
// within the grace with their ids, nobody sees a peer-left, no data channel closes. Relays
// the dead node had taken but not yet written die with it: they are counted, not failed on.
func TestNodeKilledCallsResume(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	f := newFleet(t, ctx, 3)
	var cs []*call
	changed := make(chan struct{}, 1)
	for i := range 6 {
		cs = append(cs, startCall(t, f.base(), fmt.Sprintf("kill-%d", i), changed))
	}
	stop := make(chan struct{})
	var senders sync.WaitGroup
	for _, c := range cs {
		c.run(stop, &senders)
	}
	victim := f.nodes[1]
	f.kill(victim)
	// Every peer the victim held comes back elsewhere: wait until some end lost the server,
	// then until none is reconnecting.
	wait := func(what string, done func() bool) {
		t.Helper()
		timeout := time.After(30 * time.Second)
		for !done() {
			select {
			case <-changed:
			case <-timeout:
				t.Fatalf("%s: not within 30 s of the kill", what)
			}
		}
	}
	ends := func(pred func(*callEnd) bool) bool {
		for _, c := range cs {
			if pred(c.a) || pred(c.b) {
				return true
			}
		}
		return false
	}
	wait("a peer of the killed node reconnecting", func() bool { return ends((*callEnd).lostServer) })
	wait("every peer back", func() bool { return !ends((*callEnd).isDown) })
	// The calls go on a moment on the surviving nodes before the count.
	select {
	case <-time.After(time.Second):
	case <-ctx.Done():
	}
	close(stop)
	senders.Wait()
	cctx, ccancel := context.WithTimeout(ctx, 20*time.Second)
	defer ccancel()
	var faults, lost []string
	total := map[string]int{}
	for _, c := range cs {
		fs, sent := c.check(cctx)
		for k, v := range sent {
			total[k] += v
		}
		for _, f := range fs {
			if strings.Contains(f, "lost") || strings.Contains(f, "got up to") {
				lost = append(lost, f)
			} else {
				faults = append(faults, f)
			}
		}
	}
	t.Logf("%d calls sent %v; relays lost with the killed node: %d streams affected %v; %d faults", len(cs), total, len(lost), lost, len(faults))
	if len(faults) > 0 {
		t.Fatalf("faults:\n%s", strings.Join(faults, "\n"))
	}
}
