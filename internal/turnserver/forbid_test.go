package turnserver

import (
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/pion/stun/v4"
	"github.com/pion/turn/v5"
)

// ChannelBind to a denied peer is answered 403 Forbidden (as CreatePermission is), signed
// with the client's credentials, over UDP and over TCP; wrong credentials still get 401, and a
// ChannelBind to an allowed peer still succeeds on the same allocation.
func TestChannelBindDeniedIs403(t *testing.T) {
	s := startServer(t, func(c *Config) { c.AllowPeers = []netip.Prefix{netip.MustParsePrefix("127.0.0.2/32")} })
	u, p := s.Credentials("someone", time.Now())
	for _, transport := range []string{"udp", "tcp"} {
		t.Run(transport, func(t *testing.T) {
			c := newRawClient(t, s.Addr(), u, p)
			if transport == "tcp" {
				conn, err := net.Dial("tcp4", s.TCPAddr().String())
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { _ = conn.Close() })
				c.conn, c.server = turn.NewSTUNConn(conn), s.TCPAddr()
			}
			if _, code := c.allocate(); code != 0 {
				t.Fatalf("allocate: %d", code)
			}
			for i, ip := range []string{"127.0.0.1", "10.0.0.1", "::ffff:127.0.0.1"} {
				res, code := c.do(stun.MethodChannelBind, attr(stun.AttrChannelNumber, []byte{0x40, byte(i), 0, 0}), peerAddr(net.ParseIP(ip), 9))
				if code != stun.CodeForbidden {
					t.Fatalf("ChannelBind %s: code %d, want 403", ip, code)
				}
				if err := stun.NewLongTermIntegrity(u, s.Realm(), p).Check(res); err != nil {
					t.Fatalf("ChannelBind %s: answer not signed with the client's key: %v", ip, err)
				}
			}
			if _, code := c.do(stun.MethodChannelBind, attr(stun.AttrChannelNumber, []byte{0x40, 0x10, 0, 0}), peerAddr(net.IPv4(127, 0, 0, 2), 9)); code != 0 {
				t.Fatalf("ChannelBind 127.0.0.2: code %d", code)
			}
			wrong := *c
			wrong.pass = "not-the-password"
			if _, code := wrong.do(stun.MethodChannelBind, attr(stun.AttrChannelNumber, []byte{0x40, 0x11, 0, 0}), peerAddr(net.IPv4(127, 0, 0, 1), 9)); code != stun.CodeUnauthorized {
				t.Fatalf("ChannelBind with a wrong password: code %d, want 401", code)
			}
		})
	}
}
