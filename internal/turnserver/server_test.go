package turnserver

import (
	"context"
	"io"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/pion/logging"
	"github.com/pion/stun/v4"
	"github.com/pion/turn/v5"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const testSecret = "test-secret"

// startServer runs a server on a free loopback port for the test.
func startServer(t testing.TB, mod func(*Config)) *Server {
	t.Helper()
	cfg := Config{Listen: "127.0.0.1:0", Secret: []byte(testSecret), Logger: testLogger(t)}
	if mod != nil {
		mod(&cfg)
	}
	s, err := New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := s.Close(ctx); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return s
}

func allowLoopback(c *Config) { c.AllowPeers = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")} }

var quietPion = logging.NewDefaultLoggerFactory()

func init() { quietPion.Writer = io.Discard }

// pionClient is a real TURN client (pion/turn) over UDP, or over TCP when tcp is set.
func pionClient(t testing.TB, s *Server, user, pass string, tcp bool) *turn.Client {
	t.Helper()
	return pionClientFrom(t, s, user, pass, tcp, "127.0.0.1")
}

// pionClientFrom is pionClient from the local address src (a 127.0.0.0/8 address stands for
// a distinct client).
func pionClientFrom(t testing.TB, s *Server, user, pass string, tcp bool, src string) *turn.Client {
	t.Helper()
	var conn net.PacketConn
	if tcp {
		d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}, Timeout: 5 * time.Second}
		c, err := d.Dial("tcp4", s.TCPAddr().String())
		if err != nil {
			t.Fatal(err)
		}
		conn = turn.NewSTUNConn(c)
	} else {
		c, err := net.ListenPacket("udp4", net.JoinHostPort(src, "0"))
		if err != nil {
			t.Fatal(err)
		}
		// Room for a window of 256 datagrams relayed to the client (startloss_test.go): the
		// client's socket must not be what drops them.
		_ = setReadBuffer(c.(*net.UDPConn), ReadBuffer)
		conn = c
	}
	cl, err := turn.NewClient(&turn.ClientConfig{
		STUNServerAddr: s.Addr().String(),
		TURNServerAddr: s.Addr().String(),
		Username:       user,
		Password:       pass,
		Conn:           conn,
		LoggerFactory:  quietPion,
		RTO:            200 * time.Millisecond,
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

func TestICEServers(t *testing.T) {
	s := startServer(t, nil)
	now := time.Unix(1_800_000_000, 0)
	got := s.ICEServers("peer1", now)
	host := "127.0.0.1:" + itoa(s.Addr().Port)
	if len(got) != 2 || got[0].URLs[0] != "stun:"+host || got[1].URLs[0] != "turn:"+host+"?transport=udp" ||
		got[1].URLs[1] != "turn:"+host+"?transport=tcp" {
		t.Fatalf("ICEServers = %+v", got)
	}
	if got[1].Username != "1800000600:peer1" || got[1].Credential != Password([]byte(testSecret), "1800000600:peer1") {
		t.Errorf("credentials %q / %q", got[1].Username, got[1].Credential)
	}
	if s.TCPAddr().Port != s.Addr().Port {
		t.Errorf("TCP port %d != UDP port %d", s.TCPAddr().Port, s.Addr().Port)
	}
}

// TestRelayUDPAndTCP: a real client allocates over UDP and over TCP with minted credentials
// and exchanges datagrams with a peer through the relay both ways.
func TestRelayUDPAndTCP(t *testing.T) {
	s := startServer(t, allowLoopback)
	for _, tcp := range []bool{false, true} {
		name := map[bool]string{false: "udp", true: "tcp"}[tcp]
		t.Run(name, func(t *testing.T) {
			u, p := s.Credentials("peer-"+name, time.Now())
			cl := pionClient(t, s, u, p, tcp)
			relay, err := cl.Allocate()
			if err != nil {
				t.Fatalf("Allocate: %v", err)
			}
			defer relay.Close()
			if ip := relay.LocalAddr().(*net.UDPAddr).IP; !ip.Equal(net.IPv4(127, 0, 0, 1)) {
				t.Errorf("relayed address %v, want the public IP 127.0.0.1", relay.LocalAddr())
			}
			peer := newUDPListener(t, "127.0.0.1:0")
			if _, err := relay.WriteTo([]byte("to peer"), peer.LocalAddr()); err != nil {
				t.Fatal(err)
			}
			expectDatagram(t, peer, "to peer")
			if _, err := peer.WriteTo([]byte("to client"), relay.LocalAddr()); err != nil {
				t.Fatal(err)
			}
			buf := make([]byte, 100)
			_ = relay.SetReadDeadline(time.Now().Add(3 * time.Second))
			n, from, err := relay.ReadFrom(buf)
			if err != nil || string(buf[:n]) != "to client" || from.String() != peer.LocalAddr().String() {
				t.Fatalf("relay read %q from %v: %v", buf[:n], from, err)
			}
		})
	}
}

func TestCredentialsRefused(t *testing.T) {
	s := startServer(t, allowLoopback)
	now := time.Now()
	good, _ := Mint([]byte(testSecret), "p", now.Add(time.Minute))
	expiredU, expiredP := Mint([]byte(testSecret), "p", now.Add(-time.Second))
	forgedU, forgedP := Mint([]byte("not the secret"), "p", now.Add(time.Minute))
	farU, farP := Mint([]byte(testSecret), "p", now.Add(MaxTTL+time.Hour))
	tests := []struct{ name, user, pass string }{
		{"expired", expiredU, expiredP},
		{"forged", forgedU, forgedP},
		{"wrong password for a good username", good, Password([]byte(testSecret), good+"x")},
		{"expiry beyond the cap", farU, farP},
		{"no expiry", "p", Password([]byte(testSecret), "p")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, tcp := range []bool{false, true} {
				cl := pionClient(t, s, tt.user, tt.pass, tcp)
				if relay, err := cl.Allocate(); err == nil {
					_ = relay.Close()
					t.Fatalf("Allocate (tcp %v) succeeded", tcp)
				}
			}
		})
	}
	t.Run("wrong realm", func(t *testing.T) {
		u, p := Mint([]byte(testSecret), "p", now.Add(time.Minute))
		c := newRawClient(t, s.Addr(), u, p)
		c.realm = "evil"
		if _, code := c.allocate(); code != stun.CodeUnauthorized {
			t.Fatalf("allocate with realm %q: code %d, want 401", c.realm, code)
		}
		c.realm = "" // the server's realm: the same credentials work
		c.nonce = nil
		if _, code := c.allocate(); code != 0 {
			t.Fatalf("allocate with the right realm: code %d", code)
		}
	})
	if n := s.Stats().AuthFailures.Load(); n < int64(len(tests)*2+1) {
		t.Errorf("AuthFailures = %d", n)
	}
}

// TestDeniedPeersEveryPath: with only 127.0.0.2 allowed, nothing a client does makes the relay
// send to 127.0.0.1 (nor to any other denied address): CreatePermission and ChannelBind are
// refused with 403, Send indications are dropped, TCP Connect is refused; a sentinel on
// 127.0.0.1 receives zero bytes while a marker on 127.0.0.2, sent after, arrives.
func TestDeniedPeersEveryPath(t *testing.T) {
	s := startServer(t, func(c *Config) { c.AllowPeers = []netip.Prefix{netip.MustParsePrefix("127.0.0.2/32")} })
	sentinel := newUDPListener(t, "127.0.0.1:0")
	sentinelIP, sentinelPort := net.IPv4(127, 0, 0, 1), sentinel.LocalAddr().(*net.UDPAddr).Port
	tcpSentinel, err := net.ListenTCP("tcp4", &net.TCPAddr{IP: sentinelIP})
	if err != nil {
		t.Fatal(err)
	}
	defer tcpSentinel.Close()
	marker := newUDPListener(t, "127.0.0.2:0")
	markerAddr := marker.LocalAddr().(*net.UDPAddr)

	u, p := s.Credentials("attacker", time.Now())
	c := newRawClient(t, s.Addr(), u, p)
	if _, code := c.allocate(); code != 0 {
		t.Fatalf("allocate: %d", code)
	}
	denied := []string{"127.0.0.1", "0.0.0.0", "10.0.0.1", "100.64.0.1", "169.254.169.254", "172.16.0.1",
		"192.168.1.1", "198.18.0.1", "224.0.0.1", "255.255.255.255", "::ffff:127.0.0.1", "::1", "::",
		"fd00::1", "fd00:ec2::254", "fe80::1", "64:ff9b::7f00:1", "2002:7f00:1::"}
	for _, d := range denied {
		ip := net.ParseIP(d)
		if _, code := c.do(stun.MethodCreatePermission, peerAddr(ip, sentinelPort)); code == 0 {
			t.Errorf("CreatePermission %s succeeded", d)
		}
		if _, code := c.do(stun.MethodChannelBind, attr(stun.AttrChannelNumber, []byte{0x40, 0x01, 0, 0}), peerAddr(ip, sentinelPort)); code != stun.CodeForbidden && code != stun.CodePeerAddrFamilyMismatch {
			t.Errorf("ChannelBind %s: code %d, want 403 (or 443 for IPv6 on this IPv4 allocation)", d, code)
		}
	}
	if _, code := c.do(stun.MethodCreatePermission, peerAddr(sentinelIP, sentinelPort)); code != stun.CodeForbidden {
		t.Errorf("CreatePermission 127.0.0.1: code %d, want 403", code)
	}
	// Send indications need no answer: they are dropped without a permission.
	c.send(c.build(stun.NewType(stun.MethodSend, stun.ClassIndication), peerAddr(sentinelIP, sentinelPort), attr(stun.AttrData, []byte("leak"))))
	c.send(c.build(stun.NewType(stun.MethodSend, stun.ClassIndication), peerAddr(net.ParseIP("::ffff:127.0.0.1"), sentinelPort), attr(stun.AttrData, []byte("leak"))))
	// The same client reaches the allowed marker, after all of the above.
	if _, code := c.do(stun.MethodCreatePermission, peerAddr(markerAddr.IP, markerAddr.Port)); code != 0 {
		t.Fatalf("CreatePermission 127.0.0.2: code %d", code)
	}
	if _, code := c.do(stun.MethodChannelBind, attr(stun.AttrChannelNumber, []byte{0x40, 0x02, 0, 0}), peerAddr(markerAddr.IP, markerAddr.Port)); code != 0 {
		t.Fatalf("ChannelBind 127.0.0.2: code %d", code)
	}
	c.send(c.build(stun.NewType(stun.MethodSend, stun.ClassIndication), peerAddr(markerAddr.IP, markerAddr.Port), attr(stun.AttrData, []byte("marker"))))
	expectDatagram(t, marker, "marker")
	// Channel data on the channel bound to the marker goes to the marker only.
	if _, err := c.conn.WriteTo(append([]byte{0x40, 0x02, 0, 6}, "chdata"...), s.Addr()); err != nil {
		t.Fatal(err)
	}
	expectDatagram(t, marker, "chdata")

	// TCP relay (RFC 6062): Connect to the sentinel is refused, to the marker it works.
	tcpMarker, err := net.ListenTCP("tcp4", &net.TCPAddr{IP: net.IPv4(127, 0, 0, 2)})
	if err != nil {
		t.Fatal(err)
	}
	defer tcpMarker.Close()
	cl := pionClient(t, s, u, p, true)
	alloc, err := cl.AllocateTCP()
	if err != nil {
		t.Fatalf("AllocateTCP: %v", err)
	}
	defer alloc.Close()
	if conn, err := alloc.Dial("tcp", tcpSentinel.Addr().String()); err == nil {
		_ = conn.Close()
		t.Error("TCP relay to 127.0.0.1 succeeded")
	}
	conn, err := alloc.Dial("tcp", tcpMarker.Addr().String())
	if err != nil {
		t.Fatalf("TCP relay to 127.0.0.2: %v", err)
	}
	defer conn.Close()
	_ = tcpMarker.SetDeadline(time.Now().Add(3 * time.Second))
	got, err := tcpMarker.Accept()
	if err != nil {
		t.Fatalf("marker accept: %v", err)
	}
	_ = got.Close()

	expectSilence(t, sentinel, 200*time.Millisecond)
	_ = tcpSentinel.SetDeadline(time.Now().Add(50 * time.Millisecond))
	if conn, err := tcpSentinel.Accept(); err == nil {
		_ = conn.Close()
		t.Error("TCP sentinel on 127.0.0.1 got a connection")
	}
	if s.Stats().Denied.Load() == 0 {
		t.Error("Denied counter is 0")
	}
}

// TestRelaySocketFilter checks the second line of defense on its own: relay sockets refuse to
// write to or read from denied peers, and TCP Connect refuses them, whatever pion let through.
func TestRelaySocketFilter(t *testing.T) {
	q := &quota{perUser: 2, total: 2, users: map[string]int{}}
	g := &relayGen{
		inner:  &turn.RelayAddressGeneratorPortRange{RelayAddress: net.IPv4(127, 0, 0, 1), Address: "127.0.0.1", MinPort: 40000, MaxPort: 40100},
		filter: NewPeerFilter([]netip.Prefix{netip.MustParsePrefix("127.0.0.2/32")}),
		quota:  q, min: 40000, max: 40100,
	}
	if err := g.Validate(); err != nil {
		t.Fatal(err)
	}
	pc, _, err := g.AllocatePacketConn(turn.AllocateListenerConfig{Network: "udp4", UserID: "u"})
	if err != nil {
		t.Fatal(err)
	}
	sentinel := newUDPListener(t, "127.0.0.1:0")
	if _, err := pc.WriteTo([]byte("x"), sentinel.LocalAddr()); err == nil {
		t.Error("WriteTo a denied peer succeeded")
	}
	// A datagram from a denied address is dropped; one from 127.0.0.2 is read.
	allowed := newUDPListener(t, "127.0.0.2:0")
	_, _ = sentinel.WriteTo([]byte("denied"), pc.LocalAddr())
	_, _ = allowed.WriteTo([]byte("allowed"), pc.LocalAddr())
	buf := make([]byte, 64)
	_ = pc.SetReadDeadline(time.Now().Add(3 * time.Second))
	if n, from, err := pc.ReadFrom(buf); err != nil || string(buf[:n]) != "allowed" {
		t.Errorf("ReadFrom = %q from %v, %v; want only the allowed datagram", buf[:n], from, err)
	}
	if _, err := g.AllocateConn(turn.AllocateConnConfig{Network: "tcp4", RemoteAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 1}}); err == nil {
		t.Error("AllocateConn to 127.0.0.1 succeeded")
	}
	if _, _, err := g.AllocatePacketConn(turn.AllocateListenerConfig{Network: "udp4", UserID: "u", RequestedPort: 1000}); err == nil {
		t.Error("a requested port outside the range was granted")
	}
	if q.count() != 1 {
		t.Errorf("quota count %d, want 1", q.count())
	}
	_ = pc.Close()
	_ = pc.Close()
	if q.count() != 0 {
		t.Errorf("quota count after double close %d, want 0", q.count())
	}
}

// TestQuotas: one user cannot take more than its quota, the total cap holds, and slots come
// back when allocations end.
func TestQuotas(t *testing.T) {
	s := startServer(t, func(c *Config) { c.MinPort, c.MaxPort, c.UserQuota, c.MaxAllocations = 45000, 45019, 5, 12 })
	allocate := func(user string, n int) (ok int, clients []*rawClient) {
		u, p := s.Credentials(user, time.Now())
		for range n {
			c := newRawClient(t, s.Addr(), u, p)
			if _, code := c.allocate(); code == 0 {
				ok++
				clients = append(clients, c)
			} else if code != stun.CodeAllocQuotaReached && code != stun.CodeInsufficientCapacity {
				t.Fatalf("allocate: unexpected code %d", code)
			}
		}
		return ok, clients
	}
	if ok, _ := allocate("greedy", 20); ok != 5 {
		t.Fatalf("greedy user got %d allocations, want its quota 5", ok)
	}
	if ok, _ := allocate("second", 5); ok != 5 {
		t.Fatalf("second user got %d allocations, want 5", ok)
	}
	ok, third := allocate("third", 5)
	if ok != 2 {
		t.Fatalf("third user got %d allocations, want the 2 left under the total cap of 12", ok)
	}
	if s.Allocations() != 12 {
		t.Fatalf("Allocations = %d", s.Allocations())
	}
	// A refresh with lifetime 0 deletes an allocation; its slot is free again.
	if _, code := third[0].do(stun.MethodRefresh, attr(stun.AttrLifetime, []byte{0, 0, 0, 0})); code != 0 {
		t.Fatalf("refresh 0: %d", code)
	}
	if ok, _ := allocate("fourth", 1); ok != 1 {
		t.Fatal("freed slot not reusable")
	}
}

// TestIPQuota: allocations from one address stop at the IP quota whatever the peer ids, and
// come back when one ends.
func TestIPQuota(t *testing.T) {
	s := startServer(t, func(c *Config) { c.IPQuota = 3 })
	var clients []*rawClient
	for i := range 3 {
		u, p := s.Credentials("peer"+itoa(i), time.Now())
		c := newRawClient(t, s.Addr(), u, p)
		if _, code := c.allocate(); code != 0 {
			t.Fatalf("allocation %d: code %d", i, code)
		}
		clients = append(clients, c)
	}
	u, p := s.Credentials("one-more-id", time.Now())
	if _, code := newRawClient(t, s.Addr(), u, p).allocate(); code != stun.CodeAllocQuotaReached {
		t.Fatalf("fourth allocation from 127.0.0.1 under a new peer id: code %d, want 486", code)
	}
	if _, code := clients[0].do(stun.MethodRefresh, attr(stun.AttrLifetime, []byte{0, 0, 0, 0})); code != 0 {
		t.Fatalf("refresh 0: %d", code)
	}
	if _, code := newRawClient(t, s.Addr(), u, p).allocate(); code != 0 {
		t.Fatalf("allocation after one ended: code %d", code)
	}
}
