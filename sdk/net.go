package sdk

import (
	"fmt"
	"net"
	"time"

	"github.com/pion/transport/v5"
	"github.com/pion/transport/v5/stdnet"
	"github.com/pion/webrtc/v4"
)

// TURNDialTimeout bounds the TCP connect of TURN over TCP and TLS in the networks BufferedNet
// returns. Pion dials without a deadline, and a firewall that drops packets to the TURN port
// (a network that lets only 443 out) would otherwise hold the dial, and
// PeerConnection.Close, which waits for gathering, for the kernel's connect timeout of about
// two minutes.
const TURNDialTimeout = 4 * time.Second

// BufferedNet returns the standard network with send and receive buffers of size bytes on
// every UDP socket ICE opens (size 0 or less: the kernel's default), and TCP dials bounded by
// TURNDialTimeout; tuned, when not nil, sees each socket once its buffers are set.
// Pion reads each socket from one goroutine; on a busy host the kernel's default receive
// buffer (208 KiB, under 200 full-size packets) overflows, and each lost packet costs a
// reliable data channel an SCTP retransmission timeout (1 s at least). Dial uses it with
// Options.UDPBufferSize; pass it to SettingEngine.SetNet when you bring your own
// Options.SettingEngine. Without CAP_NET_ADMIN the kernel caps the buffers at
// net.core.rmem_max and wmem_max.
func BufferedNet(size int, tuned func(*net.UDPConn)) (transport.Net, error) {
	n, err := stdnet.NewNet()
	if err != nil {
		return nil, fmt.Errorf("sdk: network: %w", err)
	}
	return bufferedNet{Net: n, size: size, tuned: tuned, dialTimeout: TURNDialTimeout}, nil
}

type bufferedNet struct {
	*stdnet.Net
	size        int
	tuned       func(*net.UDPConn)
	dialTimeout time.Duration
}

// DialTCP implements transport.Net: Pion's TURN over TCP and TLS dial through it.
func (n bufferedNet) DialTCP(network string, laddr, raddr *net.TCPAddr) (transport.TCPConn, error) {
	d := net.Dialer{Timeout: n.dialTimeout}
	if laddr != nil {
		d.LocalAddr = laddr
	}
	c, err := d.Dial(network, raddr.String()) //nolint:noctx // Pion's interface has no context; the timeout bounds it
	if err != nil {
		return nil, err //nolint:wrapcheck // the dial's own error, for Pion's log
	}
	return c.(*net.TCPConn), nil
}

// ListenUDP implements transport.Net.
func (n bufferedNet) ListenUDP(network string, laddr *net.UDPAddr) (transport.UDPConn, error) {
	c, err := n.Net.ListenUDP(network, laddr)
	if err != nil {
		return nil, err //nolint:wrapcheck // Pion's own error, passed through
	}
	n.tune(c)
	return c, nil
}

// ListenPacket implements transport.Net.
func (n bufferedNet) ListenPacket(network, address string) (net.PacketConn, error) {
	c, err := n.Net.ListenPacket(network, address)
	if err != nil {
		return nil, err //nolint:wrapcheck // Pion's own error, passed through
	}
	n.tune(c)
	return c, nil
}

// tune sets the buffers, best effort.
func (n bufferedNet) tune(c any) {
	uc, ok := c.(*net.UDPConn)
	if !ok || n.size <= 0 {
		return
	}
	_ = uc.SetReadBuffer(n.size)
	_ = uc.SetWriteBuffer(n.size)
	if n.tuned != nil {
		n.tuned(uc)
	}
}

// Transport settings the SDK applies to its SettingEngine (TuneTransport), for paths with
// latency, reordering and loss (docs/benchmarks.md, "Impaired networks").
const (
	// DTLSReplayWindow is the DTLS replay-protection window, in records. Pion's default, 64,
	// drops as replays the records a path reorders by more than 64 packets — at tens of
	// MB/s, a few milliseconds of jitter — and each such loss costs a reliable data channel a
	// retransmission and half its congestion window. A record is still accepted at most once.
	DTLSReplayWindow = 8192
	// SCTPReceiveBuffer bounds what a data channel's association buffers for the application
	// (and so the window it advertises): Pion's default, 1 MiB, caps a channel at 5 MB/s on
	// a 200 ms round trip.
	SCTPReceiveBuffer = 8 << 20
	// SCTPCwndCAStep is how much a data channel's congestion window grows per round trip in
	// congestion avoidance, in bytes (Pion's default: one MTU, 1191 bytes). On a lossy path
	// the window, in packets, follows the same saw-tooth as TCP's; but a WebRTC SCTP packet
	// carries 1156 bytes of data against TCP's 1448, so the same saw-tooth moved 0.8× TCP's
	// bytes (0.96× cubic measured at 2 % loss). Growing by (1448/1156)² ≈ 1.6 MTU per round
	// trip makes the rate in bytes that of a TCP connection with full-size segments at the
	// same packet loss rate — the correction RFC 4828 (TFRC-SP) makes for small packets.
	// Measurements in docs/benchmarks.md, "Impaired networks (issue 15)".
	SCTPCwndCAStep = 1900
)

// TuneTransport applies the SDK's transport settings to se. Dial does it; call it when you
// bring your own Options.SettingEngine. Besides DTLSReplayWindow, SCTPReceiveBuffer and
// SCTPCwndCAStep it takes two round trips out of connection setup (each is 200 ms on a
// 200 ms path):
//   - As DTLS server it answers a ClientHello at once, without the HelloVerifyRequest cookie
//     round trip (RFC 6347 4.2.1). The cookie guards a server against spoofed sources; here
//     DTLS runs only on a pair ICE has already checked with a STUN exchange authenticated by
//     the peers' ICE credentials, and browsers' DTLS servers skip it the same way.
//   - SCTP's four-way INIT handshake is replaced by SNAP (the SDP's a=sctp-init,
//     draft-hancke-tsvwg-snap): each side puts its INIT in its description, and the
//     association is up as soon as DTLS is. A peer that does not offer or answer sctp-init
//     gets the ordinary handshake.
func TuneTransport(se *webrtc.SettingEngine) {
	se.SetDTLSReplayProtectionWindow(DTLSReplayWindow)
	se.SetSCTPMaxReceiveBufferSize(SCTPReceiveBuffer)
	se.SetSCTPCwndCAStep(SCTPCwndCAStep)
	se.SetDTLSInsecureSkipHelloVerify(true)
	se.EnableSctpSnap(true)
}
