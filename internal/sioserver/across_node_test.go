package sioserver_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/switchboard-rtc/switchboard/internal/config"
	"github.com/switchboard-rtc/switchboard/internal/server"
	"github.com/switchboard-rtc/switchboard/internal/sioserver"
	"github.com/switchboard-rtc/switchboard/internal/testenv"
	"github.com/switchboard-rtc/switchboard/internal/testserver"
)

// TestNodeClientRecoversAcrossNodes: the official client's node shuts down for a restart
// (server.Shutdown with resumption on: its presences muted, its Socket.IO sessions closed as
// lost, 1012 on WebSocket, sioserver.Restart); the client reconnects to the other node of the
// cluster, which takes the socket over from the first: socket.recovered, the same id and pid,
// every message once and in order — before, while away (kept by the first node, handed over)
// and after — in the lobby and in a room, over WebSocket and polling.
func TestNodeClientRecoversAcrossNodes(t *testing.T) {
	for _, tr := range []struct {
		name       string
		transports []string
	}{{"websocket", []string{"websocket"}}, {"polling", []string{"polling"}}} {
		for _, room := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/room=%v", tr.name, room), func(t *testing.T) {
				url := startNATS(t) // node 1 shuts down: a cluster each
				n1, stop1 := runNode(t, clusterNode(url))
				nodes := []*server.Server{n1, testserver.Run(t, clusterNode(url))}
				waitCluster(t, nodes)
				u1, u2 := "http://"+nodes[0].Addr().String()+"/", "http://"+nodes[1].Addr().String()+"/"
				spec, _ := json.Marshal(map[string]any{"a": u1, "b": u2, "transports": tr.transports, "room": room, "away": 20})
				drained := make(chan error, 1)
				lines := sioserver.NodeScenarioSpec(t, u2, "recover-across", string(spec), func(line []byte, _ io.Writer) {
					var m struct{ ID, Reason string }
					_ = json.Unmarshal(line, &m)
					if m.ID != "" && m.Reason == "" {
						go func() { drained <- stop1() }()
					}
				})
				if err := <-drained; err != nil {
					t.Errorf("shutdown of node 1: %v", err)
				}
				var r recoverResult
				if err := json.Unmarshal(lines[len(lines)-1], &r); err != nil {
					t.Fatal(err)
				}
				want := make([]int, 30)
				for i := range want {
					want[i] = i
				}
				if !r.Recovered || r.ID != r.First || r.PID != r.FirstPID || !slices.Equal(r.Got, want) {
					t.Fatalf("recovered %v, id %s (first %s), pid %s (first %s), got %v; want recovered, same id and pid, 0..29 once in order",
						r.Recovered, r.ID, r.First, r.PID, r.FirstPID, r.Got)
				}
				// A closed WebSocket, or a long-poll ended by the close packet or refused.
				if r.Reason != "transport close" && r.Reason != "transport error" {
					t.Errorf("disconnect reason %q, want transport close or error", r.Reason)
				}
				if n := nodes[1].Hub().Stats().SocketIORecovered.Load(); n != 1 {
					t.Errorf("node 2 counted %d recoveries, want 1", n)
				}
			})
		}
	}
}

// TestNodeClientPIDRefusedAcrossNodes: on another node of the cluster, the pid of a socket
// that left, a tampered pid, a forged one and one with its signature cut off get a new
// socket, not recovered.
func TestNodeClientPIDRefusedAcrossNodes(t *testing.T) {
	nodes := startCluster(t, 2)
	u1, u2 := "http://"+nodes[0].Addr().String()+"/", "http://"+nodes[1].Addr().String()+"/"
	spec, _ := json.Marshal(map[string]any{"a": u1, "b": u2})
	lines := sioserver.NodeScenarioSpec(t, u1, "pid-refused", string(spec), nil)
	var got struct {
		ID  string
		Res []struct {
			ID        string
			Recovered bool
		}
	}
	if err := json.Unmarshal(lines[len(lines)-1], &got); err != nil {
		t.Fatal(err)
	}
	if len(got.Res) != 4 {
		t.Fatalf("%d answers, want 4", len(got.Res))
	}
	for i, r := range got.Res {
		if r.Recovered || r.ID == got.ID || r.ID == "" {
			t.Errorf("pid %d: id %s recovered %v; want a new socket (the old was %s)", i, r.ID, r.Recovered, got.ID)
		}
	}
	if n := nodes[1].Hub().Stats().SocketIORecoveryRefused.Load(); n != 4 {
		t.Errorf("node 2 refused %d recoveries, want 4", n)
	}
}

// runNode runs a full server configured by mod until stop (or the test's end) and returns it
// with stop, which shuts it down as SIGTERM does and returns Run's error. Its log (info and
// up) is printed when the test fails. The shutdown timeout leaves a draining node time to
// hand its presences over on a loaded machine; it returns as soon as they are taken.
func runNode(t *testing.T, mod func(*config.Config)) (*server.Server, func() error) {
	t.Helper()
	cfg := config.Default()
	cfg.Listen = "127.0.0.1:0"
	cfg.ShutdownTimeout = 15 * time.Second
	cfg.TURN = false
	cfg.JoinsPerClient, cfg.JoinBurstPerClient, cfg.TURNCredentialsPerClient = 1e6, 1e6, 1e6
	cfg.HTTPConnsPerClient = 1e6
	mod(&cfg)
	var logs testenv.Buffer
	srv, err := server.New(cfg, slog.New(slog.NewTextHandler(&logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx) }()
	var once sync.Once
	var runErr error
	stop := func() error {
		once.Do(func() {
			cancel()
			runErr = <-done
		})
		return runErr
	}
	t.Cleanup(func() {
		_ = stop()
		if t.Failed() {
			t.Logf("node at %s logged:\n%s", srv.Addr(), logs.String())
		}
	})
	return srv, stop
}
