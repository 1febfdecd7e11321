package sioserver

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/switchboard-rtc/switchboard/internal/hub"
	"github.com/switchboard-rtc/switchboard/internal/testenv"
	"github.com/switchboard-rtc/switchboard/protocol"
)

// requireNodeClient fails under CI=true and skips loudly elsewhere when node or the npm
// install of socket.io-client (scripts/install-test-deps.sh) is missing.
func requireNodeClient(t *testing.T) string {
	t.Helper()
	node, err := exec.LookPath("node")
	if err == nil {
		_, err = os.Stat(filepath.Join("nodetest", "node_modules", "socket.io-client", "package.json"))
	}
	if err != nil {
		testenv.Missing(t, "node or socket.io-client is missing ("+err.Error()+")", "run scripts/install-test-deps.sh (node, npm ci in internal/sioserver/nodetest)")
	}
	return node
}

// nodeScenario runs one scenario of nodetest/sio.mjs and returns its stdout lines; onLine,
// when set, sees each line as it comes and may answer on the script's stdin.
func nodeScenario(t *testing.T, url, scenario string, onLine func(line []byte, stdin io.Writer)) [][]byte {
	t.Helper()
	return nodeScenarioSpec(t, url, scenario, "", onLine)
}

// nodeScenarioSpec is nodeScenario with a JSON argument for the scenario ("" for none).
func nodeScenarioSpec(t *testing.T, url, scenario, spec string, onLine func(line []byte, stdin io.Writer)) [][]byte {
	t.Helper()
	node := requireNodeClient(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	args := []string{"sio.mjs", scenario, url}
	if spec != "" {
		args = append(args, spec)
	}
	cmd := exec.CommandContext(ctx, node, args...)
	cmd.Dir = "nodetest"
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var lines [][]byte
	sc := bufio.NewScanner(stdout)
	for sc.Scan() {
		line := append([]byte(nil), sc.Bytes()...)
		lines = append(lines, line)
		if onLine != nil {
			onLine(line, stdin)
		}
	}
	_ = stdin.Close()
	if err := cmd.Wait(); err != nil {
		t.Fatalf("node sio.mjs %s: %v\n%s", scenario, err, stderr.String())
	}
	return lines
}

func decodeLine(t *testing.T, line []byte, v any) {
	t.Helper()
	if err := json.Unmarshal(line, v); err != nil {
		t.Fatalf("decode %q: %v", line, err)
	}
}

func TestNodeClientUpgrade(t *testing.T) {
	ts := startServer(t, hub.Config{}, nil)
	lines := nodeScenario(t, ts.url, "upgrade", nil)
	var got struct{ First, Now, ID string }
	decodeLine(t, lines[len(lines)-1], &got)
	if got.First != "polling" || got.Now != "websocket" {
		t.Errorf("transports: first %q, then %q; want polling, then websocket", got.First, got.Now)
	}
	if n := ts.hub.Stats().SocketIOUpgrades.Load(); n != 1 {
		t.Errorf("server counted %d upgrades, want 1", n)
	}
}

func TestNodeClientWebSocketOnly(t *testing.T) {
	ts := startServer(t, hub.Config{}, nil)
	lines := nodeScenario(t, ts.url, "websocket", nil)
	var got struct{ Transport string }
	decodeLine(t, lines[len(lines)-1], &got)
	if got.Transport != "websocket" {
		t.Errorf("transport %q, want websocket", got.Transport)
	}
	if n := ts.hub.Stats().SocketIOUpgrades.Load(); n != 0 {
		t.Errorf("server counted %d upgrades, want 0", n)
	}
}

// TestNodeClientSeedFlow: the seed's offer/answer/ice-candidate flow by socket.id between
// clients on polling+upgrade, websocket only and polling only, in the lobby and in a room.
func TestNodeClientSeedFlow(t *testing.T) {
	ts := startServer(t, hub.Config{}, nil)
	nodeScenario(t, ts.url, "seed", nil)
	if n := ts.hub.Stats().Relayed[protocol.TypeICECandidate].Load(); n != 120 {
		t.Errorf("server relayed %d candidates, want 120", n)
	}
}

func TestNodeClientAcksRoomsErrors(t *testing.T) {
	ts := startServer(t, hub.Config{}, nil)
	nodeScenario(t, ts.url, "acks", nil)
}

func TestNodeClientNamespace(t *testing.T) {
	ts := startServer(t, hub.Config{}, nil)
	lines := nodeScenario(t, ts.url, "namespace", nil)
	var got struct{ Message string }
	decodeLine(t, lines[len(lines)-1], &got)
	if got.Message != "Invalid namespace" {
		t.Errorf("connect_error %q, want Invalid namespace", got.Message)
	}
}

// TestNodeClientReconnect: the server drops the client's connection as a lost one;
// socket.io-client reconnects by itself, recovers its socket (the same id) and works again.
func TestNodeClientReconnect(t *testing.T) {
	ts := startServer(t, hub.Config{}, nil)
	lines := nodeScenario(t, ts.url, "reconnect", func(line []byte, _ io.Writer) {
		var m struct {
			ID     string
			Reason string
		}
		decodeLine(t, line, &m)
		if m.Reason == "" && !ts.sio.Disconnect(protocol.PeerID(m.ID)) {
			t.Errorf("Disconnect(%s): no such socket", m.ID)
		}
	})
	var got struct{ Reason, ID, First string }
	decodeLine(t, lines[len(lines)-1], &got)
	if got.Reason != "transport close" || got.ID != got.First {
		t.Errorf("disconnect reason %q, ids %q then %q; want transport close and the same id", got.Reason, got.First, got.ID)
	}
}
