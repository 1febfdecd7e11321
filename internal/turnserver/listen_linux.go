package turnserver

import (
	"net"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// reusePort is a net.ListenConfig Control that sets SO_REUSEPORT.
func reusePort(_, _ string, rc syscall.RawConn) error {
	var serr error
	if err := rc.Control(func(fd uintptr) {
		serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_REUSEPORT, 1)
	}); err != nil {
		return err //nolint:wrapcheck // the socket's own error
	}
	return serr //nolint:wrapcheck // the socket's own error
}

// setReadBuffer asks for size bytes of receive buffer on c, beyond net.core.rmem_max when the
// process may (SO_RCVBUFFORCE, like quic-go does), and returns what the kernel granted.
func setReadBuffer(c *net.UDPConn, size int) int {
	_ = c.SetReadBuffer(size)
	got := readBuffer(c)
	if got >= size {
		return got
	}
	if rc, err := c.SyscallConn(); err == nil {
		_ = rc.Control(func(fd uintptr) {
			_ = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, size)
		})
	}
	return readBuffer(c)
}

// readBuffer returns c's receive buffer size as set (the kernel reports twice that: it counts
// its bookkeeping too).
func readBuffer(c *net.UDPConn) int {
	rc, err := c.SyscallConn()
	if err != nil {
		return 0
	}
	n := 0
	_ = rc.Control(func(fd uintptr) {
		n, _ = unix.GetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUF)
	})
	return n / 2
}

// gsoSpace is the room the UDP_SEGMENT control message takes.
var gsoSpace = unix.CmsgSpace(2)

// gsoSupported reports whether the kernel segments datagrams sent on c (UDP GSO, Linux 4.18).
func gsoSupported(c *net.UDPConn) bool {
	rc, err := c.SyscallConn()
	if err != nil {
		return false
	}
	var serr error
	if err := rc.Control(func(fd uintptr) {
		_, serr = unix.GetsockoptInt(int(fd), unix.IPPROTO_UDP, unix.UDP_SEGMENT)
	}); err != nil {
		return false
	}
	return serr == nil
}

// appendGSO appends the control message that has the kernel cut a message's payload into
// datagrams of size bytes (the last may be shorter).
func appendGSO(b []byte, size int) []byte {
	start := len(b)
	b = append(b, make([]byte, unix.CmsgSpace(2))...)
	h := (*unix.Cmsghdr)(unsafe.Pointer(&b[start]))
	h.Level = unix.IPPROTO_UDP
	h.Type = unix.UDP_SEGMENT
	h.SetLen(unix.CmsgLen(2))
	*(*uint16)(unsafe.Pointer(&b[start+unix.CmsgSpace(0)])) = uint16(size) //nolint:gosec // size <= maxDatagram
	return b
}
