package sdk

import (
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/pion/ice/v4"
	"github.com/pion/stun/v4"
	"github.com/pion/webrtc/v4"
)

// The second ICE session that carries a pair's QUIC connection (quic.go). It is made like the
// peer connection's: the client's ICE servers (TURN credentials included), its transport
// policy, Options.Loopback, the acceptance waits, and the network of Options.Net (or
// BufferedNet with Options.UDPBufferSize), so a relay-only pair gets QUIC through the
// relay and an impaired network (internal/netimpair) impairs both paths alike.

// Pacing of the QUIC session's connectivity checks: a tick every 50 ms (Pion's default is
// 200 ms), a pair given up after 28 unanswered pings: the same 1.4 s as Pion's 7 × 200 ms.
// The newcomer's first checks go straight to the other peer while its hello goes through the
// server; a check that arrives before the hello cannot be answered (the agent does not know
// the remote's username yet; Pion drops it), and with a 200 ms tick the retry cost a round
// trip in half the setups at 200 ms RTT ± 10 ms jitter (open at 1.47–1.54 s instead of 1.35;
// with 50 ms: 1.32–1.33 s in 5 of 5, docs/benchmarks.md). Four times the checks per second,
// never more checks per pair than 28, to at most the 32 candidates the exchange admits.
//
// The acceptance waits are the peer connection's (Options.AcceptanceMinWait, 100 ms by
// default, for server- and peer-reflexive pairs; host pairs none, Pion's default; relay
// pairs at least minRelayWait unless relay-only, so that hole punching can beat the relay).
// They count from the start of the checks, and a pair cannot succeed sooner than one round
// trip after it: beyond 100 ms RTT they cost nothing, and below it they are what lets a
// direct pair win over a reflexive one.

// newQUICAgent returns an ICE agent for p's QUIC session, not yet gathering: its host and
// server-reflexive candidates on sock when there is one (quic_socket.go).
func (c *Client) newQUICAgent(sock *quicSocket) (*ice.Agent, error) {
	urls, err := iceURLs(c.ICEServers())
	if err != nil {
		return nil, err
	}
	w := c.opts.AcceptanceMinWait
	relayWait := w
	if c.opts.ICETransportPolicy != webrtc.ICETransportPolicyRelay {
		relayWait = max(w, minRelayWait) // as settingEngine: hole punching may beat the relay
	}
	opts := []ice.AgentOption{
		ice.WithNet(c.net),
		ice.WithUrls(urls),
		ice.WithSrflxAcceptanceMinWait(w),
		ice.WithPrflxAcceptanceMinWait(w),
		ice.WithRelayAcceptanceMinWait(relayWait),
		// Both ends are SDK peers, which gather plain addresses: no mDNS sockets.
		ice.WithMulticastDNSMode(ice.MulticastDNSModeDisabled),
		ice.WithDisableActiveTCP(), // and never dial a remote's TCP candidate (UDP only below)
		ice.WithCheckInterval(quicCheckInterval),
		ice.WithMaxBindingRequests(quicMaxChecks),
	}
	if c.opts.ICETransportPolicy == webrtc.ICETransportPolicyRelay {
		opts = append(opts, ice.WithCandidateTypes([]ice.CandidateType{ice.CandidateTypeRelay}))
	}
	if c.opts.Loopback {
		opts = append(opts,
			ice.WithIncludeLoopback(),
			ice.WithNetworkTypes([]ice.NetworkType{ice.NetworkTypeUDP4}),
			ice.WithInterfaceFilter(func(name string) bool { return name == "lo" }),
			ice.WithIPFilter(func(ip net.IP) bool { return ip.IsLoopback() }),
		)
	} else {
		// UDP only, as the peer connection: with TCP types the agent would open a TCP
		// connection to every "tcptype passive" candidate a remote sends, from every
		// interface — a port scan of addresses the remote chooses.
		opts = append(opts, ice.WithNetworkTypes([]ice.NetworkType{ice.NetworkTypeUDP4, ice.NetworkTypeUDP6}))
	}
	if sock != nil {
		opts = append(opts, ice.WithUDPMux(sock.mux), ice.WithUDPMuxSrflx(sock.mux))
	}
	a, err := ice.NewAgentWithOptions(opts...)
	if err != nil {
		return nil, fmt.Errorf("sdk: quic: ice agent: %w", err)
	}
	return a, nil
}

// iceURLs turns WebRTC ICE servers into pion/ice URLs with their credentials.
func iceURLs(servers []webrtc.ICEServer) ([]*stun.URI, error) {
	var out []*stun.URI
	for _, s := range servers {
		for _, raw := range s.URLs {
			u, err := stun.ParseURI(raw)
			if err != nil {
				return nil, fmt.Errorf("sdk: quic: ice server %q: %w", raw, err)
			}
			if u.Scheme == stun.SchemeTypeTURN || u.Scheme == stun.SchemeTypeTURNS {
				u.Username = s.Username
				if pwd, ok := s.Credential.(string); ok {
					u.Password = pwd
				}
			}
			out = append(out, u)
		}
	}
	return out, nil
}

// relayed reports whether the agent's selected pair goes through a TURN relay.
func relayed(a *ice.Agent) bool {
	pair, err := a.GetSelectedCandidatePair()
	if err != nil || pair == nil {
		return false
	}
	return pair.Local.Type() == ice.CandidateTypeRelay || pair.Remote.Type() == ice.CandidateTypeRelay
}

// icePacketConn is the net.PacketConn quic-go runs on: the ICE session's selected pair. quic-go
// sees one fixed remote address, so a change of the selected pair (ICE may switch) is no
// connection migration to it. It has SetReadBuffer and SetWriteBuffer that do nothing (the
// sockets under ICE are sized by BufferedNet), which keeps quic-go from logging that it could
// not size them.
type icePacketConn struct {
	conn          *ice.Conn
	local, remote net.Addr
}

func newICEPacketConn(conn *ice.Conn) *icePacketConn {
	local, remote := conn.LocalAddr(), conn.RemoteAddr()
	if local == nil {
		local = &net.UDPAddr{IP: net.IPv4zero}
	}
	if remote == nil {
		remote = &net.UDPAddr{IP: net.IPv4zero}
	}
	return &icePacketConn{conn: conn, local: local, remote: remote}
}

// ReadFrom implements net.PacketConn.
func (c *icePacketConn) ReadFrom(b []byte) (int, net.Addr, error) {
	n, err := c.conn.Read(b)
	if err != nil {
		return n, c.remote, err //nolint:wrapcheck // quic-go looks at net.Error
	}
	return n, c.remote, nil
}

// WriteTo implements net.PacketConn; the address is always the remote peer.
func (c *icePacketConn) WriteTo(b []byte, _ net.Addr) (int, error) {
	n, err := c.conn.Write(b)
	if errors.Is(err, ice.ErrNoCandidatePairs) {
		return len(b), nil // no pair for a moment: a lost packet, QUIC recovers
	}
	return n, err //nolint:wrapcheck // quic-go looks at net.Error
}

// Close implements net.PacketConn. quic-go does not close a connection it was given; the
// QUIC state closes the agent itself.
func (c *icePacketConn) Close() error { return nil }

// LocalAddr implements net.PacketConn.
func (c *icePacketConn) LocalAddr() net.Addr { return c.local }

// SetDeadline implements net.PacketConn (reads only: a write deadline would apply to the
// candidate's socket, which ICE shares).
func (c *icePacketConn) SetDeadline(t time.Time) error { return c.SetReadDeadline(t) }

// SetReadDeadline implements net.PacketConn.
func (c *icePacketConn) SetReadDeadline(t time.Time) error {
	return c.conn.SetReadDeadline(t) //nolint:wrapcheck // passed through
}

// SetWriteDeadline implements net.PacketConn; writes never block long.
func (c *icePacketConn) SetWriteDeadline(time.Time) error { return nil }

// SetReadBuffer does nothing (see icePacketConn).
func (c *icePacketConn) SetReadBuffer(int) error { return nil }

// SetWriteBuffer does nothing (see icePacketConn).
func (c *icePacketConn) SetWriteBuffer(int) error { return nil }

// The QUIC session's check pacing (see above).
const (
	quicCheckInterval = 50 * time.Millisecond
	quicMaxChecks     = 28
)
