package turnserver

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/pion/turn/v5"

	"github.com/switchboard-rtc/switchboard/internal/certs"
)

// testTLS returns a server TLS configuration for a self-signed loopback certificate and a
// client configuration that trusts it.
func testTLS(t testing.TB) (server, client *tls.Config) {
	t.Helper()
	c, err := certs.SelfSigned(nil)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(c.Leaf)
	return &tls.Config{Certificates: []tls.Certificate{*c}, NextProtos: []string{"http/1.1"}},
		&tls.Config{RootCAs: pool, ServerName: "127.0.0.1"}
}

// pionTLSClient is a real TURN client (pion/turn) over TLS to addr from the local address src.
func pionTLSClient(t testing.TB, addr string, cfg *tls.Config, user, pass, src string) *turn.Client {
	t.Helper()
	d := tls.Dialer{NetDialer: &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}, Timeout: 5 * time.Second}, Config: cfg}
	c, err := d.DialContext(context.Background(), "tcp4", addr)
	if err != nil {
		t.Fatal(err)
	}
	conn := turn.NewSTUNConn(c)
	cl, err := turn.NewClient(&turn.ClientConfig{
		STUNServerAddr: addr, TURNServerAddr: addr, Username: user, Password: pass,
		Conn: conn, LoggerFactory: quietPion, RTO: 200 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := cl.Listen(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cl.Close(); _ = conn.Close() })
	return cl
}

// relayRoundTrip allocates through cl and exchanges a datagram with a UDP peer both ways.
func relayRoundTrip(t testing.TB, cl *turn.Client) {
	t.Helper()
	relay, err := cl.Allocate()
	if err != nil {
		t.Fatalf("Allocate: %v", err)
	}
	defer relay.Close()
	peer, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer peer.Close()
	if _, err := relay.WriteTo([]byte("to peer"), peer.LocalAddr()); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 100)
	_ = peer.SetReadDeadline(time.Now().Add(3 * time.Second))
	if n, _, err := peer.ReadFrom(buf); err != nil || string(buf[:n]) != "to peer" {
		t.Fatalf("peer read %q: %v", buf[:n], err)
	}
	if _, err := peer.WriteTo([]byte("to client"), relay.LocalAddr()); err != nil {
		t.Fatal(err)
	}
	_ = relay.SetReadDeadline(time.Now().Add(3 * time.Second))
	if n, from, err := relay.ReadFrom(buf); err != nil || string(buf[:n]) != "to client" || from.String() != peer.LocalAddr().String() {
		t.Fatalf("relay read %q from %v: %v", buf[:n], from, err)
	}
}

// TestRelayOverTLS: a real TURN client allocates over TLS on a port of the server's own
// (ListenTLS) and over a connection handed over already in TLS (HandleTLS, as the HTTPS port
// does), and relays both ways; turns: URLs are handed out only once advertised.
func TestRelayOverTLS(t *testing.T) {
	s := startServer(t, allowLoopback)
	srvCfg, cliCfg := testTLS(t)
	if urls := strings.Join(s.ICEServers("p", time.Now())[1].URLs, " "); strings.Contains(urls, "turns:") {
		t.Fatalf("turns: before AdvertiseTLS: %s", urls)
	}
	addr, err := s.ListenTLS("127.0.0.1:0", srvCfg)
	if err != nil {
		t.Fatal(err)
	}
	s.AdvertiseTLS("turn.example.org", addr.Port)
	ice := s.ICEServers("p", time.Now())[1]
	if want := "turns:turn.example.org:" + itoa(addr.Port) + "?transport=tcp"; ice.URLs[len(ice.URLs)-1] != want {
		t.Fatalf("URLs %v, want %s last", ice.URLs, want)
	}
	t.Run("own port", func(t *testing.T) {
		u, p := s.Credentials("own", time.Now())
		// A client offering ALPN stun.turn (RFC 7443) is served too.
		cfg := cliCfg.Clone()
		cfg.NextProtos = []string{"stun.turn"}
		relayRoundTrip(t, pionTLSClient(t, addr.String(), cfg, u, p, "127.0.0.1"))
	})
	t.Run("handed over", func(t *testing.T) {
		front, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer front.Close()
		go func() {
			c, err := front.Accept()
			if err != nil {
				return
			}
			tc := tls.Server(c, srvCfg)
			if tc.Handshake() != nil {
				_ = c.Close()
				return
			}
			s.HandleTLS(tc)
		}()
		u, p := s.Credentials("handed", time.Now())
		relayRoundTrip(t, pionTLSClient(t, front.Addr().String(), cliCfg, u, p, "127.0.0.1"))
	})
}

// TestTLSSharesTCPCaps: TLS connections count against the same per-client cap as TCP ones
// (one table), are closed at accept over it, and are closed when they do not allocate in
// time, handshake or not.
func TestTLSSharesTCPCaps(t *testing.T) {
	s := startServer(t, func(c *Config) {
		allowLoopback(c)
		c.TCPPerClient = 2
		c.AllocateWithin = 300 * time.Millisecond
	})
	srvCfg, cliCfg := testTLS(t)
	addr, err := s.ListenTLS("127.0.0.1:0", srvCfg)
	if err != nil {
		t.Fatal(err)
	}
	dial := func(to string) net.Conn {
		t.Helper()
		c, err := net.Dial("tcp4", to)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	closedWithin := func(c net.Conn, d time.Duration) bool {
		_ = c.SetReadDeadline(time.Now().Add(d))
		var b [256]byte
		for {
			if _, err := c.Read(b[:]); err != nil {
				var ne net.Error
				return !errors.As(err, &ne) || !ne.Timeout()
			}
		}
	}
	tcp := dial(s.TCPAddr().String())
	tlsSilent, err := tls.Dial("tcp4", addr.String(), cliCfg) // handshake done, no Allocate
	if err != nil {
		t.Fatal(err)
	}
	defer tlsSilent.Close()
	waitUntil(t, "two connections tracked", func() bool { return s.table.count() == 2 })
	over := dial(addr.String())
	if !closedWithin(over, time.Second) {
		t.Error("a TLS connection over the client's cap was left open")
	}
	if n := s.Stats().TCPPerClient.Load(); n != 1 {
		t.Errorf("TCPPerClient = %d, want 1", n)
	}
	// Another client is not affected.
	u, p := s.Credentials("other", time.Now())
	relayRoundTrip(t, pionTLSClient(t, addr.String(), cliCfg, u, p, "127.0.0.2"))
	for _, c := range []net.Conn{tcp, tlsSilent} {
		if !closedWithin(c, 5*time.Second) {
			t.Error("a connection that did not allocate outlived the deadline")
		}
	}
	waitUntil(t, "no-allocate closes counted", func() bool { return s.Stats().TCPNoAllocate.Load() == 2 })
}

func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.NewTimer(5 * time.Second)
	defer deadline.Stop()
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		select {
		case <-deadline.C:
			t.Fatalf("timed out waiting for %s", what)
		case <-tick.C:
		}
	}
}
