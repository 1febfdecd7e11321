package server_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/pion/turn/v5"

	"github.com/switchboard-rtc/switchboard/internal/certs"
	"github.com/switchboard-rtc/switchboard/internal/config"
)

// tlsServer is a real server with a certificate (files, self-signed for loopback) on a
// loopback port, and clients that trust it.
type tlsServer struct {
	*testServer
	addr string // 127.0.0.1:port
	pool *x509.CertPool
}

func startTLSServer(t *testing.T, mod func(*config.Config)) *tlsServer {
	t.Helper()
	dir := t.TempDir()
	cp, kp := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	c, err := certs.SelfSigned(nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := certs.WritePEM(c, cp, kp); err != nil {
		t.Fatal(err)
	}
	ts := startServer(t, func(cfg *config.Config) {
		cfg.TLSCert, cfg.TLSKey = cp, kp
		if mod != nil {
			mod(cfg)
		}
	})
	pool := x509.NewCertPool()
	pool.AddCert(c.Leaf)
	return &tlsServer{testServer: ts, addr: strings.TrimPrefix(ts.base, "http://"), pool: pool}
}

// https is an HTTPS client from the local address src (another 127.0.0.0/8 address is
// another client) offering alpn (nil: no ALPN, so the shared port sniffs its first bytes).
func (ts *tlsServer) https(t *testing.T, src string, alpn []string) *http.Client {
	t.Helper()
	tr := &http.Transport{DialTLSContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
		d := tls.Dialer{
			NetDialer: &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}, Timeout: waitFor},
			Config:    &tls.Config{RootCAs: ts.pool, NextProtos: alpn},
		}
		return d.DialContext(ctx, network, addr)
	}}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: waitFor}
}

// wss opens a signaling client over WSS with hc.
func (ts *tlsServer) wss(t *testing.T, hc *http.Client) *client {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	c, _, err := websocket.Dial(ctx, "wss://"+ts.addr+"/ws", &websocket.DialOptions{HTTPClient: hc})
	if err != nil {
		t.Fatalf("wss dial: %v", err)
	}
	c.SetReadLimit(1 << 20)
	cl := &client{t: t, c: c, msgs: make(chan msg, 64), errc: make(chan error, 1)}
	go cl.readLoop()
	t.Cleanup(func() { c.CloseNow() })
	return cl
}

func (ts *tlsServer) healthy(t *testing.T, hc *http.Client) {
	t.Helper()
	if st, body := getFrom(t, hc, "https://"+ts.addr+"/healthz"); st != http.StatusOK || body != "ok\n" {
		t.Fatalf("https /healthz: %d %q", st, body)
	}
}

// metric scrapes /metrics over HTTPS and returns the value of the series named exactly name.
func (ts *tlsServer) metric(t *testing.T, name string) string {
	t.Helper()
	hc := ts.https(t, "127.0.0.1", []string{"http/1.1"})
	hc.Transport.(*http.Transport).DisableKeepAlives = true // holds no connection against the caps
	_, body := getFrom(t, hc, "https://"+ts.addr+"/metrics")
	for _, line := range strings.Split(body, "\n") {
		if v, ok := strings.CutPrefix(line, name+" "); ok {
			return v
		}
	}
	return ""
}

// turnsOf returns the host:port of the welcome's turns: URL and its credentials, or "".
func turnsOf(t *testing.T, w msg) (hostport, user, pass string) {
	t.Helper()
	ice, _ := iceOf(t, w.Raw)
	for _, s := range ice {
		for _, u := range s.URLs {
			if rest, ok := strings.CutPrefix(u, "turns:"); ok {
				hp, q, _ := strings.Cut(rest, "?")
				if q != "transport=tcp" {
					t.Errorf("turns URL %q: want ?transport=tcp", u)
				}
				return hp, s.Username, s.Credential
			}
		}
	}
	return "", "", ""
}

// relayCall pairs two WSS clients in a room; it returns a's welcome and a function that
// checks a relayed message.
func relayCall(t *testing.T, a, b *client) (msg, func(data string)) {
	w := a.join("call", nil)
	b.join("call", nil)
	a.expect("peer-joined")
	return w, func(data string) {
		t.Helper()
		a.send(map[string]any{"type": "message", "target": b.id, "data": data})
		if m := b.expect("message"); string(m.Data) != `"`+data+`"` {
			t.Fatalf("relayed %.60s", m.Data)
		}
	}
}

// TestTURNOverTLS (issue 13): with TLS on, a real pion/turn client reaches the embedded TURN
// over TLS at the welcome's turns: URL — by default on the HTTPS port itself, else on
// --turn-tls-listen's port — allocates, and exchanges datagrams with a UDP peer through the
// relay, while HTTPS and WSS signaling on the HTTPS port go on answering (browsers' ALPN
// http/1.1 and clients without ALPN alike).
func TestTURNOverTLS(t *testing.T) {
	for _, mode := range []struct{ name, listen string }{{"shared HTTPS port", ""}, {"own port", "127.0.0.1:0"}} {
		t.Run(mode.name, func(t *testing.T) {
			ts := startTLSServer(t, func(c *config.Config) {
				c.TURN = true
				c.TURNAllowPeers = []string{"127.0.0.0/8"}
				c.TURNTLSListen = mode.listen
			})
			browser, bare := ts.https(t, "127.0.0.1", []string{"http/1.1"}), ts.https(t, "127.0.0.1", nil)
			a, b := ts.wss(t, browser), ts.wss(t, bare)
			w, relay := relayCall(t, a, b)
			hostport, user, pass := turnsOf(t, w)
			_, port, _ := net.SplitHostPort(ts.addr)
			if shared := hostport == "127.0.0.1:"+port; shared != (mode.listen == "") || hostport == "" {
				t.Fatalf("turns: URL names %q; the HTTPS port is %s", hostport, port)
			}
			conn, err := tls.Dial("tcp4", hostport, &tls.Config{RootCAs: ts.pool})
			if err != nil {
				t.Fatal(err)
			}
			cl, err := turn.NewClient(&turn.ClientConfig{
				STUNServerAddr: hostport, TURNServerAddr: hostport, Username: user, Password: pass,
				Conn: turn.NewSTUNConn(conn), RTO: 200 * time.Millisecond,
			})
			if err != nil {
				t.Fatal(err)
			}
			defer cl.Close()
			if err := cl.Listen(); err != nil {
				t.Fatal(err)
			}
			rc, err := cl.Allocate()
			if err != nil {
				t.Fatalf("allocate over TLS: %v", err)
			}
			defer rc.Close()
			peer, err := net.ListenPacket("udp4", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			defer peer.Close()
			buf := make([]byte, 1500)
			for i, data := range []string{"first", "second", "third"} {
				if _, err := rc.WriteTo([]byte(data), peer.LocalAddr()); err != nil {
					t.Fatal(err)
				}
				_ = peer.SetReadDeadline(time.Now().Add(waitFor))
				if n, _, err := peer.ReadFrom(buf); err != nil || string(buf[:n]) != data {
					t.Fatalf("datagram %d at the peer: %q %v", i, buf[:n], err)
				}
				if _, err := peer.WriteTo([]byte("re:"+data), rc.LocalAddr()); err != nil {
					t.Fatal(err)
				}
				_ = rc.SetReadDeadline(time.Now().Add(waitFor))
				if n, _, err := rc.ReadFrom(buf); err != nil || string(buf[:n]) != "re:"+data {
					t.Fatalf("datagram %d back through the relay: %q %v", i, buf[:n], err)
				}
				// Meanwhile the same port serves HTTPS and signaling.
				ts.healthy(t, browser)
				ts.healthy(t, bare)
				relay("during the relay " + data)
			}
			if n := ts.TURN().Allocations(); n != 1 {
				t.Errorf("%d allocations, want 1", n)
			}
		})
	}
}

// TestWelcomeTURNSWithTLSOnly: the welcome's ICE servers carry a turns: URL with TLS on, named
// for a host the certificate is valid for (the --public-url host, else the TURN public IP) at
// the HTTPS port (--public-url's, else 443 for https, else the listener's) — and none without
// TLS or with --turn-tls-listen off.
func TestWelcomeTURNSWithTLSOnly(t *testing.T) {
	turnOn := func(c *config.Config) { c.TURN, c.TURNPublicIP = true, "192.0.2.7" }
	t.Run("plain", func(t *testing.T) {
		ts := startServer(t, turnOn)
		w := dial(t, ts).join("r", nil)
		if hp, _, _ := turnsOf(t, w); hp != "" {
			t.Fatalf("without TLS: %s", w.Raw)
		}
	})
	for _, c := range []struct{ name, publicURL, listen, want string }{
		{"off", "", "off", ""},
		{"shared", "", "", "192.0.2.7:PORT"},
		{"public url", "https://call.example.com", "", "call.example.com:443"},
		{"public url with port", "https://call.example.com:8443", "", "call.example.com:8443"},
		{"own port, public url", "https://call.example.com", "127.0.0.1:0", "call.example.com:OWN"},
	} {
		t.Run(c.name, func(t *testing.T) {
			ts := startTLSServer(t, func(cfg *config.Config) {
				turnOn(cfg)
				cfg.PublicURL, cfg.TURNTLSListen = c.publicURL, c.listen
			})
			hc := ts.https(t, "127.0.0.1", []string{"http/1.1"})
			ctx, cancel := context.WithTimeout(context.Background(), waitFor)
			defer cancel()
			opts := &websocket.DialOptions{HTTPClient: hc}
			if c.publicURL != "" {
				opts.Host = strings.TrimPrefix(c.publicURL, "https://") // the Host pin
			}
			wc, _, err := websocket.Dial(ctx, "wss://"+ts.addr+"/ws", opts)
			if err != nil {
				t.Fatal(err)
			}
			defer wc.CloseNow()
			cl := &client{t: t, c: wc, msgs: make(chan msg, 64), errc: make(chan error, 1)}
			go cl.readLoop()
			w := cl.join("r", nil)
			_, port, _ := net.SplitHostPort(ts.addr)
			want := strings.ReplaceAll(c.want, "PORT", port)
			if c.listen != "" && c.listen != "off" {
				_, own, _ := net.SplitHostPort(ts.TURN().TLSURL())
				if own == port || own == "0" {
					t.Fatalf("own port %s", own)
				}
				want = strings.ReplaceAll(want, "OWN", own)
			}
			hp, user, _ := turnsOf(t, w)
			if hp != want {
				t.Fatalf("turns: names %q, want %q: %s", hp, want, w.Raw)
			}
			if ice, _ := iceOf(t, w.Raw); hp != "" && user != ice[1].Username {
				t.Errorf("turns: credentials differ from turn:'s")
			}
		})
	}
}

// closedWithin reports whether c is closed by the server (EOF or reset) within d.
func closedWithin(c net.Conn, d time.Duration) bool {
	_ = c.SetReadDeadline(time.Now().Add(d))
	var b [512]byte
	for {
		if _, err := c.Read(b[:]); err != nil {
			var ne net.Error
			return !errors.As(err, &ne) || !ne.Timeout()
		}
	}
}

// TestSharedTLSPortBadInput (issue 13): on the port HTTPS shares with TURN, each kind of bad
// input gets a clean refusal while another client's WSS call goes on and the server stays up:
// garbage instead of a TLS handshake (closed after an alert); plain HTTP (400); a STUN
// message before any TLS (closed after an alert); a ClientHello for an unknown name (served
// the one certificate: a client that checks it refuses it, one that does not gets through);
// a TCP connection that never says hello and a TLS one without ALPN that sends nothing (cut
// at --header-timeout, counted as tls-handshake timeouts); a client over its share of
// handshakes under way (--http-conns-per-client; closed at once, counted as tls-handshakes).
func TestSharedTLSPortBadInput(t *testing.T) {
	ts := startTLSServer(t, func(c *config.Config) {
		c.TURN = true
		c.HeaderTimeout = 500 * time.Millisecond
		c.HTTPConnsPerClient = 4
	})
	good := ts.https(t, "127.0.0.1", []string{"http/1.1"})
	_, relay := relayCall(t, ts.wss(t, good), ts.wss(t, ts.https(t, "127.0.0.1", nil)))
	raw := func(src string) net.Conn {
		t.Helper()
		d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}, Timeout: waitFor}
		c, err := d.Dial("tcp4", ts.addr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	after := func(what string) {
		t.Helper()
		relay("after " + what)
		ts.healthy(t, good)
	}

	g := raw("127.0.0.2")
	_, _ = g.Write([]byte("\x16\x03\x01\x00\x05garbage-that-is-not-a-client-hello"))
	if !closedWithin(g, waitFor) {
		t.Error("garbage handshake: left open")
	}
	after("garbage")

	p := raw("127.0.0.2")
	_, _ = p.Write([]byte("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"))
	_ = p.SetReadDeadline(time.Now().Add(waitFor))
	if b, _ := io.ReadAll(p); !strings.HasPrefix(string(b), "HTTP/1.0 400 Bad Request") {
		t.Errorf("plain HTTP to the TLS port: %q", b)
	}
	after("plain HTTP")

	s := raw("127.0.0.2")
	stunBinding := []byte{0x00, 0x01, 0x00, 0x00, 0x21, 0x12, 0xA4, 0x42, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12}
	_, _ = s.Write(stunBinding)
	if !closedWithin(s, waitFor) {
		t.Error("STUN before TLS: left open")
	}
	after("STUN before TLS")

	if c, err := tls.Dial("tcp4", ts.addr, &tls.Config{RootCAs: ts.pool, ServerName: "unknown.example"}); err == nil {
		c.Close()
		t.Error("a verifying client accepted the certificate for unknown.example")
	} else if !strings.Contains(err.Error(), "certificate") {
		t.Errorf("unknown SNI, verifying client: %v", err)
	}
	c, err := tls.Dial("tcp4", ts.addr, &tls.Config{InsecureSkipVerify: true, ServerName: "unknown.example", NextProtos: []string{"http/1.1"}}) //nolint:gosec // the test looks at what is served
	if err != nil {
		t.Fatalf("unknown SNI: %v", err)
	}
	c.Close()
	after("unknown SNI")

	silentTCP := raw("127.0.0.2")
	silentTLS, err := tls.Dial("tcp4", ts.addr, &tls.Config{RootCAs: ts.pool})
	if err != nil {
		t.Fatal(err)
	}
	defer silentTLS.Close()
	for _, c := range []net.Conn{silentTCP, silentTLS} {
		if !closedWithin(c, waitFor) {
			t.Error("a silent connection outlived --header-timeout")
		}
	}
	if v := ts.metric(t, `switchboard_timeouts_total{what="tls-handshake"}`); v != "2" {
		t.Errorf(`timeouts_total{what="tls-handshake"} = %q, want 2`, v)
	}
	after("silent connections")

	var hold []net.Conn
	for range 4 {
		hold = append(hold, raw("127.0.0.3"))
	}
	// The four are in handshake once the server has accepted them; a fifth is refused at
	// once. (A refusal before the four were accepted would hit the fifth all the same.)
	over := raw("127.0.0.3")
	if !closedWithin(over, 300*time.Millisecond) {
		t.Error("a client over its handshakes under way was not refused at once")
	}
	if v := ts.metric(t, `switchboard_connections_refused_total{reason="tls-handshakes"}`); v != "1" {
		t.Errorf(`connections_refused_total{reason="tls-handshakes"} = %q, want 1`, v)
	}
	ts.healthy(t, ts.https(t, "127.0.0.4", nil)) // another client gets through meanwhile
	after("over the handshake cap")
	for _, c := range hold {
		_ = c.Close()
	}
}
