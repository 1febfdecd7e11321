//go:build linux

package main

import (
	"fmt"
	"net"

	"golang.org/x/sys/unix"
)

// congestion sets the connection's TCP congestion control to cc (unless empty) and returns
// the one the socket uses, read back from the kernel.
func congestion(c *net.TCPConn, cc string) (string, error) {
	rc, err := c.SyscallConn()
	if err != nil {
		return "", err
	}
	var used string
	var opErr error
	err = rc.Control(func(fd uintptr) {
		if cc != "" {
			if opErr = unix.SetsockoptString(int(fd), unix.IPPROTO_TCP, unix.TCP_CONGESTION, cc); opErr != nil {
				opErr = fmt.Errorf("TCP_CONGESTION %s: %w", cc, opErr)
				return
			}
		}
		used, opErr = unix.GetsockoptString(int(fd), unix.IPPROTO_TCP, unix.TCP_CONGESTION)
	})
	if err != nil {
		return "", err
	}
	return used, opErr
}
