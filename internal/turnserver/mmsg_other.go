//go:build !linux

package turnserver

import "net"

// udpReader reads one datagram at a time where recvmmsg is not at hand.
type udpReader struct {
	c    *net.UDPConn
	bufs [][]byte
}

func newBatchReader(c *net.UDPConn, bufs [][]byte) (batchReader, error) {
	return &udpReader{c: c, bufs: bufs}, nil
}

func (r *udpReader) readBatch(ds []datagram) (int, error) {
	n, from, err := r.c.ReadFromUDPAddrPort(r.bufs[0])
	if err != nil {
		return 0, err //nolint:wrapcheck // net.ErrClosed once closed, for pion
	}
	ds[0].n, ds[0].from = n, from
	return 1, nil
}
