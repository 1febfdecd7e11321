package sdk

import (
	"errors"
	"net"
	"os"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestDialTCPBounded: a TCP dial to a port that drops SYNs (a listener whose accept queue is
// full, as a firewall that drops packets to the TURN port looks) ends at the dial timeout
// instead of the kernel's two minutes, so PeerConnection.Close does not wait for it.
func TestDialTCPBounded(t *testing.T) {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	if err := unix.Bind(fd, &unix.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		t.Fatal(err)
	}
	if err := unix.Listen(fd, 0); err != nil { // an accept queue of one, never accepted
		t.Fatal(err)
	}
	sa, err := unix.Getsockname(fd)
	if err != nil {
		t.Fatal(err)
	}
	addr := &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: sa.(*unix.SockaddrInet4).Port}
	n, err := BufferedNet(0, nil)
	if err != nil {
		t.Fatal(err)
	}
	bn := n.(bufferedNet)
	bn.dialTimeout = 300 * time.Millisecond
	// Fill the queue; the next SYNs are dropped.
	for i := 0; ; i++ {
		c, err := bn.DialTCP("tcp4", nil, addr)
		if err != nil {
			if !errors.Is(err, os.ErrDeadlineExceeded) {
				var ne net.Error
				if !errors.As(err, &ne) || !ne.Timeout() {
					t.Fatalf("dial %d: %v, want a timeout", i, err)
				}
			}
			break
		}
		defer c.Close()
		if i > 8 {
			t.Fatal("the accept queue never filled")
		}
	}
	start := time.Now()
	_, err = bn.DialTCP("tcp4", nil, addr)
	took := time.Since(start)
	var ne net.Error
	if !errors.As(err, &ne) || !ne.Timeout() {
		t.Fatalf("dial to a full queue: %v, want a timeout", err)
	}
	if took > 5*time.Second {
		t.Fatalf("dial took %v, want about the 300 ms timeout", took)
	}
	if bn2 := n.(bufferedNet); bn2.dialTimeout != TURNDialTimeout {
		t.Fatalf("default dial timeout %v, want %v", bn2.dialTimeout, TURNDialTimeout)
	}
}
