package turnserver

import (
	"encoding/binary"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/switchboard-rtc/switchboard/internal/testenv"
)

// TestFreshAllocationLosesNothing (issue 18): a real pion/turn client, over UDP and over TCP,
// sends 10,000 datagrams of 1,200 bytes through a relay right after allocating it, at most
// 256 in flight, so the first go while the permission and the channel bind are under way
// (Send indications, then ChannelData): every one reaches the peer. Then the other way: the
// peer sends 10,000 to the relayed address as soon as its permission exists (the channel
// bind still under way), and the client receives every one. With the kernel's default
// receive buffers (about 70 such datagrams) on the listener and on the relay socket, the
// opening burst of 256 overflowed them while the loop was busy and 187 were lost every time.
func TestFreshAllocationLosesNothing(t *testing.T) {
	s := startServer(t, allowLoopback)
	for _, u := range s.udp {
		if got := readBuffer(u.UDPConn); got < ReadBuffer {
			testenv.Missing(t, "the kernel granted the TURN listener "+itoa(got>>10)+" KiB of receive buffer, not 4 MiB",
				"raise net.core.rmem_max (sysctl -w net.core.rmem_max=4194304) or run as root")
		}
	}
	const count, window = 10_000, 256
	for _, tcp := range []bool{false, true} {
		name := map[bool]string{false: "udp", true: "tcp"}[tcp]
		t.Run(name, func(t *testing.T) {
			u, p := s.Credentials("fresh-"+name, time.Now())
			relay, err := pionClient(t, s, u, p, tcp).Allocate()
			if err != nil {
				t.Fatalf("Allocate: %v", err)
			}
			defer relay.Close()
			peer := newUDPPeer(t)
			sink := newCountingSink(t, peer, count, window)
			sendCounted(t, sink, count, func(p []byte) error {
				_, err := relay.WriteTo(p, peer.LocalAddr())
				return err
			})
			if got := sink.wait(count, time.Second); got != count {
				t.Errorf("the peer received %d of %d datagrams sent right after the allocation: %d lost", got, count, count-got)
			}
		})
		t.Run(name+"-from-peer", func(t *testing.T) {
			u, p := s.Credentials("fresh-back-"+name, time.Now())
			relay, err := pionClient(t, s, u, p, tcp).Allocate()
			if err != nil {
				t.Fatalf("Allocate: %v", err)
			}
			peer := newUDPPeer(t)
			permit(t, relay, peer)
			sink := newCountingSink(t, relay, count, window)
			to := relay.LocalAddr()
			sendCounted(t, sink, count, func(p []byte) error {
				_, err := peer.WriteTo(p, to)
				return err
			})
			if got := sink.wait(count, time.Second); got != count {
				t.Errorf("the client received %d of %d datagrams the peer sent once permitted: %d lost", got, count, count-got)
			}
		})
	}
}

// newUDPPeer returns a UDP socket on 127.0.0.1 with a receive buffer that holds a window.
func newUDPPeer(t *testing.T) *net.UDPConn {
	t.Helper()
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	if got := setReadBuffer(c, ReadBuffer); got < ReadBuffer {
		testenv.Missing(t, "the kernel granted the test's peer "+itoa(got>>10)+" KiB of receive buffer, not 4 MiB",
			"raise net.core.rmem_max (sysctl -w net.core.rmem_max=4194304) or run as root")
	}
	return c
}

// permit sends a datagram through relay to peer until one arrives: the peer then has a
// permission (pion's client sends its CreatePermission before the datagram).
func permit(t *testing.T, relay net.PacketConn, peer *net.UDPConn) {
	t.Helper()
	buf := make([]byte, 64)
	for range 20 {
		if _, err := relay.WriteTo([]byte("permit"), peer.LocalAddr()); err != nil {
			t.Fatal(err)
		}
		_ = peer.SetReadDeadline(time.Now().Add(250 * time.Millisecond))
		if n, _, err := peer.ReadFrom(buf); err == nil && string(buf[:n]) == "permit" {
			_ = peer.SetReadDeadline(time.Time{})
			return
		}
	}
	t.Fatal("nothing reached the peer through the relay")
}

// sendCounted sends count numbered datagrams of 1,200 bytes with write, at most the sink's
// window in flight.
func sendCounted(t *testing.T, sink *countingSink, count int, write func([]byte) error) {
	t.Helper()
	pkt := make([]byte, 1200)
	for i := range count {
		if !sink.slot(2 * time.Second) {
			t.Fatalf("datagram %d: no slot freed for 2 s: %d delivered", i, sink.got.Load())
		}
		binary.BigEndian.PutUint64(pkt, uint64(i)) //nolint:gosec // i >= 0
		if err := write(pkt); err != nil {
			t.Fatalf("datagram %d: %v", i, err)
		}
	}
}

// countingSink reads a peer's socket or a client's relay: it counts distinct sequence
// numbers and hands a window slot back per datagram.
type countingSink struct {
	window chan struct{}
	got    atomic.Int64
}

// newCountingSink reads c until the test ends, when it closes c.
func newCountingSink(t *testing.T, c net.PacketConn, count, window int) *countingSink {
	t.Helper()
	s := &countingSink{window: make(chan struct{}, window)}
	for range window {
		s.window <- struct{}{}
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		seen := make([]bool, count)
		buf := make([]byte, 2048)
		for {
			n, _, err := c.ReadFrom(buf)
			if err != nil {
				return // closed at cleanup
			}
			if n < 8 {
				continue
			}
			if seq := binary.BigEndian.Uint64(buf); seq < uint64(count) && !seen[seq] {
				seen[seq] = true
				s.got.Add(1)
				select {
				case s.window <- struct{}{}:
				default:
				}
			}
		}
	}()
	t.Cleanup(func() { _ = c.Close(); wg.Wait() })
	return s
}

// slot takes a window slot, waiting up to d for one.
func (s *countingSink) slot(d time.Duration) bool {
	select {
	case <-s.window:
		return true
	default:
	}
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-s.window:
		return true
	case <-timer.C:
		return false
	}
}

// wait returns the count once it reaches want, or when it has not grown for quiet.
func (s *countingSink) wait(want int, quiet time.Duration) int {
	last, since := s.got.Load(), time.Now()
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for range tick.C {
		got := s.got.Load()
		if got >= int64(want) || time.Since(since) > quiet {
			return int(got)
		}
		if got != last {
			last, since = got, time.Now()
		}
	}
	return int(s.got.Load())
}
