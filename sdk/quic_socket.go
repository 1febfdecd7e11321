package sdk

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"time"

	"github.com/pion/ice/v4"
	"github.com/pion/logging"
	"github.com/pion/webrtc/v4"
	"github.com/quic-go/quic-go"
)

// The pair's own UDP socket. On the host's network (Options.Net nil) a QUIC session gets one
// UDP socket that quic-go reads and writes itself, with what the kernel offers it (GSO,
// batched reads, ECN, path MTU discovery): through ice.Conn every 1,280-byte datagram cost a
// system call of its own, and that is what bounded the clean-link transfers (docs/benchmarks.md,
// "Where issue 15 stands"). The ICE session's host and server-reflexive candidates are on the
// same socket: quic-go hands what is not QUIC (STUN: its first two bits are 0) to
// Transport.ReadNonQUICPacket, which feeds a pion/ice UDPMux, and the mux's writes go out
// through Transport.WriteTo. A pair ICE selects between those candidates carries QUIC on the
// socket directly, to the selected remote address; a relay pair carries it over ice.Conn as
// before (TURN wraps every datagram anyway). Test networks (Options.Net) and relay-only
// policies keep the ice.Conn path for everything.

// quicSocket is a pair's own UDP socket: quic-go's transport on it and the ICE mux beside.
type quicSocket struct {
	udp *net.UDPConn
	tr  *quic.Transport
	mux *quicMux
	pc  *nonQUICConn
}

// ownQUICSocket reports whether the client's QUIC sessions get their own socket.
func (c *Client) ownQUICSocket() bool {
	return c.opts.Net == nil && c.opts.ICETransportPolicy != webrtc.ICETransportPolicyRelay
}

// newQUICSocket opens the socket: on 127.0.0.1 with Options.Loopback, else on every address
// (both IP versions where the host has them).
func (c *Client) newQUICSocket() (*quicSocket, error) {
	laddr := &net.UDPAddr{}
	if c.opts.Loopback {
		laddr.IP = net.IPv4(127, 0, 0, 1)
	}
	udp, err := net.ListenUDP("udp", laddr)
	if err != nil {
		return nil, fmt.Errorf("sdk: quic: open a UDP socket: %w", err)
	}
	if n := c.opts.UDPBufferSize; n > 0 {
		_ = udp.SetReadBuffer(n)
		_ = udp.SetWriteBuffer(n)
	}
	addrs, err := listenAddrs(udp, c.opts.Loopback)
	if err != nil {
		_ = udp.Close()
		return nil, err
	}
	tr := &quic.Transport{Conn: udp}
	ctx, cancel := context.WithCancel(context.Background())
	pc := &nonQUICConn{tr: tr, local: udp.LocalAddr(), ctx: ctx, cancel: cancel}
	mux := &quicMux{
		UniversalUDPMuxDefault: ice.NewUniversalUDPMuxDefault(ice.UniversalUDPMuxParams{
			Logger:  logging.NewDefaultLoggerFactory().NewLogger("ice"),
			UDPConn: pc,
		}),
		addrs: addrs,
	}
	return &quicSocket{udp: udp, tr: tr, mux: mux, pc: pc}, nil
}

// close stops the mux, the transport (and every QUIC connection on it), then the socket.
func (s *quicSocket) close() {
	_ = s.mux.Close() // closes pc: the mux's reader returns
	_ = s.tr.Close()
	_ = s.udp.Close()
}

// listenAddrs returns the addresses of udp's host candidates: its own address when it is
// bound to one, else the host's up, non-loopback unicast addresses (link-local IPv6 left
// out, as Pion's own gathering does) with its port.
func listenAddrs(udp *net.UDPConn, loopback bool) ([]net.Addr, error) {
	la, ok := udp.LocalAddr().(*net.UDPAddr)
	if !ok {
		return nil, errors.New("sdk: quic: the UDP socket has no UDP address")
	}
	if !la.IP.IsUnspecified() || loopback {
		return []net.Addr{la}, nil
	}
	ifaces, err := net.Interfaces()
	if err != nil {
		return nil, fmt.Errorf("sdk: quic: list the network interfaces: %w", err)
	}
	v6 := la.IP.To4() == nil // a dual-stack socket
	var out []net.Addr
	for _, ifc := range ifaces {
		if ifc.Flags&net.FlagUp == 0 || ifc.Flags&net.FlagLoopback != 0 {
			continue
		}
		as, err := ifc.Addrs()
		if err != nil {
			continue
		}
		for _, a := range as {
			ipn, ok := a.(*net.IPNet)
			if !ok || ipn.IP.IsLoopback() || ipn.IP.IsLinkLocalUnicast() || ipn.IP.IsMulticast() {
				continue
			}
			if ipn.IP.To4() == nil && !v6 {
				continue
			}
			out = append(out, &net.UDPAddr{IP: ipn.IP, Port: la.Port})
		}
	}
	return out, nil
}

// quicMux is the ICE mux of the socket, announcing the addresses listenAddrs chose (Pion's
// own enumeration for a socket on every address would include loopback).
type quicMux struct {
	*ice.UniversalUDPMuxDefault
	addrs []net.Addr
}

// GetListenAddresses implements ice.UDPMux.
func (m *quicMux) GetListenAddresses() []net.Addr { return m.addrs }

// nonQUICConn is the net.PacketConn the ICE mux reads and writes: the packets quic-go's
// transport found not to be QUIC, and writes through the transport.
type nonQUICConn struct {
	tr     *quic.Transport
	local  net.Addr
	ctx    context.Context //nolint:containedctx // ends the reads when the mux closes
	cancel context.CancelFunc
}

// ReadFrom implements net.PacketConn. IPv4 senders on a dual-stack socket come as IPv4
// addresses, as ICE's candidates name them.
func (c *nonQUICConn) ReadFrom(b []byte) (int, net.Addr, error) {
	n, addr, err := c.tr.ReadNonQUICPacket(c.ctx, b)
	if err != nil {
		if c.ctx.Err() != nil {
			return 0, nil, io.EOF // closed: the mux's reader stops quietly
		}
		return 0, nil, err //nolint:wrapcheck // the mux looks at it
	}
	if ua, ok := addr.(*net.UDPAddr); ok {
		if v4 := ua.IP.To4(); v4 != nil {
			addr = &net.UDPAddr{IP: v4, Port: ua.Port}
		}
	}
	return n, addr, nil
}

// WriteTo implements net.PacketConn.
func (c *nonQUICConn) WriteTo(b []byte, addr net.Addr) (int, error) {
	return c.tr.WriteTo(b, addr) //nolint:wrapcheck // passed through
}

// Close implements net.PacketConn: the reads end; the socket is the quicSocket's to close.
func (c *nonQUICConn) Close() error {
	c.cancel()
	return nil
}

// LocalAddr implements net.PacketConn.
func (c *nonQUICConn) LocalAddr() net.Addr { return c.local }

// SetDeadline implements net.PacketConn; the mux sets none.
func (c *nonQUICConn) SetDeadline(time.Time) error { return nil }

// SetReadDeadline implements net.PacketConn; the mux sets none.
func (c *nonQUICConn) SetReadDeadline(time.Time) error { return nil }

// SetWriteDeadline implements net.PacketConn; the mux sets none.
func (c *nonQUICConn) SetWriteDeadline(time.Time) error { return nil }

// selectedRemote returns the remote address of the agent's selected pair when its local
// candidate is on the socket (host or server-reflexive; the remote's may be a relay: one
// address all the same), nil when it is our relay.
func selectedRemote(a *ice.Agent) *net.UDPAddr {
	pair, err := a.GetSelectedCandidatePair()
	if err != nil || pair == nil {
		return nil
	}
	switch pair.Local.Type() {
	case ice.CandidateTypeHost, ice.CandidateTypeServerReflexive:
	default:
		return nil
	}
	ip := net.ParseIP(pair.Remote.Address())
	if ip == nil {
		return nil
	}
	if v4 := ip.To4(); v4 != nil {
		ip = v4
	}
	return &net.UDPAddr{IP: ip, Port: pair.Remote.Port()}
}

// iceProven reports whether addr is the remote address of one of the agent's candidate
// pairs whose checks proved the remote's ICE credentials: the pair succeeded (a response
// with the integrity of the remote's password) or brought a check (a request with the
// integrity of ours). The peer's QUIC client dials only once it has selected a pair, which
// the other side has by then proven one of these ways (as controlling side, it nominates
// only a pair that succeeded; as controlled side, it got the nomination). A remote's
// candidate address alone proves nothing: anyone at it could use it.
func iceProven(a *ice.Agent, addr net.Addr) bool {
	remotes := make(map[string]ice.CandidateStats)
	for _, c := range a.GetRemoteCandidatesStats() {
		remotes[c.ID] = c
	}
	for _, p := range a.GetCandidatePairsStats() {
		if p.State != ice.CandidatePairStateSucceeded && p.RequestsReceived == 0 {
			continue
		}
		c, ok := remotes[p.RemoteCandidateID]
		if !ok {
			continue
		}
		if ip := net.ParseIP(c.IP); ip != nil && sameUDPAddr(addr, &net.UDPAddr{IP: ip, Port: c.Port}) {
			return true
		}
	}
	return false
}

// sameUDPAddr reports whether a and b are the same UDP address (an IPv4 address and its
// IPv4-mapped IPv6 form are the same).
func sameUDPAddr(a, b net.Addr) bool {
	ua, ok1 := a.(*net.UDPAddr)
	ub, ok2 := b.(*net.UDPAddr)
	if !ok1 || !ok2 {
		return false
	}
	return ua.AddrPort().Addr().Unmap() == ub.AddrPort().Addr().Unmap() && ua.Port == ub.Port
}

var (
	_ net.PacketConn      = (*nonQUICConn)(nil)
	_ ice.UniversalUDPMux = (*quicMux)(nil)
)
