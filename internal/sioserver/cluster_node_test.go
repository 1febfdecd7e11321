package sioserver_test

import (
	"encoding/json"
	"net"
	"testing"
	"time"

	natsserver "github.com/nats-io/nats-server/v2/server"

	"github.com/switchboard-rtc/switchboard/internal/bus/natsbus"
	"github.com/switchboard-rtc/switchboard/internal/config"
	"github.com/switchboard-rtc/switchboard/internal/server"
	"github.com/switchboard-rtc/switchboard/internal/sioserver"
	"github.com/switchboard-rtc/switchboard/internal/testserver"
	"github.com/switchboard-rtc/switchboard/protocol"
)

// startNATS runs a NATS server embedded in the test process on a loopback port.
func startNATS(t *testing.T) string {
	t.Helper()
	s, err := natsserver.NewServer(&natsserver.Options{Host: "127.0.0.1", Port: natsserver.RANDOM_PORT, NoLog: true, NoSigs: true})
	if err != nil {
		t.Fatalf("nats: %v", err)
	}
	go s.Start()
	if !s.ReadyForConnections(10 * time.Second) {
		t.Fatal("nats server not ready")
	}
	t.Cleanup(func() {
		s.Shutdown()
		s.WaitForShutdown()
	})
	return "nats://" + s.Addr().(*net.TCPAddr).String()
}

// clusterSecret is the resume secret of the test clusters' nodes.
const clusterSecret = "a-test-cluster-resume-secret-of-40-bytes"

// startCluster runs n full servers, nodes of one cluster, and waits until each knows the
// others.
func startCluster(t *testing.T, n int) []*server.Server {
	t.Helper()
	url := startNATS(t)
	nodes := make([]*server.Server, n)
	for i := range nodes {
		nodes[i] = testserver.Run(t, clusterNode(url))
	}
	waitCluster(t, nodes)
	return nodes
}

// clusterNode configures a node of the cluster on the NATS server at url.
func clusterNode(url string) func(c *config.Config) {
	return func(c *config.Config) {
		c.NATS = url
		c.NATSHeartbeat = 100 * time.Millisecond
		c.NATSNodeTimeout = time.Second
		c.ResumeSecret = clusterSecret // shared: a node verifies the others' pids and tokens
	}
}

// waitCluster waits until each of nodes knows the others.
func waitCluster(t *testing.T, nodes []*server.Server) {
	t.Helper()
	deadline := time.NewTimer(10 * time.Second)
	defer deadline.Stop()
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for _, s := range nodes {
		b := s.Hub().Bus().(*natsbus.Bus)
		for b.Nodes() != len(nodes) || b.Ready() != nil {
			select {
			case <-deadline.C:
				t.Fatal("the cluster did not form")
			case <-tick.C:
			}
		}
	}
}

// TestNodeClientLobbyAcrossNodes: the seed's flow (offer, answer, ice-candidate to
// data.target by socket.id, no room) between official clients connected to two nodes of a
// cluster, over polling upgraded, WebSocket and polling only.
func TestNodeClientLobbyAcrossNodes(t *testing.T) {
	nodes := startCluster(t, 2)
	u1, u2 := "http://"+nodes[0].Addr().String()+"/", "http://"+nodes[1].Addr().String()+"/"
	spec, _ := json.Marshal(map[string]any{"a": u1, "b": u2})
	lines := sioserver.NodeScenarioSpec(t, u1, "lobby-cluster", string(spec), nil)
	var got struct{ A, B, P, Transport string }
	if err := json.Unmarshal(lines[len(lines)-1], &got); err != nil {
		t.Fatal(err)
	}
	if got.Transport != "websocket" {
		t.Errorf("a's transport %q, want websocket (upgraded)", got.Transport)
	}
	// Each node relayed the candidates its own sockets received: 20 + 20 to b and p on
	// node 2, 20 + 20 to a on node 1.
	for i, want := range []uint64{40, 40} {
		if n := nodes[i].Hub().Stats().Relayed[protocol.TypeICECandidate].Load(); n != want {
			t.Errorf("node %d relayed %d candidates, want %d", i+1, n, want)
		}
	}
}
