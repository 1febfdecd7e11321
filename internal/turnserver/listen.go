package turnserver

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"runtime"
)

// ReadBuffer is the receive buffer asked for each UDP listener socket: room for about 1,400
// datagrams of 1,200 bytes. With the kernel's default (208 KiB, about 70 such datagrams) a
// client that sends its first 256 datagrams at once (a window of 256 in flight) lost a
// hundred and more of them while the server's loop was busy (issue 18). The kernel caps it at
// net.core.rmem_max unless the process may exceed that (CAP_NET_ADMIN, SO_RCVBUFFORCE).
const ReadBuffer = 4 << 20

// RelayReadBuffer is the receive buffer asked for each relay socket: a burst of about 350
// datagrams of 1,200 bytes from a peer (the default held about 70). The kernel charges it
// only for datagrams waiting, and caps all of UDP at net.ipv4.udp_mem.
const RelayReadBuffer = 1 << 20

// maxUDPSockets caps Config.UDPSockets.
const maxUDPSockets = 64

// defaultUDPSockets is one UDP socket per core, at most 16.
func defaultUDPSockets() int { return min(runtime.GOMAXPROCS(0), 16) }

// listenUDP binds n UDP sockets to addr, sharing its port (SO_REUSEPORT): the kernel sends
// each client's datagrams (by address and port) to one of them, so each socket's loop serves
// its own clients and its own allocations. Port 0 picks a free port for the first; the others
// join it.
func listenUDP(addr string, n int, log *slog.Logger) ([]*net.UDPConn, error) {
	lc := net.ListenConfig{Control: reusePort}
	if n == 1 {
		lc.Control = nil
	}
	var out []*net.UDPConn
	for i := range n {
		pc, err := lc.ListenPacket(context.Background(), "udp", addr)
		if err != nil {
			for _, c := range out {
				_ = c.Close()
			}
			return nil, fmt.Errorf("turnserver: listen udp %s: %w", addr, err)
		}
		c := pc.(*net.UDPConn)
		if got := setReadBuffer(c, ReadBuffer); got < ReadBuffer && i == 0 {
			log.Warn(fmt.Sprintf("turn: UDP receive buffer %d KiB, asked %d KiB: raise net.core.rmem_max (sysctl -w net.core.rmem_max=%d) or a burst of datagrams is dropped", got>>10, ReadBuffer>>10, ReadBuffer))
		}
		out = append(out, c)
		if i == 0 {
			addr = c.LocalAddr().String() // the others join the first's port
		}
	}
	return out, nil
}
