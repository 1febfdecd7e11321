package deploytest

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	natsserver "github.com/nats-io/nats-server/v2/server"

	"github.com/switchboard-rtc/switchboard/internal/server"
	"github.com/switchboard-rtc/switchboard/internal/testenv"
)

// startNATS runs a NATS server in the test process on a loopback port.
func startNATS(t *testing.T) string {
	t.Helper()
	s, err := natsserver.NewServer(&natsserver.Options{Host: "127.0.0.1", Port: natsserver.RANDOM_PORT, NoLog: true, NoSigs: true})
	if err != nil {
		t.Fatalf("nats: %v", err)
	}
	go s.Start()
	if !s.ReadyForConnections(waitFor) {
		t.Fatal("nats server not ready")
	}
	t.Cleanup(func() { s.Shutdown(); s.WaitForShutdown() })
	return s.ClientURL()
}

// cluster is two nodes started with section 4's serve command, behind a load balancer.
type cluster struct {
	nodes []*server.Server
	*stack
}

// clusterStarter starts a load balancer configured from docs/deploy.md in front of upstreams,
// TLS on 127.0.0.1:httpsPort; sticky says whether to keep the page's stickiness.
type clusterStarter func(t *testing.T, dir string, upstreams []string, httpsPort int, certPath, keyPath string, sticky bool)

// startCluster starts NATS, two nodes (section 4's serve command, addresses moved to
// loopback) and the load balancer.
func startCluster(t *testing.T, start clusterStarter, sticky bool) *cluster {
	t.Helper()
	nats := startNATS(t)
	dir := t.TempDir()
	certPath, keyPath, pool := testCert(t, dir)
	port := freePort(t)
	env := map[string]string{"SWITCHBOARD_TURN_SECRET": "the same on every node"}
	cl := &cluster{stack: &stack{log: &testenv.Buffer{}, pool: pool, caFile: certPath}}
	var upstreams []string
	for range 2 {
		cfg := serveConfig(t, "serve-cluster", env)
		if cfg.Listen != "10.0.0.1:8080" || cfg.NATS != "nats://10.0.0.10:4222" || cfg.PublicURL != "https://call.example.com" ||
			len(cfg.TrustedProxies) != 1 || cfg.TrustedProxies[0] != "10.0.0.5" {
			t.Fatalf("docs/deploy.md, serve-cluster: listen %q, nats %q, public URL %q, trusted proxies %q: update the test with the page",
				cfg.Listen, cfg.NATS, cfg.PublicURL, cfg.TrustedProxies)
		}
		cfg.Listen, cfg.NATS, cfg.TrustedProxies = "127.0.0.1:0", nats, []string{"127.0.0.1"}
		cfg.PublicURL = fmt.Sprintf("https://127.0.0.1:%d", port)
		cfg.TURNListen = "127.0.0.1:0"
		cfg.NATSHeartbeat, cfg.NATSNodeTimeout = 100*time.Millisecond, time.Second
		srv := runServer(t, cfg, cl.log)
		cl.nodes = append(cl.nodes, srv)
		upstreams = append(upstreams, srv.Addr().String())
	}
	for _, u := range upstreams {
		waitReady(t, "http://"+u+"/readyz")
	}
	start(t, dir, upstreams, port, certPath, keyPath, sticky)
	cl.base = fmt.Sprintf("https://127.0.0.1:%d", port)
	cl.wss = fmt.Sprintf("wss://127.0.0.1:%d/ws", port)
	return cl
}

// waitReady waits until url answers 200.
func waitReady(t *testing.T, url string) {
	t.Helper()
	deadline := time.Now().Add(waitFor)
	for {
		resp, err := http.Get(url)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s not ready after %v", url, waitFor)
		}
		<-time.After(50 * time.Millisecond)
	}
}

// pollSession runs an Engine.IO long-polling session through the load balancer as
// socket.io-client does (handshake, CONNECT by POST, a GET for the answer), rounds times, and
// returns the first refusal's status and body, or 0.
func pollSession(t *testing.T, cl *cluster, rounds int) (int, string) {
	t.Helper()
	hc := httpsClient(t, "127.0.0.2", cl.pool)
	do := func(method, url, body string) (int, string) {
		req, _ := http.NewRequest(method, url, strings.NewReader(body))
		resp, err := hc.Do(req)
		if err != nil {
			t.Fatalf("%s %s: %v", method, url, err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	for range rounds {
		base := cl.base + "/socket.io/?EIO=4&transport=polling"
		code, open := do(http.MethodGet, base, "")
		if code != http.StatusOK {
			return code, open
		}
		i := strings.Index(open, `"sid":"`)
		if i < 0 {
			t.Fatalf("open packet %q", open)
		}
		sid := open[i+7:]
		sid = sid[:strings.IndexByte(sid, '"')]
		url := base + "&sid=" + sid
		if code, body := do(http.MethodPost, url, "40"); code != http.StatusOK {
			return code, body
		}
		code, body := do(http.MethodGet, url, "")
		if code != http.StatusOK {
			return code, body
		}
		if !strings.HasPrefix(body, "40{") {
			t.Fatalf("CONNECT answer %q", body)
		}
	}
	return 0, ""
}

// checkCluster: behind the page's load balancer, Socket.IO long polling and its upgrade work
// and a peer through it signals peers on both nodes; without the page's stickiness, long
// polling breaks ("session ID unknown"), which is why the page asks for it.
func checkCluster(t *testing.T, start clusterStarter) {
	t.Run("sticky", func(t *testing.T) {
		cl := startCluster(t, start, true)
		if code, body := pollSession(t, cl, 6); code != 0 {
			t.Fatalf("long polling through the load balancer: %d %q", code, body)
		}
		if out := nodeScenario(t, cl.base, "seed", cl.caFile); !strings.Contains(out, `"ok":true`) {
			t.Fatalf("seed scenario: %q", out)
		}
		// One peer through the load balancer, one on each node directly (with the public Host,
		// which --public-url pins): one room.
		lb, code := dialWS(t, cl.wss, "127.0.0.2", cl.pool, nil)
		if code != http.StatusSwitchingProtocols {
			t.Fatalf("/ws through the load balancer: %d", code)
		}
		var direct []*wsClient
		for _, n := range cl.nodes {
			direct = append(direct, dialNode(t, n.Addr().String(), strings.TrimPrefix(cl.base, "https://")))
		}
		lb.join("cluster")
		for i, c := range direct {
			c.join("cluster")
			lb.next("peer-joined")
			for _, earlier := range direct[:i] {
				earlier.next("peer-joined")
			}
		}
		for _, c := range direct {
			relay(t, lb, c)
			relay(t, c, lb)
		}
	})
	t.Run("not sticky", func(t *testing.T) {
		cl := startCluster(t, start, false)
		code, body := pollSession(t, cl, 6)
		if code != http.StatusBadRequest || !strings.Contains(body, "session ID unknown") {
			t.Fatalf("long polling spread over the nodes: %d %q; want 400 session ID unknown", code, body)
		}
	})
}

// dialNode opens a native WebSocket straight to a node at addr, for host.
func dialNode(t *testing.T, addr, host string) *wsClient {
	t.Helper()
	d := &net.Dialer{Timeout: waitFor}
	tr := &http.Transport{DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
		return d.DialContext(ctx, network, addr)
	}}
	t.Cleanup(tr.CloseIdleConnections)
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	c, resp, err := websocket.Dial(ctx, "ws://"+host+"/ws", &websocket.DialOptions{HTTPClient: &http.Client{Transport: tr}})
	if err != nil {
		status := 0
		if resp != nil {
			status = resp.StatusCode
		}
		t.Fatalf("/ws on node %s: %v (%d)", addr, err, status)
	}
	t.Cleanup(func() { c.CloseNow() })
	return &wsClient{t: t, c: c}
}

// nginxCluster is a clusterStarter for section 4's upstream block in section 2's site.
func nginxCluster(t *testing.T, dir string, upstreams []string, httpsPort int, certPath, keyPath string, sticky bool) {
	t.Helper()
	up := docBlock(t, "nginx-cluster")
	up = replaceOnce(t, "nginx-cluster", up, "server 10.0.0.1:8080;", "server "+upstreams[0]+";")
	up = replaceOnce(t, "nginx-cluster", up, "server 10.0.0.2:8080;", "server "+upstreams[1]+";")
	up = replaceOnce(t, "nginx-cluster", up, "server 10.0.0.3:8080;", "") // two nodes here
	if !sticky {
		up = replaceOnce(t, "nginx-cluster", up, "ip_hash;", "")
	}
	site := nginxSite(t, docBlock(t, "nginx"), "127.0.0.1:8080", httpsPort, freePort(t), certPath, keyPath)
	site = replaceOnce(t, "nginx", site, "upstream switchboard {\n    server 127.0.0.1:8080;\n}", strings.TrimSpace(up))
	runNginx(t, dir, site, httpsPort)
}

// caddyCluster is a clusterStarter for section 4's Caddyfile.
func caddyCluster(t *testing.T, dir string, upstreams []string, httpsPort int, certPath, keyPath string, sticky bool) {
	t.Helper()
	site := docBlock(t, "caddy-cluster")
	site = replaceOnce(t, "caddy-cluster", site, "10.0.0.1:8080 10.0.0.2:8080 10.0.0.3:8080", upstreams[0]+" "+upstreams[1])
	if !sticky {
		site = replaceOnce(t, "caddy-cluster", site, "lb_policy ip_hash", "lb_policy round_robin")
	}
	runCaddy(t, dir, caddySite(t, site, "", httpsPort, certPath, keyPath), httpsPort)
}

// TestClusterBehindNginx (docs/deploy.md, section 4): two nodes over NATS behind nginx with the
// page's ip_hash; and without it, long polling fails.
func TestClusterBehindNginx(t *testing.T) {
	checkCluster(t, nginxCluster)
}

// TestClusterBehindCaddy: the same behind Caddy with lb_policy ip_hash.
func TestClusterBehindCaddy(t *testing.T) {
	checkCluster(t, caddyCluster)
}
