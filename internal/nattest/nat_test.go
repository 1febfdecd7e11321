package nattest

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pion/webrtc/v4"

	"github.com/switchboard-rtc/switchboard/internal/testenv"
	"github.com/switchboard-rtc/switchboard/sdk"
)

// The peer processes are this test binary run again inside a namespace with these variables.
const (
	envPeer   = "SWITCHBOARD_NATTEST_PEER" // "offer" or "echo"
	envServer = "SWITCHBOARD_NATTEST_SERVER"
	envRoom   = "SWITCHBOARD_NATTEST_ROOM"
)

// The server's address in pub for plain HTTP (nattls_test.go has the TLS one).
const (
	plainListen = "203.0.113.1:8080"
	plainURL    = "http://" + plainListen
)

func TestMain(m *testing.M) {
	if role := os.Getenv(envPeer); role != "" {
		if err := runPeer(role, os.Getenv(envServer), os.Getenv(envRoom)); err != nil {
			fmt.Fprintln(os.Stderr, "nattest peer:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// pairReport is what a peer process prints: the selected ICE candidate pair.
type pairReport struct {
	Role       string `json:"role"`
	Local      string `json:"local"`
	LocalAddr  string `json:"localAddr"`
	Remote     string `json:"remote"`
	RemoteAddr string `json:"remoteAddr"`
	Connect    string `json:"connect"`
	// LocalRelay is how the local candidate reaches its relay (udp, tcp, tls), from the stats.
	LocalRelay string `json:"localRelay,omitempty"`
	// Healthz is the status of GET /healthz on the server, made during the call by "offer".
	Healthz int `json:"healthz,omitempty"`
}

// runPeer joins room; the "offer" peer opens a channel, sends a ping and waits for the echo;
// the "echo" peer answers and stays until the other leaves. Both print their selected pair.
func runPeer(role, server, room string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 40*time.Second)
	defer cancel()
	start := time.Now()
	peerc := make(chan *sdk.Peer, 1)
	done := make(chan struct{})
	var once sync.Once
	opts := sdk.Options{Name: role, OnPeer: func(p *sdk.Peer) {
		select {
		case peerc <- p:
		default:
		}
		if role == "echo" {
			p.OnDataChannel(func(dc *webrtc.DataChannel) {
				dc.OnMessage(func(m webrtc.DataChannelMessage) {
					_ = dc.SendText("echo:" + string(m.Data))
					once.Do(func() { close(done) })
				})
			})
			return
		}
		dc, err := p.CreateDataChannel("nat", nil)
		if err != nil {
			return
		}
		dc.OnOpen(func() { _ = dc.SendText("ping") })
		dc.OnMessage(func(m webrtc.DataChannelMessage) {
			if string(m.Data) == "echo:ping" {
				once.Do(func() { close(done) })
			}
		})
	}}
	var c *sdk.Client
	var err error
	for { // the server may still be starting
		if c, err = sdk.Dial(ctx, server, room, &opts); err == nil || ctx.Err() != nil {
			break
		}
		t := time.NewTimer(100 * time.Millisecond)
		select {
		case <-t.C:
		case <-ctx.Done():
		}
	}
	if err != nil {
		return fmt.Errorf("dial: %w", err)
	}
	defer closeWithin(c, time.Second)
	var p *sdk.Peer
	select {
	case p = <-peerc:
	case <-ctx.Done():
		return errors.New("no remote peer")
	}
	select {
	case <-done:
	case <-ctx.Done():
		return fmt.Errorf("no data exchanged (connection state %s)", p.PeerConnection().ConnectionState())
	}
	pair, err := p.PeerConnection().SCTP().Transport().ICETransport().GetSelectedCandidatePair()
	if err != nil || pair == nil {
		return fmt.Errorf("selected pair: %v", err)
	}
	rep := pairReport{
		Role: role, Local: pair.Local.Typ.String(), LocalAddr: fmt.Sprintf("%s:%d", pair.Local.Address, pair.Local.Port),
		Remote: pair.Remote.Typ.String(), RemoteAddr: fmt.Sprintf("%s:%d", pair.Remote.Address, pair.Remote.Port),
		Connect:    time.Since(start).Round(time.Millisecond).String(),
		LocalRelay: localRelay(p.PeerConnection()),
	}
	if role == "offer" {
		rep.Healthz = healthz(ctx, server)
	}
	b, _ := json.Marshal(rep)
	fmt.Println(string(b))
	if role == "echo" {
		select { // stay until the offerer has its echo and leaves
		case <-p.Closed():
		case <-ctx.Done():
		}
	}
	return nil
}

// closeWithin closes c, or gives up after d: Pion's ICE agent waits for its relay gathering
// to end, and a TURN-over-TCP dial to a server whose packets a firewall drops (TCP 3478 in
// only443) goes on for the kernel's connect timeout, about two minutes. The leave is sent
// first, so the other peer learns at once that this one is gone.
func closeWithin(c *sdk.Client, d time.Duration) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = c.Close()
	}()
	select {
	case <-done:
	case <-time.After(d):
		fmt.Fprintln(os.Stderr, "nattest peer: Close did not finish within", d)
	}
}

// requireNetns skips (fails under CI=true) unless namespaces, veth and a NAT tool work here.
func requireNetns(t *testing.T) (nat string) {
	t.Helper()
	fail := func(why string) {
		testenv.Missing(t, "the real-NAT test cannot run: "+why, "it needs root, iproute2 and nftables (run scripts/install-test-deps.sh as root)")
	}
	if os.Geteuid() != 0 {
		fail("not root")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		fail("no ip command")
	}
	if _, err := exec.LookPath("nft"); err == nil {
		nat = "nft"
	} else if _, err := exec.LookPath("iptables"); err == nil {
		nat = "iptables"
	} else {
		fail("neither nft nor iptables")
	}
	probe := fmt.Sprintf("sbprobe%d", os.Getpid())
	if out, err := exec.Command("ip", "netns", "add", probe).CombinedOutput(); err != nil {
		fail(fmt.Sprintf("ip netns add: %v: %s", err, out))
	}
	defer exec.Command("ip", "netns", "del", probe).Run() //nolint:errcheck // best effort
	if out, err := exec.Command("ip", "-n", probe, "link", "add", "p0", "type", "veth", "peer", "name", "p1").CombinedOutput(); err != nil {
		fail(fmt.Sprintf("veth: %v: %s", err, out))
	}
	return nat
}

// topo is the namespaces of one test: pub (server, the "internet" router), nat1/nat2 (NAT
// routers) and peer1/peer2 (hosts behind them).
type topo struct {
	t    *testing.T
	id   string
	nat  string
	list []string
	// How peers reach the server: its URL, and what the peer processes get in their
	// environment besides (the CA file they trust).
	url string
	env []string
}

func (tp *topo) ns(name string) string { return "sb" + tp.id + name }

func (tp *topo) run(ns string, args ...string) {
	tp.t.Helper()
	full := append([]string{"netns", "exec", tp.ns(ns)}, args...)
	if out, err := exec.Command("ip", full...).CombinedOutput(); err != nil {
		tp.t.Fatalf("ip %s: %v: %s", strings.Join(full, " "), err, out)
	}
}

func (tp *topo) addNS(names ...string) {
	tp.t.Helper()
	for _, n := range names {
		if out, err := exec.Command("ip", "netns", "add", tp.ns(n)).CombinedOutput(); err != nil {
			tp.t.Fatalf("ip netns add: %v: %s", err, out)
		}
		tp.list = append(tp.list, tp.ns(n))
		tp.run(n, "ip", "link", "set", "lo", "up")
	}
}

// link connects namespaces a and b with a veth pair and addresses.
func (tp *topo) link(a, aAddr, b, bAddr string) {
	tp.t.Helper()
	an, bn := a+"-"+b, b+"-"+a
	if out, err := exec.Command("ip", "link", "add", an, "netns", tp.ns(a), "type", "veth", "peer", "name", bn, "netns", tp.ns(b)).CombinedOutput(); err != nil {
		tp.t.Fatalf("veth %s: %v: %s", an, err, out)
	}
	tp.run(a, "ip", "addr", "add", aAddr, "dev", an)
	tp.run(a, "ip", "link", "set", an, "up")
	tp.run(b, "ip", "addr", "add", bAddr, "dev", bn)
	tp.run(b, "ip", "link", "set", bn, "up")
}

// masquerade makes ns a NAT router for traffic leaving on wan; random picks a random source
// port for every new flow (symmetric-like NAT) instead of keeping the port.
func (tp *topo) masquerade(ns, wan string, random bool) {
	tp.t.Helper()
	tp.run(ns, "sh", "-c", "echo 1 > /proc/sys/net/ipv4/ip_forward")
	// Like a home router, drop unsolicited packets to the router itself. Without this, a
	// peer's first hole-punching packet is delivered locally, its conntrack entry is confirmed,
	// and the other side's outgoing flow then clashes with it and gets a new port: plain
	// masquerade would behave like a symmetric NAT.
	if tp.nat == "nft" {
		tp.run(ns, "nft", "add table inet filter")
		tp.run(ns, "nft", "add chain inet filter input { type filter hook input priority 0 ; policy accept ; }")
		tp.run(ns, "nft", "add rule inet filter input iifname "+wan+" ct state new drop")
		tp.run(ns, "nft", "add table ip nat")
		tp.run(ns, "nft", "add chain ip nat post { type nat hook postrouting priority 100 ; }")
		rule := "add rule ip nat post oifname " + wan + " masquerade"
		if random {
			rule += " fully-random"
		}
		tp.run(ns, "nft", rule)
		return
	}
	tp.run(ns, "iptables", "-A", "INPUT", "-i", wan, "-m", "conntrack", "--ctstate", "NEW", "-j", "DROP")
	args := []string{"iptables", "-t", "nat", "-A", "POSTROUTING", "-o", wan, "-j", "MASQUERADE"}
	if random {
		args = append(args, "--random-fully")
	}
	tp.run(ns, args...)
}

// newTopo builds: peerN (10.0.N.2) → natN (10.0.N.1 | 203.0.113.{2,6}) → pub (203.0.113.{1,5}).
// 203.0.113.0/24 (TEST-NET-3) plays the internet; the server runs in pub on 203.0.113.1.
func newTopo(t *testing.T, nat string, random bool) *topo {
	t.Helper()
	tp := &topo{t: t, id: fmt.Sprintf("%d%d", os.Getpid()%100000, topoSeq.Add(1)), nat: nat, url: plainURL}
	t.Cleanup(func() {
		for _, n := range tp.list {
			_ = exec.Command("ip", "netns", "del", n).Run() // removes its veths too
		}
	})
	tp.addNS("pub", "nat1", "nat2", "peer1", "peer2")
	tp.link("pub", "203.0.113.1/30", "nat1", "203.0.113.2/30")
	tp.link("pub", "203.0.113.5/30", "nat2", "203.0.113.6/30")
	tp.run("pub", "sh", "-c", "echo 1 > /proc/sys/net/ipv4/ip_forward")
	for i, n := range []string{"1", "2"} {
		tp.link("nat"+n, "10.0."+n+".1/24", "peer"+n, "10.0."+n+".2/24")
		tp.run("peer"+n, "ip", "route", "add", "default", "via", "10.0."+n+".1")
		tp.run("nat"+n, "ip", "route", "add", "default", "via", []string{"203.0.113.1", "203.0.113.5"}[i])
		tp.masquerade("nat"+n, "nat"+n+"-pub", random)
	}
	return tp
}

// topoSeq tells apart the namespaces of the topologies of one test binary.
var topoSeq atomic.Int32

// blockUDP makes ns drop every UDP packet it would forward from lan: a network where only TCP
// goes out.
func (tp *topo) blockUDP(ns, lan string) {
	tp.t.Helper()
	if tp.nat == "nft" {
		tp.run(ns, "nft", "add table inet noudp")
		tp.run(ns, "nft", "add chain inet noudp out { type filter hook forward priority 0 ; policy accept ; }")
		tp.run(ns, "nft", "add rule inet noudp out iifname "+lan+" meta l4proto udp drop")
		return
	}
	tp.run(ns, "iptables", "-A", "FORWARD", "-i", lan, "-p", "udp", "-j", "DROP")
}

// buildSwitchboard builds the real binary once per test binary run.
func buildSwitchboard(t *testing.T) string {
	t.Helper()
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		t.Fatalf("go env GOMOD: %v", err)
	}
	bin := filepath.Join(t.TempDir(), "switchboard")
	cmd := exec.Command("go", "build", "-o", bin, "./cmd/switchboard")
	cmd.Dir = filepath.Dir(strings.TrimSpace(string(out)))
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// startServer runs `switchboard serve` in pub and returns when its TURN server is up; flags
// replace the plain HTTP listener (--listen and what goes with it).
func (tp *topo) startServer(bin string, flags ...string) {
	t := tp.t
	t.Helper()
	if len(flags) == 0 {
		flags = []string{"--listen", plainListen}
	}
	ctx, cancel := context.WithCancel(context.Background())
	args := append([]string{"netns", "exec", tp.ns("pub"), bin, "serve", "--log-format", "json",
		// A specific address: pub has several, and a socket on 0.0.0.0 would answer
		// peer2 from 203.0.113.5, which its NAT drops (docs/turn.md, multi-homed hosts).
		"--turn-listen", "203.0.113.1:3478", "--turn-public-ip", "203.0.113.1",
		"--turn-allow-peer", "203.0.113.0/24"}, // TEST-NET-3 plays the internet here
		flags...)
	cmd := exec.CommandContext(ctx, "ip", args...)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	ready := make(chan struct{})
	var logMu sync.Mutex
	var logs []string
	go func() {
		sc := bufio.NewScanner(stderr)
		var once sync.Once
		for sc.Scan() {
			logMu.Lock()
			logs = append(logs, sc.Text())
			logMu.Unlock()
			if strings.Contains(sc.Text(), "switchboard serving") {
				once.Do(func() { close(ready) })
			}
		}
	}()
	t.Cleanup(func() {
		cancel()
		_ = cmd.Wait()
		if t.Failed() {
			logMu.Lock()
			t.Logf("server log:\n%s", strings.Join(logs, "\n"))
			logMu.Unlock()
		}
	})
	select {
	case <-ready:
	case <-time.After(15 * time.Second):
		t.Fatal("server did not start")
	}
}

// runPeers runs both peer processes and returns their reports.
func (tp *topo) runPeers() map[string]pairReport {
	t := tp.t
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 45*time.Second)
	defer cancel()
	type result struct {
		role string
		out  []byte
		err  error
	}
	results := make(chan result, 2)
	for ns, role := range map[string]string{"peer1": "offer", "peer2": "echo"} {
		cmd := exec.CommandContext(ctx, "ip", "netns", "exec", tp.ns(ns), exe, "-test.run=^$")
		cmd.Env = append(append(os.Environ(), tp.env...), envPeer+"="+role, envServer+"="+tp.url, envRoom+"=nat-"+tp.id)
		var stderr strings.Builder
		cmd.Stderr = &stderr
		go func() {
			out, err := cmd.Output()
			if err != nil {
				err = fmt.Errorf("%w: %s", err, stderr.String())
			}
			results <- result{role, out, err}
		}()
	}
	reports := map[string]pairReport{}
	for range 2 {
		r := <-results
		if r.err != nil {
			t.Fatalf("peer %s: %v", r.role, r.err)
		}
		var rep pairReport
		for _, line := range strings.Split(string(r.out), "\n") {
			if strings.HasPrefix(line, "{") {
				if err := json.Unmarshal([]byte(line), &rep); err != nil {
					t.Fatalf("peer %s output %q: %v", r.role, line, err)
				}
			}
		}
		if rep.Role == "" {
			t.Fatalf("peer %s printed no pair: %q", r.role, r.out)
		}
		reports[r.role] = rep
		t.Logf("%-5s selected pair: local %-5s %-21s remote %-5s %-21s (data after %s; relay over %q)", rep.Role, rep.Local, rep.LocalAddr, rep.Remote, rep.RemoteAddr, rep.Connect, rep.LocalRelay)
	}
	return reports
}

// TestRealNAT puts two peers behind separate NATs in network namespaces with the server on a
// third. Behind port-preserving masquerade they connect directly through server-reflexive
// (or peer-reflexive) candidates; behind port-randomizing masquerade on both sides, where
// hole punching cannot work, they connect only through the embedded TURN relay; with UDP
// blocked behind one NAT, that peer connects through TURN over TCP; with only TCP 443 open
// behind one NAT, through TURN over TLS on the HTTPS port (nattls_test.go).
func TestRealNAT(t *testing.T) {
	nat := requireNetns(t)
	bin := buildSwitchboard(t)
	t.Run("masquerade", func(t *testing.T) {
		tp := newTopo(t, nat, false)
		tp.startServer(bin)
		for role, r := range tp.runPeers() {
			if r.Local == "relay" || r.Remote == "relay" {
				t.Errorf("%s: relayed behind port-preserving NATs, want a direct pair", role)
			}
			if r.Remote != "srflx" && r.Remote != "prflx" {
				t.Errorf("%s: remote candidate %s, want srflx or prflx (the other NAT's public side)", role, r.Remote)
			}
		}
	})
	t.Run("random-port masquerade", func(t *testing.T) {
		tp := newTopo(t, nat, true)
		tp.startServer(bin)
		for role, r := range tp.runPeers() {
			if r.Local != "relay" && r.Remote != "relay" {
				t.Errorf("%s: %s ↔ %s, want a relay candidate in the pair", role, r.Local, r.Remote)
			}
		}
	})
	t.Run("UDP blocked behind NAT 1", func(t *testing.T) {
		// Peer 1 reaches nothing over UDP: its only way out is TURN over TCP.
		tp := newTopo(t, nat, false)
		tp.blockUDP("nat1", "nat1-peer1")
		tp.startServer(bin)
		reports := tp.runPeers()
		if r := reports["offer"]; r.Local != "relay" {
			t.Errorf("peer 1 (UDP blocked): local %s, want its TURN-over-TCP relay", r.Local)
		}
	})
	t.Run("only TCP 443 behind NAT 1", func(t *testing.T) { only443(t, nat, bin) })
}
