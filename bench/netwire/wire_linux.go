//go:build linux

package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// vnetHdrLen is the size of struct virtio_net_hdr, which PACKET_VNET_HDR puts before each
// frame read and expects before each frame written. It carries the checksum-offload state:
// a frame from a veth often has its transport checksum not yet filled in (CHECKSUM_PARTIAL);
// passing the header on lets the far veth finish it, where a bare copy would arrive with a
// bad checksum and be dropped.
const vnetHdrLen = 10

// virtio_net_hdr flags: NEEDS_CSUM is passed on; DATA_VALID (the checksum was checked on
// the way in) is cleared, since it means nothing for a frame sent out again.
const vnetFlagDataValid = 2

// maxFrame bounds one read: a 64 KiB GSO frame plus its headers (with gso_max_segs 1 on the
// veths frames stay near the MTU, but an unsplit one must not be cut).
const maxFrame = 65536 + 14 + vnetHdrLen + 64

// openPacket opens an AF_PACKET raw socket bound to the interface name, with vnet headers
// and its own outgoing frames ignored (else each side would read back what the other side
// wrote to it). The socket is non-blocking and wrapped in an *os.File, so reads and writes
// go through Go's poller and Close wakes a blocked read.
func openPacket(name string) (*os.File, error) {
	ifi, err := net.InterfaceByName(name)
	if err != nil {
		return nil, err
	}
	// Protocol 0 at creation: no frames are queued until bind names the interface.
	fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("AF_PACKET socket: %w", err)
	}
	setup := func() error {
		for _, o := range []struct {
			name     string
			opt, val int
		}{
			{"PACKET_VNET_HDR", unix.PACKET_VNET_HDR, 1},
			{"PACKET_IGNORE_OUTGOING", unix.PACKET_IGNORE_OUTGOING, 1},
		} {
			if err := unix.SetsockoptInt(fd, unix.SOL_PACKET, o.opt, o.val); err != nil {
				return fmt.Errorf("%s: %w", o.name, err)
			}
		}
		// Room for a burst while the forwarder is descheduled (2 cores, shared).
		_ = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, 16<<20)
		_ = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_SNDBUFFORCE, 4<<20)
		sa := &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_ALL), Ifindex: ifi.Index}
		if err := unix.Bind(fd, sa); err != nil {
			return fmt.Errorf("bind to %s: %w", name, err)
		}
		return nil
	}
	if err := setup(); err != nil {
		unix.Close(fd)
		return nil, err
	}
	return os.NewFile(uintptr(fd), "packet:"+name), nil
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }

// direction forwards frames read from in to out through a shaper.
type direction struct {
	name    string
	in, out *os.File
	mu      sync.Mutex
	sh      *shaper
	wake    chan struct{} // cap 1: a frame was queued
	writeEr uint64        // frames the kernel refused (counted by the writer only)
}

// runWire forwards between the interfaces a and b in both directions, each with imp, until
// ctx ends; then it prints each direction's counts to stats.
func runWire(ctx context.Context, a, b string, imp Impairment, limit int, seed uint64, stats io.Writer) error {
	fa, err := openPacket(a)
	if err != nil {
		return err
	}
	defer fa.Close()
	fb, err := openPacket(b)
	if err != nil {
		return err
	}
	defer fb.Close()
	dirs := []*direction{
		{name: a + "->" + b, in: fa, out: fb, sh: newShaper(imp, limit, seed), wake: make(chan struct{}, 1)},
		{name: b + "->" + a, in: fb, out: fa, sh: newShaper(imp, limit, seed+1), wake: make(chan struct{}, 1)},
	}
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	var wg sync.WaitGroup
	for _, d := range dirs {
		wg.Add(2)
		go func() {
			defer wg.Done()
			if err := d.read(ctx); err != nil {
				cancel(err)
			}
		}()
		go func() {
			defer wg.Done()
			d.write(ctx)
		}()
	}
	<-ctx.Done()
	// Closing the files wakes the readers blocked in the poller.
	fa.Close()
	fb.Close()
	wg.Wait()
	for _, d := range dirs {
		d.mu.Lock()
		s := d.sh.stats
		held := len(d.sh.q)
		d.mu.Unlock()
		fmt.Fprintf(stats, "netwire %s: in %d, lost %d (%.2f %%), overflow %d, out %d, write errors %d, held at exit %d\n",
			d.name, s.In, s.Lost, pct(s.Lost, s.In), s.Overflow, s.Out, d.writeEr, held)
	}
	if cause := context.Cause(ctx); cause != nil && !errors.Is(cause, context.Canceled) {
		return cause
	}
	return nil
}

func pct(a, b uint64) float64 {
	if b == 0 {
		return 0
	}
	return 100 * float64(a) / float64(b)
}

// read takes frames from d.in into the shaper until the file is closed.
func (d *direction) read(ctx context.Context) error {
	buf := make([]byte, maxFrame)
	for {
		n, err := d.in.Read(buf)
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, os.ErrClosed) {
				return nil
			}
			return fmt.Errorf("%s: read: %w", d.name, err)
		}
		if n <= vnetHdrLen {
			continue
		}
		frame := make([]byte, n)
		copy(frame, buf[:n])
		frame[0] &^= vnetFlagDataValid
		d.mu.Lock()
		queued := d.sh.admit(time.Now(), frame)
		d.mu.Unlock()
		if queued {
			select {
			case d.wake <- struct{}{}:
			default:
			}
		}
	}
}

// write releases frames to d.out at their time, in release order, until ctx ends.
func (d *direction) write(ctx context.Context) {
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	var batch [][]byte
	for {
		d.mu.Lock()
		batch = d.sh.due(time.Now(), batch[:0])
		next, ok := d.sh.next()
		d.mu.Unlock()
		for i, f := range batch {
			if _, err := d.out.Write(f); err != nil {
				if ctx.Err() != nil {
					return
				}
				d.writeEr++ // e.g. ENOBUFS: the frame is lost, as on a real link
			}
			batch[i] = nil
		}
		wait := time.Hour
		if ok {
			wait = time.Until(next)
			if wait <= 0 {
				continue
			}
		}
		timer.Reset(wait)
		select {
		case <-ctx.Done():
			return
		case <-d.wake:
		case <-timer.C:
		}
	}
}
