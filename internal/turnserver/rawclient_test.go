package turnserver

import (
	"errors"
	"fmt"
	"net"
	"testing"
	"time"

	"github.com/pion/stun/v4"
)

// rawClient speaks TURN over UDP one STUN message at a time, so tests can send what a
// well-behaved client library would not (a wrong realm, a ChannelBind or a Send indication to a
// denied peer).
type rawClient struct {
	t      *testing.T
	conn   net.PacketConn
	server net.Addr
	user   string
	pass   string
	realm  string // "" means the realm the server names
	nonce  stun.Nonce
	srealm stun.Realm
}

func newRawClient(t *testing.T, server net.Addr, user, pass string) *rawClient {
	t.Helper()
	conn, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	return &rawClient{t: t, conn: conn, server: server, user: user, pass: pass}
}

type setterFunc func(*stun.Message) error

func (f setterFunc) AddTo(m *stun.Message) error { return f(m) }

func attr(t stun.AttrType, v []byte) stun.Setter {
	return setterFunc(func(m *stun.Message) error { m.Add(t, v); return nil })
}

func peerAddr(ip net.IP, port int) stun.Setter {
	return setterFunc(func(m *stun.Message) error {
		return stun.XORMappedAddress{IP: ip, Port: port}.AddToAs(m, stun.AttrXORPeerAddress)
	})
}

var udpTransport = attr(stun.AttrRequestedTransport, []byte{17, 0, 0, 0})

// build returns a message of type typ with the attributes and, once the server has sent a
// nonce, long-term credentials.
func (c *rawClient) build(typ stun.MessageType, attrs ...stun.Setter) *stun.Message {
	c.t.Helper()
	setters := append([]stun.Setter{stun.TransactionID, typ}, attrs...)
	if c.nonce != nil {
		realm := c.realm
		if realm == "" {
			realm = c.srealm.String()
		}
		setters = append(setters, stun.NewUsername(c.user), stun.NewRealm(realm), c.nonce,
			stun.NewLongTermIntegrity(c.user, realm, c.pass))
	}
	setters = append(setters, stun.Fingerprint)
	m, err := stun.Build(setters...)
	if err != nil {
		c.t.Fatal(err)
	}
	return m
}

// send writes a message without waiting for an answer (indications).
func (c *rawClient) send(m *stun.Message) {
	c.t.Helper()
	if _, err := c.conn.WriteTo(m.Raw, c.server); err != nil {
		c.t.Fatal(err)
	}
}

// do sends a request and returns the response's error code (0 for success). A first 401
// with a nonce is answered once with credentials.
func (c *rawClient) do(method stun.Method, attrs ...stun.Setter) (*stun.Message, stun.ErrorCode) {
	c.t.Helper()
	for attempt := 0; ; attempt++ {
		m := c.build(stun.NewType(method, stun.ClassRequest), attrs...)
		res, err := c.roundTrip(m)
		if err != nil {
			c.t.Fatalf("%v: %v", method, err)
		}
		if res.Type.Class == stun.ClassSuccessResponse {
			return res, 0
		}
		var code stun.ErrorCodeAttribute
		if err := code.GetFrom(res); err != nil {
			c.t.Fatalf("%v: error response without code: %v", method, err)
		}
		if (code.Code == stun.CodeUnauthorized || code.Code == stun.CodeStaleNonce) && attempt == 0 && c.nonce == nil {
			var n stun.Nonce
			if n.GetFrom(res) == nil && c.srealm.GetFrom(res) == nil {
				c.nonce = n
				continue
			}
		}
		return res, code.Code
	}
}

func (c *rawClient) roundTrip(m *stun.Message) (*stun.Message, error) {
	c.send(m)
	buf := make([]byte, 1600)
	deadline := time.Now().Add(3 * time.Second)
	for {
		_ = c.conn.SetReadDeadline(deadline)
		n, _, err := c.conn.ReadFrom(buf)
		if err != nil {
			return nil, fmt.Errorf("no answer: %w", err)
		}
		res := new(stun.Message)
		if err := stun.Decode(append([]byte(nil), buf[:n]...), res); err != nil {
			continue // data indications and the like
		}
		if res.TransactionID == m.TransactionID {
			return res, nil
		}
	}
}

// allocate makes a UDP allocation and returns the relayed address, or the error code.
func (c *rawClient) allocate() (*net.UDPAddr, stun.ErrorCode) {
	c.t.Helper()
	res, code := c.do(stun.MethodAllocate, udpTransport)
	if code != 0 {
		return nil, code
	}
	var relayed stun.XORMappedAddress
	if err := relayed.GetFromAs(res, stun.AttrXORRelayedAddress); err != nil {
		c.t.Fatal(err)
	}
	return &net.UDPAddr{IP: relayed.IP, Port: relayed.Port}, 0
}

func newUDPListener(t *testing.T, addr string) net.PacketConn {
	t.Helper()
	pc, err := net.ListenPacket("udp4", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = pc.Close() })
	return pc
}

// expectSilence fails t if pc receives anything within d. It is only called after a marker
// sent later on the same path has arrived, so d is a margin, not a wait for an event.
func expectSilence(t *testing.T, pc net.PacketConn, d time.Duration) {
	t.Helper()
	_ = pc.SetReadDeadline(time.Now().Add(d))
	buf := make([]byte, 2048)
	n, from, err := pc.ReadFrom(buf)
	var ne net.Error
	if err == nil {
		t.Fatalf("denied address %v received %d bytes from %v", pc.LocalAddr(), n, from)
	} else if !errors.As(err, &ne) || !ne.Timeout() {
		t.Fatalf("sentinel read: %v", err)
	}
}

// expectDatagram reads one datagram within 3 s.
func expectDatagram(t *testing.T, pc net.PacketConn, want string) {
	t.Helper()
	_ = pc.SetReadDeadline(time.Now().Add(3 * time.Second))
	buf := make([]byte, 2048)
	n, _, err := pc.ReadFrom(buf)
	if err != nil {
		t.Fatalf("marker %v: %v", pc.LocalAddr(), err)
	}
	if string(buf[:n]) != want {
		t.Fatalf("marker got %q, want %q", buf[:n], want)
	}
}
