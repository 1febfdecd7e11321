package server_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/switchboard-rtc/switchboard/internal/certs/pebbletest"
	"github.com/switchboard-rtc/switchboard/internal/config"
	"github.com/switchboard-rtc/switchboard/internal/server"
	"github.com/switchboard-rtc/switchboard/internal/testenv"
)

// issueWithin bounds how long a test waits for Pebble to issue or refuse a certificate
// (about a second on an idle machine; much more under -race on a busy one).
const issueWithin = 60 * time.Second

// acmeServer is a real server with --acme-domains (*.switchboard.test) against its own
// Pebble, on 127.0.0.1.
type acmeServer struct {
	*testServer
	ca       *pebbletest.CA
	port     int    // the TLS listener's port (TLS-ALPN-01 is checked there)
	httpAddr string // --acme-http-listen's address; "" when off
	storage  string // --acme-storage
	logs     *testenv.Buffer
	hc       *http.Client // HTTPS: *.switchboard.test is 127.0.0.1, the CA's root trusted
}

type acmeOptions struct {
	domains []string
	http01  bool // --acme-http-listen on (else off)
	tlsALPN bool // --acme-tls-alpn
	turn    bool // the embedded TURN server on: TURN over TLS shares the HTTPS port
	// beforeStart runs once the CA is up, before the server starts (DNS failures).
	beforeStart func(*pebbletest.CA)
}

func startACME(t *testing.T, o acmeOptions) *acmeServer {
	t.Helper()
	ports := pebbletest.FreePorts(t, 2)
	s := &acmeServer{port: ports[0], logs: new(testenv.Buffer)}
	var httpPort int
	if o.http01 {
		httpPort = ports[1]
		s.httpAddr = "127.0.0.1:" + strconv.Itoa(httpPort)
	}
	s.ca = pebbletest.Start(t, pebbletest.Options{HTTPPort: httpPort, TLSPort: s.port})
	if o.beforeStart != nil {
		o.beforeStart(s.ca)
	}
	s.storage = t.TempDir() // removed after the server stopped (cleanups run last first)
	s.testServer = startServerLogs(t, s.logs, func(c *config.Config) {
		c.Listen = "127.0.0.1:" + strconv.Itoa(s.port)
		c.MetricsListen = "127.0.0.1:0"
		c.ACMEDomains = o.domains
		c.ACMECA, c.ACMECARoot, c.ACMEStorage = s.ca.Directory, s.ca.RootsFile, s.storage
		c.ACMEHTTPListen, c.ACMETLSALPN = "off", o.tlsALPN
		if o.turn {
			c.TURN, c.TURNListen = true, "127.0.0.1:0"
		}
		if o.http01 {
			c.ACMEHTTPListen = s.httpAddr
		}
	})
	dialer := &net.Dialer{Timeout: waitFor}
	s.hc = &http.Client{
		Transport: &http.Transport{
			TLSClientConfig: &tls.Config{RootCAs: s.ca.Roots()},
			DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
				if host, port, err := net.SplitHostPort(addr); err == nil && strings.HasSuffix(host, ".switchboard.test") {
					addr = net.JoinHostPort("127.0.0.1", port)
				}
				return dialer.DialContext(ctx, network, addr)
			},
		},
		Timeout: waitFor,
		// The redirects of --acme-http-listen are looked at, not followed.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	t.Cleanup(s.hc.CloseIdleConnections)
	return s
}

// startServerLogs is startServer with the server's log (debug level) kept in logs too.
func startServerLogs(t *testing.T, logs io.Writer, mod func(*config.Config)) *testServer {
	t.Helper()
	cfg := config.Default()
	cfg.ShutdownTimeout = 3 * time.Second
	cfg.TURN = false
	mod(&cfg)
	w := logs
	if testing.Verbose() {
		w = io.MultiWriter(logs, newTestWriter(t))
	}
	srv, err := server.New(cfg, slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelDebug})))
	if err != nil {
		t.Fatalf("server.New: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	ts := &testServer{Server: srv, stop: cancel, done: make(chan error, 1)}
	ts.base = "https://" + srv.Addr().String()
	ts.ws = "wss://" + srv.Addr().String() + "/ws"
	go func() { ts.done <- srv.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-ts.done:
			if err != nil {
				t.Errorf("server.Run: %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Errorf("server did not stop")
		}
	})
	return ts
}

// url is https://host:port/path on the server.
func (s *acmeServer) url(host, path string) string {
	return "https://" + net.JoinHostPort(host, strconv.Itoa(s.port)) + path
}

// served dials the TLS listener for serverName and returns the leaf it got, verified against
// the CA's root for that name.
func (s *acmeServer) served(serverName string, protos ...string) (*x509.Certificate, error) {
	d := &tls.Dialer{NetDialer: &net.Dialer{Timeout: waitFor}, Config: &tls.Config{ServerName: serverName, RootCAs: s.ca.Roots(), NextProtos: protos}}
	c, err := d.Dial("tcp", "127.0.0.1:"+strconv.Itoa(s.port))
	if err != nil {
		return nil, err
	}
	defer c.Close()
	return c.(*tls.Conn).ConnectionState().PeerCertificates[0], nil
}

// servedInsecure is served without verifying anything (to see what a client without SNI
// gets).
func (s *acmeServer) servedInsecure(serverName string) (*x509.Certificate, error) {
	d := &tls.Dialer{NetDialer: &net.Dialer{Timeout: waitFor}, Config: &tls.Config{ServerName: serverName, InsecureSkipVerify: true}}
	c, err := d.Dial("tcp", "127.0.0.1:"+strconv.Itoa(s.port))
	if err != nil {
		return nil, err
	}
	defer c.Close()
	return c.(*tls.Conn).ConnectionState().PeerCertificates[0], nil
}

// waitServed waits until the server serves a certificate for name that verifies, and
// returns it.
func (s *acmeServer) waitServed(t *testing.T, name string) *x509.Certificate {
	t.Helper()
	var leaf *x509.Certificate
	within(t, issueWithin, "a certificate for "+name, func() bool {
		var err error
		leaf, err = s.served(name)
		return err == nil
	})
	return leaf
}

// metric returns the value of the series line (name{labels}) on --metrics-listen, or -1.
func (s *acmeServer) metric(t *testing.T, series string) float64 {
	t.Helper()
	resp, err := http.Get("http://" + s.MetricsAddr().String() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	for _, line := range strings.Split(string(body), "\n") {
		if v, ok := strings.CutPrefix(line, series+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				t.Fatalf("%s: %v", line, err)
			}
			return f
		}
	}
	return -1
}

// wss connects a WebSocket client over TLS to host.
func (s *acmeServer) wss(t *testing.T, host string) *client {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	c, _, err := websocket.Dial(ctx, "wss://"+net.JoinHostPort(host, strconv.Itoa(s.port))+"/ws", &websocket.DialOptions{HTTPClient: s.hc})
	if err != nil {
		t.Fatalf("wss dial: %v", err)
	}
	c.SetReadLimit(1 << 20)
	cl := &client{t: t, c: c, msgs: make(chan msg, 64), errc: make(chan error, 1)}
	go cl.readLoop()
	t.Cleanup(func() { c.CloseNow() })
	return cl
}

// relay sends data from a to b and checks it arrives.
func relay(t *testing.T, a, b *client, data string) {
	t.Helper()
	a.send(map[string]any{"type": "message", "target": b.id, "data": data})
	if m := b.expect("message"); string(m.Data) != `"`+data+`"` {
		t.Fatalf("relayed %.60s", m.Data)
	}
}

// within waits until cond holds, for at most d.
func within(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		<-tick.C
	}
}
