package sdk

import (
	"net"

	"github.com/pion/transport/v5"
	"github.com/pion/transport/v5/stdnet"
)

// bufferedNet is the standard network with larger buffers on every UDP socket ICE opens.
// Pion reads each socket from one goroutine; on a busy host the kernel's default receive
// buffer (208 KiB, under 200 full-size packets) overflows, and each lost packet costs a
// reliable data channel an SCTP retransmission timeout (1 s at least).
type bufferedNet struct {
	*stdnet.Net
	size int
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

// tune sets the buffers, best effort: without CAP_NET_ADMIN the kernel caps them at
// net.core.rmem_max and wmem_max.
func (n bufferedNet) tune(c any) {
	if uc, ok := c.(*net.UDPConn); ok {
		_ = uc.SetReadBuffer(n.size)
		_ = uc.SetWriteBuffer(n.size)
	}
}
