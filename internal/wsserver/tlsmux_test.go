package wsserver

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/switchboard-rtc/switchboard/internal/hub"
	"github.com/switchboard-rtc/switchboard/internal/stats"
)

// sharedPort is a WebSocket server and /tls behind SharedTLSListener on loopback; STUN
// connections land in stun.
type sharedPort struct {
	addr   string
	pool   *x509.CertPool
	stun   chan net.Conn
	st     *stats.Stats
	closed atomic.Int64 // connections reported to ShareConfig.Closed
}

func startShared(t *testing.T, mod func(*ShareConfig)) *sharedPort {
	t.Helper()
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
	sp := &sharedPort{addr: inner.Addr().String(), pool: pool, stun: make(chan net.Conn, 16), st: h.Stats()}
	sc := ShareConfig{
		STUN:   func(c net.Conn) { sp.stun <- c },
		Stats:  sp.st,
		Closed: func() { sp.closed.Add(1) },
		Logger: discardLogger(),
	}
	if mod != nil {
		mod(&sc)
	}
	mux := http.NewServeMux()
	mux.Handle("GET /ws", s)
	// /tls says whether the request knows it came over TLS, as the Origin checks need.
	mux.HandleFunc("GET /tls", func(w http.ResponseWriter, r *http.Request) {
		st := r.TLS
		if st == nil {
			st = ConnTLS(r.Context())
		}
		if st == nil {
			_, _ = io.WriteString(w, "none")
			return
		}
		_, _ = io.WriteString(w, "alpn="+st.NegotiatedProtocol)
	})
	hs := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second, ConnContext: ConnTLSContext}
	done := make(chan error, 1)
	go func() {
		done <- hs.Serve(SharedTLSListener(inner, &tls.Config{Certificates: []tls.Certificate{cert}, NextProtos: []string{"http/1.1"}}, sc))
	}()
	t.Cleanup(func() {
		_ = s.Close()
		_ = hs.Close()
		if err := <-done; !errors.Is(err, http.ErrServerClosed) {
			t.Errorf("Serve: %v", err)
		}
		for {
			select {
			case c := <-sp.stun:
				_ = c.Close()
				continue
			default:
			}
			return
		}
	})
	return sp
}

// client is an HTTP client for the port that offers alpn (nil: no ALPN at all).
func (sp *sharedPort) client(alpn []string) *http.Client { return sp.clientFrom("127.0.0.1", alpn) }

// clientFrom is client from the local address src (another 127.0.0.0/8 address is another
// client).
func (sp *sharedPort) clientFrom(src string, alpn []string) *http.Client {
	tr := &http.Transport{DialTLSContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
		d := tls.Dialer{
			NetDialer: &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}},
			Config:    &tls.Config{RootCAs: sp.pool, NextProtos: alpn},
		}
		return d.DialContext(ctx, network, addr)
	}}
	return &http.Client{Transport: tr, Timeout: 5 * time.Second}
}

func (sp *sharedPort) get(t *testing.T, hc *http.Client, path string) string {
	t.Helper()
	resp, err := hc.Get("https://" + sp.addr + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

// TestSharedTLSListener: on a port shared with TURN, a client that negotiates http/1.1 and
// one with no ALPN both get HTTPS (the request knows it is TLS either way) and WebSockets on
// the event loops, relaying to each other; a STUN message sent first, or ALPN "stun.turn",
// goes to the STUN handler with every byte still to read.
func TestSharedTLSListener(t *testing.T) {
	sp := startShared(t, nil)
	withALPN, noALPN := sp.client([]string{"http/1.1"}), sp.client(nil)
	if got := sp.get(t, withALPN, "/tls"); got != "alpn=http/1.1" {
		t.Errorf("ALPN client: /tls says %q", got)
	}
	if got := sp.get(t, noALPN, "/tls"); got != "alpn=" {
		t.Errorf("client without ALPN: /tls says %q", got)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	dial := func(hc *http.Client) *websocket.Conn {
		t.Helper()
		c, _, err := websocket.Dial(ctx, "wss://"+sp.addr+"/ws", &websocket.DialOptions{HTTPClient: hc})
		if err != nil {
			t.Fatal(err)
		}
		c.SetReadLimit(1 << 20)
		t.Cleanup(func() { c.CloseNow() })
		return c
	}
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
	a, b := dial(withALPN), dial(noALPN)
	write(a, `{"type":"join","room":"shared"}`)
	wa := read(a)
	write(b, `{"type":"join","room":"shared"}`)
	wb := read(b)
	read(a) // peer-joined
	var ida, idb string
	_ = json.Unmarshal(wa["peer"], &ida)
	_ = json.Unmarshal(wb["peer"], &idb)
	big := bytes.Repeat([]byte("s"), 40_000)
	write(a, `{"type":"message","target":"`+idb+`","data":"`+string(big)+`"}`)
	if m := read(b); len(m["data"]) != len(big)+2 {
		t.Fatalf("a→b: %.60s", m["data"])
	}
	write(b, `{"type":"message","target":"`+ida+`","data":"back"}`)
	if m := read(a); string(m["data"]) != `"back"` {
		t.Fatalf("b→a: %s", m["data"])
	}

	// STUN first, without ALPN: the handler reads the very message sent.
	msg := stunMessage(1, 0, []byte("binding"))
	c, err := tls.Dial("tcp", sp.addr, &tls.Config{RootCAs: sp.pool})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Write(msg); err != nil {
		t.Fatal(err)
	}
	sc := waitConn(t, sp.stun)
	got := make([]byte, len(msg))
	_ = sc.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.ReadFull(sc, got); err != nil || !bytes.Equal(got, msg) {
		t.Fatalf("STUN handler read % x (%v), want % x", got, err, msg)
	}
	_ = sc.Close()
	// ALPN stun.turn: no sniffing, the handler gets it at once.
	c2, err := tls.Dial("tcp", sp.addr, &tls.Config{RootCAs: sp.pool, NextProtos: []string{ALPNTURN}})
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	if p := c2.ConnectionState().NegotiatedProtocol; p != ALPNTURN {
		t.Fatalf("negotiated %q", p)
	}
	_ = waitConn(t, sp.stun).Close()
	waitUntil(t, "both STUN connections reported closed", func() bool { return sp.closed.Load() == 2 })
}

// TestSharedTLSListenerRefusals: a client over its cap of handshakes under way is closed at
// accept and counted, another client still gets through; a handshake that never comes and a
// TLS connection without ALPN that sends nothing are cut at the deadline and counted; plain
// HTTP gets net/http's 400; garbage is closed.
func TestSharedTLSListenerRefusals(t *testing.T) {
	sp := startShared(t, func(sc *ShareConfig) {
		sc.PendingPerClient = 2
		sc.HandshakeTimeout = 300 * time.Millisecond
	})
	silent := func(src string) net.Conn {
		t.Helper()
		d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}}
		c, err := d.Dial("tcp", sp.addr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	closedWithin := func(c net.Conn, d time.Duration) bool {
		_ = c.SetReadDeadline(time.Now().Add(d))
		var b [64]byte
		for {
			if _, err := c.Read(b[:]); err != nil {
				var ne net.Error
				return !errors.As(err, &ne) || !ne.Timeout()
			}
		}
	}
	held := []net.Conn{silent("127.0.0.1"), silent("127.0.0.1")}
	over := silent("127.0.0.1")
	other := sp.clientFrom("127.0.0.2", nil)
	if got := sp.get(t, other, "/tls"); got != "alpn=" {
		t.Errorf("another client: %q", got)
	}
	if !closedWithin(over, 250*time.Millisecond) {
		t.Error("the connection over the per-client cap was not closed at once")
	}
	if n := sp.st.RefusedTLSHandshakes.Load(); n != 1 {
		t.Errorf("RefusedTLSHandshakes = %d, want 1", n)
	}
	for _, c := range held {
		if !closedWithin(c, 5*time.Second) {
			t.Error("a silent connection outlived the handshake deadline")
		}
	}
	// A TLS client without ALPN that sends nothing after its handshake.
	quiet, err := tls.Dial("tcp", sp.addr, &tls.Config{RootCAs: sp.pool})
	if err != nil {
		t.Fatal(err)
	}
	defer quiet.Close()
	if !closedWithin(quiet, 5*time.Second) {
		t.Error("a silent TLS connection outlived the deadline")
	}
	waitUntil(t, "three timeouts counted", func() bool { return sp.st.Timeouts[stats.TimeoutTLSHandshake].Load() == 3 })

	plain := silent("127.0.0.2")
	_, _ = plain.Write([]byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n"))
	_ = plain.SetReadDeadline(time.Now().Add(5 * time.Second))
	if b, _ := io.ReadAll(plain); !bytes.HasPrefix(b, []byte("HTTP/1.0 400 Bad Request")) {
		t.Errorf("plain HTTP got %q", b)
	}
	garbage := silent("127.0.0.2")
	_, _ = garbage.Write([]byte("\x16\x03\x01\x00\x05garbage"))
	if !closedWithin(garbage, 5*time.Second) {
		t.Error("garbage left open")
	}
	if got := sp.get(t, other, "/tls"); got != "alpn=" {
		t.Errorf("another client after all that: %q", got)
	}
	// Every connection not for net/http was reported closed: 3 timed out, 1 refused, plain
	// HTTP, garbage.
	waitUntil(t, "closed connections reported", func() bool { return sp.closed.Load() == 6 })
}

func waitConn(t *testing.T, ch chan net.Conn) net.Conn {
	t.Helper()
	select {
	case c := <-ch:
		return c
	case <-time.After(5 * time.Second):
		t.Fatal("no connection for the STUN handler")
	}
	return nil
}

// BenchmarkTLSHandshakes: a new TLS connection (ECDSA P-256, ALPN http/1.1 as browsers offer
// it) and one HTTP request on it, on TLSListener (the handshake inside net/http) against
// SharedTLSListener (the handshake on a goroutine of its own first), in one run.
//
//	go test -run '^$' -bench TLSHandshakes -benchtime 2000x ./internal/wsserver/
func BenchmarkTLSHandshakes(b *testing.B) {
	for _, shared := range []bool{false, true} {
		name := map[bool]string{false: "net-http", true: "shared"}[shared]
		b.Run(name, func(b *testing.B) {
			cert, pool := testCert(b)
			inner, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				b.Fatal(err)
			}
			cfg := &tls.Config{Certificates: []tls.Certificate{cert}, NextProtos: []string{"http/1.1"}}
			ln := TLSListener(inner, cfg)
			if shared {
				ln = SharedTLSListener(inner, cfg, ShareConfig{STUN: func(c net.Conn) { _ = c.Close() }, Logger: discardLogger()})
			}
			hs := &http.Server{ReadHeaderTimeout: 5 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
				_, _ = io.WriteString(w, "ok")
			})}
			done := make(chan struct{})
			go func() { defer close(done); _ = hs.Serve(ln) }()
			defer func() { _ = hs.Close(); <-done }()
			tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, NextProtos: []string{"http/1.1"}}, DisableKeepAlives: true}
			defer tr.CloseIdleConnections()
			hc := &http.Client{Transport: tr}
			url := "https://" + inner.Addr().String() + "/"
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					resp, err := hc.Get(url)
					if err != nil {
						b.Error(err)
						return
					}
					_, _ = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
				}
			})
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "handshakes/s")
		})
	}
}
