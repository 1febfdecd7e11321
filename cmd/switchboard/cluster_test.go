package main

import (
	"bufio"
	"context"
	"encoding/json"
	"net/http"
	"os/exec"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/coder/websocket"
	natsserver "github.com/nats-io/nats-server/v2/server"
)

// startNode runs the binary as a cluster node and returns its address once it is ready.
func startNode(t *testing.T, bin, natsURL string) (*exec.Cmd, string) {
	t.Helper()
	cmd := exec.Command(bin, "serve", "--listen", "127.0.0.1:0", "--turn-listen", "127.0.0.1:0", "--log-format", "json",
		"--nats", natsURL, "--nats-heartbeat", "100ms", "--nats-node-timeout", "500ms", "--resume-grace", "500ms")
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	addrc := make(chan string, 1)
	go func() {
		re := regexp.MustCompile(`"addr":"([0-9.]+:[0-9]+)"`)
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			if m := re.FindStringSubmatch(sc.Text()); m != nil && strings.Contains(sc.Text(), "switchboard serving") {
				select {
				case addrc <- m[1]:
				default:
				}
			}
		}
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	var addr string
	select {
	case addr = <-addrc:
	case <-time.After(10 * time.Second):
		t.Fatal("node did not log its address")
	}
	deadline := time.Now().Add(10 * time.Second)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		resp, err := http.Get("http://" + addr + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return cmd, addr
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("node %s not ready", addr)
		}
		<-tick.C
	}
}

// TestClusterNodeSIGKILL runs two real nodes on an embedded NATS, kills one with SIGKILL and
// checks the peer on the other node is told within the node timeout.
func TestClusterNodeSIGKILL(t *testing.T) {
	ns, err := natsserver.NewServer(&natsserver.Options{Host: "127.0.0.1", Port: natsserver.RANDOM_PORT, NoLog: true, NoSigs: true})
	if err != nil {
		t.Fatal(err)
	}
	go ns.Start()
	if !ns.ReadyForConnections(10 * time.Second) {
		t.Fatal("nats not ready")
	}
	defer func() {
		ns.Shutdown()
		ns.WaitForShutdown()
	}()
	bin := cliBinary(t)
	_, addr1 := startNode(t, bin, ns.ClientURL())
	cmd2, addr2 := startNode(t, bin, ns.ClientURL())

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	type frame struct {
		Type   string          `json:"type"`
		Peer   json.RawMessage `json:"peer"`
		Peers  []struct{ ID string }
		Reason string `json:"reason"`
	}
	joinOn := func(addr string) (*websocket.Conn, frame) {
		c, _, err := websocket.Dial(ctx, "ws://"+addr+"/ws", nil)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.CloseNow() })
		if err := c.Write(ctx, websocket.MessageText, []byte(`{"type":"join","room":"r"}`)); err != nil {
			t.Fatal(err)
		}
		var f frame
		_, b, err := c.Read(ctx)
		if err == nil {
			err = json.Unmarshal(b, &f)
		}
		if err != nil || f.Type != "welcome" {
			t.Fatalf("welcome: %s %v", b, err)
		}
		return c, f
	}
	a, _ := joinOn(addr1)
	_, wb := joinOn(addr2)
	if len(wb.Peers) != 1 {
		t.Fatalf("welcome on node 2 lists %d peers, want node 1's", len(wb.Peers))
	}
	var bID string
	_ = json.Unmarshal(wb.Peer, &bID)

	read := func() frame {
		_, b, err := a.Read(ctx)
		if err != nil {
			t.Fatalf("read: %v", err)
		}
		var f frame
		if err := json.Unmarshal(b, &f); err != nil {
			t.Fatal(err)
		}
		return f
	}
	if f := read(); f.Type != "peer-joined" {
		t.Fatalf("got %s, want peer-joined", f.Type)
	}
	killed := time.Now()
	if err := cmd2.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	f := read()
	var left struct{ ID string }
	_ = json.Unmarshal(f.Peer, &left)
	if f.Type != "peer-left" || f.Reason != "timeout" || left.ID != bID {
		t.Fatalf("got %+v, want peer-left of %s with reason timeout", f, bID)
	}
	// The dead node's peers are kept for the resume grace (for their clients to resume on
	// another node), then leave.
	if d := time.Since(killed); d > 3*time.Second || d < 500*time.Millisecond {
		t.Fatalf("peer-left %v after SIGKILL; node timeout 500ms, then the resume grace 500ms", d)
	}
	t.Logf("peer-left %v after SIGKILL (node timeout 500ms, heartbeat 100ms, resume grace 500ms)", time.Since(killed).Round(time.Millisecond))
}
