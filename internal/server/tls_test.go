package server_test

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/switchboard-rtc/switchboard/internal/certs"
	"github.com/switchboard-rtc/switchboard/internal/config"
)

// TestHTTPSAndWSS (issue 13): with --tls-cert/--tls-key the listener speaks HTTPS and WSS (the
// WebSockets on the event loops); renewed files are served to new connections without
// dropping connected WebSockets; plain HTTP and garbage sent to the TLS port are refused and
// the server goes on.
func TestHTTPSAndWSS(t *testing.T) {
	dir := t.TempDir()
	cp, kp := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	first, err := certs.SelfSigned(nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := certs.WritePEM(first, cp, kp); err != nil {
		t.Fatal(err)
	}
	ts := startServer(t, func(c *config.Config) { c.TLSCert, c.TLSKey = cp, kp })
	addr := strings.TrimPrefix(ts.base, "http://")
	pool := x509.NewCertPool()
	pool.AddCert(first.Leaf)
	served := func() *x509.Certificate { // the certificate a new connection gets
		t.Helper()
		c, err := tls.Dial("tcp", addr, &tls.Config{InsecureSkipVerify: true})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		return c.ConnectionState().PeerCertificates[0]
	}
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}, Timeout: waitFor}
	t.Cleanup(hc.CloseIdleConnections)
	if st, body := getFrom(t, hc, "https://"+addr+"/healthz"); st != http.StatusOK {
		t.Fatalf("https healthz: %d %q", st, body)
	}
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	wss := func() *client {
		c, _, err := websocket.Dial(ctx, "wss://"+addr+"/ws", &websocket.DialOptions{HTTPClient: hc})
		if err != nil {
			t.Fatal(err)
		}
		c.SetReadLimit(1 << 20)
		cl := &client{t: t, c: c, msgs: make(chan msg, 64), errc: make(chan error, 1)}
		go cl.readLoop()
		t.Cleanup(func() { c.CloseNow() })
		return cl
	}
	a, b := wss(), wss()
	a.join("tls", nil)
	b.join("tls", nil)
	a.expect("peer-joined")
	relay := func(data string) {
		t.Helper()
		a.send(map[string]any{"type": "message", "target": b.id, "data": data})
		if m := b.expect("message"); string(m.Data) != `"`+data+`"` {
			t.Fatalf("relayed %.60s", m.Data)
		}
	}
	relay("over tls")
	relay(strings.Repeat("r", 60_000))

	// A renewal: new connections get the new certificate, the call goes on.
	second, _ := certs.SelfSigned(nil)
	if err := certs.WritePEM(second, cp, kp); err != nil {
		t.Fatal(err)
	}
	later := time.Now().Add(time.Minute)
	_ = os.Chtimes(cp, later, later)
	eventually(t, "the renewed certificate served", func() bool { return served().Equal(second.Leaf) })
	relay("after renewal")

	// Plain HTTP to the TLS port: Go's answer is a 400; garbage: the connection is closed.
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_, _ = c.Write([]byte("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"))
	_ = c.SetReadDeadline(time.Now().Add(waitFor))
	if resp, err := http.ReadResponse(bufio.NewReader(c), nil); err != nil || resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("plain HTTP to the TLS port: %v %v", resp, err)
	}
	g, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	_, _ = g.Write([]byte("\x16\x03\x01\x00\x05garbage-that-is-not-a-client-hello"))
	_ = g.SetReadDeadline(time.Now().Add(waitFor))
	var buf [256]byte
	for {
		if _, err := g.Read(buf[:]); err != nil {
			break // closed (after an alert)
		}
	}
	relay("still up")
}
