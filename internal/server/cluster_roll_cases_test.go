package server_test

import (
	"strings"
	"testing"
	"time"

	"github.com/switchboard-rtc/switchboard/internal/bus/natsbus"
	"github.com/switchboard-rtc/switchboard/internal/config"
	"github.com/switchboard-rtc/switchboard/internal/server"
)

// A rolling restart of a 3-node cluster at the wire level: raw WebSocket clients in pairs
// across nodes relay to each other every 20 ms; each node in turn is drained (SIGTERM
// semantics) and started again on its address. Each drained node's clients come back on
// another node and resume: every client keeps its id, nobody sees a peer-left, not one relay
// is lost or duplicated (the clients resend unacked relays with retry, as the SDK does), and
// the draining node hands its presences over (no gap).
func TestClusterRollingRestartWire(t *testing.T) {
	n := startNATSJS(t) // the cluster's resume secret and ledger
	f := startRollCluster(t, n, nil)
	p := startPairs(t, f, 6)
	lastResumes := func(c *rollClient) int { return c.resumes }
	for i, nd := range f.nodes {
		before := map[*rollClient]int{}
		for _, c := range p.clients {
			c.mu.Lock()
			before[c] = lastResumes(c)
			c.mu.Unlock()
		}
		f.setDown(i)
		nd.stop()
		nd.start()
		f.setDown(-1)
		f.waitCluster(t)
		// Everyone is online again, and the traffic goes on a moment before the next drain.
		p.waitAll("back online", 20*time.Second, func(c *rollClient) bool { return c.online })
		marks := map[*rollClient]int{}
		for _, c := range p.clients {
			c.mu.Lock()
			marks[c] = c.sent
			c.mu.Unlock()
		}
		p.waitAll("sending again", 20*time.Second, func(c *rollClient) bool { return c.sent >= marks[c]+10 && len(c.out) < 10 })
		moved := 0
		for _, c := range p.clients {
			c.mu.Lock()
			if c.resumes > before[c] {
				moved++
			}
			c.mu.Unlock()
		}
		t.Logf("drain %d: %d clients resumed on another node", i+1, moved)
	}
	sent, resumes, restored, gaps, lost, dupes, faults := p.settle()
	t.Logf("%d clients, 3 drains: %d relays sent, %d resumes (%d restored from a handover, %d with a gap), %d lost, %d replayed events dropped as seen",
		len(p.clients), sent, resumes, restored, gaps, lost, dupes)
	if len(faults) > 0 {
		t.Fatalf("faults:\n%s", strings.Join(faults, "\n"))
	}
	if lost > 0 || gaps > 0 {
		t.Fatalf("%d relays lost, %d resumes with a gap", lost, gaps)
	}
	for _, c := range p.clients {
		if c.resumes == 0 {
			t.Errorf("%s never resumed: three drains should have moved every client", c.name)
		}
	}
}

// A node crashes (its NATS connection drops without a goodbye, then it stops): its clients
// resume on the other nodes within the grace with their ids, and nobody sees a peer-left.
// Relays the dead node had taken and not written die with it: counted, not failed on.
func TestClusterNodeCrashPeersResume(t *testing.T) {
	n := startNATS(t)
	const grace = 3 * time.Second
	f := startRollCluster(t, n, func(c *config.Config) { c.ResumeSecret, c.ResumeGrace = strings.Repeat("c", 40), grace })
	p := startPairs(t, f, 6)
	p.waitAll("sending", 10*time.Second, func(c *rollClient) bool { return c.sent >= 10 })
	victim := f.nodes[1]
	var onVictim []*rollClient
	for _, c := range p.clients {
		c.mu.Lock()
		if c.url == victim.url() {
			onVictim = append(onVictim, c)
		}
		c.mu.Unlock()
	}
	for _, c := range p.clients {
		c.mu.Lock()
		c.crashed = true
		c.mu.Unlock()
	}
	crashed := time.Now()
	natsBusOf(t, victim.srv).Crash()
	f.setDown(1)
	victim.stop()
	p.waitAll("back on a live node", 5*time.Second, func(c *rollClient) bool { return c.online && c.url != victim.url() })
	back := time.Since(crashed)
	for _, c := range onVictim {
		c.mu.Lock()
		if c.resumes == 0 {
			c.fault("did not resume after the crash")
		}
		c.mu.Unlock()
	}
	// The traffic goes on past the node timeout (the others declare the dead node gone) and
	// past the grace: still nobody leaves.
	deadline := time.Now().Add(testNodeTimeout + grace + time.Second)
	p.waitAll("past the grace", 20*time.Second, func(c *rollClient) bool { return time.Now().After(deadline) })
	sent, resumes, restored, gaps, lost, dupes, faults := p.settle()
	t.Logf("crash: %d of %d clients were on the dead node, all back in %v; %d relays sent, %d resumes (%d restored, %d with a gap), %d lost with the node, %d replayed events dropped as seen",
		len(onVictim), len(p.clients), back.Round(time.Millisecond), sent, resumes, restored, gaps, lost, dupes)
	if len(faults) > 0 {
		t.Fatalf("faults:\n%s", strings.Join(faults, "\n"))
	}
	if len(onVictim) == 0 {
		t.Fatal("no client was on the crashed node")
	}
}

func natsBusOf(t *testing.T, srv *server.Server) *natsbus.Bus {
	t.Helper()
	b, ok := srv.Hub().Bus().(*natsbus.Bus)
	if !ok {
		t.Fatalf("bus is %T, not the NATS bus", srv.Hub().Bus())
	}
	return b
}
