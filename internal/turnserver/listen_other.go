//go:build !linux

package turnserver

import (
	"net"
	"syscall"
)

// Other systems do not balance UDP datagrams over sockets sharing a port: one socket.
const reusePortSupported = false

func reusePort(string, string, syscall.RawConn) error { return nil }

// setReadBuffer asks for size bytes of receive buffer and assumes it was granted.
func setReadBuffer(c *net.UDPConn, size int) int {
	_ = c.SetReadBuffer(size)
	return size
}

const gsoSpace = 0

func gsoSupported(*net.UDPConn) bool { return false }

func appendGSO(b []byte, _ int) []byte { return b }
