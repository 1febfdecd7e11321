package turnserver

import (
	"net"
	"net/netip"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// mmsgReader reads a batch of datagrams with one recvmmsg, without allocating: the source
// addresses come back as netip.AddrPort (golang.org/x/net's ReadBatch allocates two objects per
// datagram for its net.Addr).
type mmsgReader struct {
	rc    syscall.RawConn
	hdrs  []unix.Mmsghdr
	iovs  []unix.Iovec
	names []unix.RawSockaddrInet6 // room for either family
	n     int
	errno syscall.Errno
	read  func(fd uintptr) bool // bound once: a method value allocates
}

func newBatchReader(c *net.UDPConn, bufs [][]byte) (batchReader, error) {
	rc, err := c.SyscallConn()
	if err != nil {
		return nil, err //nolint:wrapcheck // the socket's own error
	}
	r := &mmsgReader{
		rc:    rc,
		hdrs:  make([]unix.Mmsghdr, len(bufs)),
		iovs:  make([]unix.Iovec, len(bufs)),
		names: make([]unix.RawSockaddrInet6, len(bufs)),
	}
	for i, b := range bufs {
		r.iovs[i].Base = &b[0]
		r.iovs[i].SetLen(len(b))
		r.hdrs[i].Hdr.Iov = &r.iovs[i]
		r.hdrs[i].Hdr.SetIovlen(1)
		r.hdrs[i].Hdr.Name = (*byte)(unsafe.Pointer(&r.names[i]))
	}
	r.read = r.recvmmsg
	return r, nil
}

func (r *mmsgReader) recvmmsg(fd uintptr) bool {
	for i := range r.hdrs {
		r.hdrs[i].Hdr.Namelen = unix.SizeofSockaddrInet6
		r.hdrs[i].Hdr.Flags = 0
		r.hdrs[i].Len = 0
	}
	n, _, e := unix.Syscall6(unix.SYS_RECVMMSG, fd, uintptr(unsafe.Pointer(&r.hdrs[0])), uintptr(len(r.hdrs)), 0, 0, 0)
	for e == unix.EINTR {
		n, _, e = unix.Syscall6(unix.SYS_RECVMMSG, fd, uintptr(unsafe.Pointer(&r.hdrs[0])), uintptr(len(r.hdrs)), 0, 0, 0)
	}
	if e == unix.EAGAIN {
		return false // the poller waits for the next datagram
	}
	r.n, r.errno = int(n), e
	return true
}

// readBatch fills ds (as many as the buffers it was made with) and returns how many.
func (r *mmsgReader) readBatch(ds []datagram) (int, error) {
	if err := r.rc.Read(r.read); err != nil {
		return 0, err //nolint:wrapcheck // net.ErrClosed once closed, for pion
	}
	if r.errno != 0 {
		return 0, &net.OpError{Op: "read", Net: "udp", Err: r.errno}
	}
	for i := range r.n {
		ds[i].n = int(r.hdrs[i].Len)
		ds[i].from = sockaddrPort(&r.names[i])
	}
	return r.n, nil
}

// sockaddrPort decodes an AF_INET or AF_INET6 sockaddr.
func sockaddrPort(sa *unix.RawSockaddrInet6) netip.AddrPort {
	p := (*[2]byte)(unsafe.Pointer(&sa.Port)) // network order
	port := uint16(p[0])<<8 | uint16(p[1])
	if sa.Family == unix.AF_INET {
		sa4 := (*unix.RawSockaddrInet4)(unsafe.Pointer(sa))
		return netip.AddrPortFrom(netip.AddrFrom4(sa4.Addr), port)
	}
	a := netip.AddrFrom16(sa.Addr)
	if sa.Scope_id != 0 {
		a = a.WithZone(zoneName(int(sa.Scope_id)))
	}
	return netip.AddrPortFrom(a, port)
}
