package turnserver

import (
	"encoding/binary"
	"errors"
	"math/rand/v2"
	"net"
	"testing"
	"time"

	"github.com/pion/stun/v4"
)

// garbage returns n random datagrams, a third of them with a valid STUN header (magic cookie,
// length matching) and random attributes, a third shaped as ChannelData.
func garbage(r *rand.Rand, n int) [][]byte {
	out := make([][]byte, 0, n)
	for i := range n {
		b := make([]byte, r.IntN(1500))
		for j := range b {
			b[j] = byte(r.Uint32())
		}
		switch i % 3 {
		case 1:
			if len(b) < 20 {
				b = append(b, make([]byte, 20)...)
			}
			b[0] &= 0x3f
			binary.BigEndian.PutUint16(b[2:], uint16(len(b)-20)&^3) //nolint:gosec // < 1500
			binary.BigEndian.PutUint32(b[4:], 0x2112A442)
		case 2:
			if len(b) < 4 {
				b = append(b, 0, 0, 0, 0)
			}
			b[0] = 0x40 | b[0]&0x3f
			binary.BigEndian.PutUint16(b[2:], uint16(r.IntN(len(b)+10))) //nolint:gosec // < 1510
		}
		out = append(out, b)
	}
	return out
}

// bindingWorks checks the server still answers a STUN Binding request over conn, which also
// proves every datagram sent before it on conn was handled (the server reads in order).
func bindingWorks(t *testing.T, conn net.PacketConn, server net.Addr) {
	t.Helper()
	c := &rawClient{t: t, conn: conn, server: server}
	res, err := c.roundTrip(c.build(stun.BindingRequest))
	if err != nil || res.Type != stun.BindingSuccess {
		t.Fatalf("binding after garbage: %v %v", res, err)
	}
}

// TestGarbage sends thousands of random and half-valid datagrams over UDP, from a client with
// an allocation and from one without, and random streams over TCP; the server answers a
// Binding request and makes a new allocation afterwards.
func TestGarbage(t *testing.T) {
	s := startServer(t, allowLoopback)
	r := rand.New(rand.NewPCG(1, 2))
	u, p := s.Credentials("fuzzer", time.Now())
	alloc := newRawClient(t, s.Addr(), u, p)
	if _, code := alloc.allocate(); code != 0 {
		t.Fatalf("allocate: %d", code)
	}
	stranger := newUDPListener(t, "127.0.0.1:0")
	for i, d := range garbage(r, 3000) {
		conn := alloc.conn
		if i%2 == 1 {
			conn = stranger
		}
		if _, err := conn.WriteTo(d, s.Addr()); err != nil {
			t.Fatal(err)
		}
		if i%50 == 49 {
			bindingWorks(t, conn, s.Addr()) // pace the sender: the kernel buffer is finite
		}
	}
	bindingWorks(t, stranger, s.Addr())
	for range 20 {
		conn, err := net.Dial("tcp4", s.TCPAddr().String())
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range garbage(r, 20) {
			if _, err := conn.Write(d); err != nil {
				break // the server may hang up on a broken stream
			}
		}
		_ = conn.Close()
	}
	if _, code := newRawClient(t, s.Addr(), u, p).allocate(); code != 0 {
		t.Fatalf("allocate after garbage: %d", code)
	}
}

// FuzzServerDatagram sends each input to a live server and checks it still answers.
func FuzzServerDatagram(f *testing.F) {
	r := rand.New(rand.NewPCG(3, 4))
	for _, d := range garbage(r, 9) {
		f.Add(d)
	}
	m, _ := stun.Build(stun.TransactionID, stun.NewType(stun.MethodAllocate, stun.ClassRequest), udpTransport, stun.Fingerprint)
	f.Add(m.Raw)
	f.Fuzz(func(t *testing.T, d []byte) {
		s := startServer(t, nil)
		conn := newUDPListener(t, "127.0.0.1:0")
		if _, err := conn.WriteTo(d, s.Addr()); err != nil {
			t.Skip("datagram too large to send")
		}
		bindingWorks(t, conn, s.Addr())
	})
}

// TestTCPIdleAndCap: a TCP client that sends nothing is disconnected after the idle time, and
// connections over the cap are closed at once.
func TestTCPIdleAndCap(t *testing.T) {
	s := startServer(t, func(c *Config) { c.TCPIdle = 200 * time.Millisecond; c.MaxAllocations = 2; c.UserQuota = 1 })
	dial := func() net.Conn {
		c, err := net.Dial("tcp4", s.TCPAddr().String())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = c.Close() })
		return c
	}
	closedWithin := func(c net.Conn, d time.Duration) bool {
		_ = c.SetReadDeadline(time.Now().Add(d))
		_, err := c.Read(make([]byte, 1))
		var ne net.Error
		return err != nil && !(errors.As(err, &ne) && ne.Timeout())
	}
	idle1, idle2 := dial(), dial()
	over := dial()
	if !closedWithin(over, 3*time.Second) {
		t.Error("a connection over the cap of 2 stayed open")
	}
	start := time.Now()
	if !closedWithin(idle1, 3*time.Second) || !closedWithin(idle2, 3*time.Second) {
		t.Fatal("idle connections stayed open")
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("idle connections closed after %v, want about 200ms", d)
	}
	// Slots are free again: a new client can allocate over TCP.
	u, p := s.Credentials("tcp", time.Now())
	cl := pionClient(t, s, u, p, true)
	relay, err := cl.Allocate()
	if err != nil {
		t.Fatalf("Allocate over TCP after the idle ones left: %v", err)
	}
	_ = relay.Close()
}
