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
// datagram for its net.Addr). Its buffers are its own (a listener's), or taken from slabs
// only once a datagram is there to read and given back by release (a relay socket's, so an
// idle allocation holds none).
type mmsgReader struct {
	rc    syscall.RawConn
	hdrs  []unix.Mmsghdr
	iovs  []unix.Iovec
	names []unix.RawSockaddrInet6 // room for either family
	bufs  [][]byte                // the buffers of the batch read
	own   bool                    // bufs are the reader's own
	slab  *[batchSize * maxDatagram]byte
	n     int
	errno syscall.Errno
	read  func(fd uintptr) bool // bound once: a method value allocates
}

// newMmsgReader reads up to n datagrams at a time from c, into buffers of its own when own
// is set, else into a slab while a batch is being handed out.
func newMmsgReader(c *net.UDPConn, n int, own bool) (*mmsgReader, error) {
	rc, err := c.SyscallConn()
	if err != nil {
		return nil, err //nolint:wrapcheck // the socket's own error
	}
	r := &mmsgReader{
		rc:    rc,
		hdrs:  make([]unix.Mmsghdr, n),
		iovs:  make([]unix.Iovec, n),
		names: make([]unix.RawSockaddrInet6, n),
		bufs:  make([][]byte, n),
		own:   own,
	}
	for i := range r.hdrs {
		r.hdrs[i].Hdr.Iov = &r.iovs[i]
		r.hdrs[i].Hdr.SetIovlen(1)
		r.hdrs[i].Hdr.Name = (*byte)(unsafe.Pointer(&r.names[i]))
	}
	if own {
		buf := make([]byte, n*maxDatagram)
		r.setBuffers(buf)
	}
	r.read = r.recvmmsg
	return r, nil
}

func (r *mmsgReader) setBuffers(buf []byte) {
	for i := range r.bufs {
		r.bufs[i] = buf[i*maxDatagram : (i+1)*maxDatagram : (i+1)*maxDatagram]
		r.iovs[i].Base = &r.bufs[i][0]
		r.iovs[i].SetLen(maxDatagram)
	}
}

func (r *mmsgReader) recvmmsg(fd uintptr) bool {
	if !r.own && r.slab == nil {
		r.slab = slabs.Get().(*[batchSize * maxDatagram]byte) //nolint:forcetypeassert // the pool's own type
		r.setBuffers(r.slab[:])
	}
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
		r.release() // wait for the next datagram without a buffer
		return false
	}
	r.n, r.errno = int(n), e
	return true
}

// readBatch waits for datagrams and reads as many as are there (up to the reader's size);
// datagram i is then r.bufs[i][:size(i)] from from(i), until the next readBatch or release.
func (r *mmsgReader) readBatch() (int, error) {
	if err := r.rc.Read(r.read); err != nil {
		r.release()
		return 0, err //nolint:wrapcheck // net.ErrClosed once closed, for pion
	}
	if r.errno != 0 {
		r.release()
		return 0, &net.OpError{Op: "read", Net: "udp", Err: r.errno}
	}
	return r.n, nil
}

func (r *mmsgReader) size(i int) int { return min(int(r.hdrs[i].Len), maxDatagram) }

func (r *mmsgReader) from(i int) netip.AddrPort { return sockaddrPort(&r.names[i]) }

// release gives the slab back once the batch has been handed out.
func (r *mmsgReader) release() {
	if r.slab != nil {
		slabs.Put(r.slab)
		r.slab = nil
	}
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
