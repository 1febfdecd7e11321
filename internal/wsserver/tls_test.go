package wsserver

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/switchboard-rtc/switchboard/internal/hub"
)

// testCert returns a self-signed certificate for 127.0.0.1 and a pool that trusts it.
func testCert(t testing.TB) (tls.Certificate, *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "switchboard test"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		IPAddresses:  []net.IP{net.ParseIP("127.0.0.1")},
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(leaf)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}, pool
}

// TestWebSocketOverTLS: WebSockets over TLS are served by the event loops like plain ones:
// join, relay small and large messages (several TLS records, frames split across reads), in
// both directions, with a real client that verifies the certificate.
func TestWebSocketOverTLS(t *testing.T) {
	cert, pool := testCert(t)
	h, err := hub.New(hub.Config{Logger: discardLogger()})
	if err != nil {
		t.Fatal(err)
	}
	s, err := New(Config{Hub: h, Logger: discardLogger()})
	if err != nil {
		t.Fatal(err)
	}
	inner, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hs := &http.Server{Handler: s, ReadHeaderTimeout: 5 * time.Second}
	done := make(chan error, 1)
	go func() { done <- hs.Serve(TLSListener(inner, &tls.Config{Certificates: []tls.Certificate{cert}})) }()
	t.Cleanup(func() {
		_ = s.Close()
		_ = hs.Close()
		<-done
	})
	url := "wss://" + inner.Addr().String() + "/ws"
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	dial := func() *websocket.Conn {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		c, _, err := websocket.Dial(ctx, url, &websocket.DialOptions{HTTPClient: hc})
		if err != nil {
			t.Fatal(err)
		}
		c.SetReadLimit(1 << 20)
		t.Cleanup(func() { c.CloseNow() })
		return c
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	read := func(c *websocket.Conn) map[string]json.RawMessage {
		t.Helper()
		_, b, err := c.Read(ctx)
		if err != nil {
			t.Fatal(err)
		}
		var m map[string]json.RawMessage
		if err := json.Unmarshal(b, &m); err != nil {
			t.Fatalf("%q: %v", b, err)
		}
		return m
	}
	write := func(c *websocket.Conn, s string) {
		t.Helper()
		if err := c.Write(ctx, websocket.MessageText, []byte(s)); err != nil {
			t.Fatal(err)
		}
	}
	a, b := dial(), dial()
	write(a, `{"type":"join","room":"tls"}`)
	write(b, `{"type":"join","room":"tls"}`)
	read(a) // welcome
	wb := read(b)
	read(a) // peer-joined
	var self string
	_ = json.Unmarshal(wb["peer"], &self)
	big := strings.Repeat("z", 60_000)
	for i, data := range []string{"small", big, "after"} {
		write(a, `{"type":"message","target":"`+self+`","data":"`+data+`"}`)
		m := read(b)
		if string(m["data"]) != `"`+data+`"` {
			t.Fatalf("message %d: %.80s", i, m["data"])
		}
	}
}

func discardLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }
