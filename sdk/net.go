package sdk

import (
	"fmt"
	"net"

	"github.com/pion/transport/v5"
	"github.com/pion/transport/v5/stdnet"
)

// BufferedNet returns the standard network with send and receive buffers of size bytes on
// every UDP socket ICE opens; tuned, when not nil, sees each socket once its buffers are set.
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
	return bufferedNet{Net: n, size: size, tuned: tuned}, nil
}

type bufferedNet struct {
	*stdnet.Net
	size  int
	tuned func(*net.UDPConn)
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
	if !ok {
		return
	}
	_ = uc.SetReadBuffer(n.size)
	_ = uc.SetWriteBuffer(n.size)
	if n.tuned != nil {
		n.tuned(uc)
	}
}
