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

// TestFreshAllocationLosesNothing (issue 18): a real pion/turn client sends 10,000 datagrams
// of 1,200 bytes through a relay right after allocating it, at most 256 in flight, so the
// first go while the permission and the channel bind are under way (Send indications, then
// ChannelData): every one reaches the peer. With the kernel's default receive buffer on the
// listener (about 80 such datagrams) the opening burst of 256 overflowed it while the loop
// was busy and 187 were lost every time.
func TestFreshAllocationLosesNothing(t *testing.T) {
	s := startServer(t, allowLoopback)
	for _, u := range s.udp {
		if got := readBuffer(u.UDPConn); got < ReadBuffer {
			testenv.Missing(t, "the kernel granted the TURN listener "+itoa(got>>10)+" KiB of receive buffer, not 4 MiB",
				"raise net.core.rmem_max (sysctl -w net.core.rmem_max=4194304) or run as root")
		}
	}
	for _, tcp := range []bool{false, true} {
		name := map[bool]string{false: "udp", true: "tcp"}[tcp]
		t.Run(name, func(t *testing.T) {
			u, p := s.Credentials("fresh-"+name, time.Now())
			cl := pionClient(t, s, u, p, tcp)
			relay, err := cl.Allocate()
			if err != nil {
				t.Fatalf("Allocate: %v", err)
			}
			defer relay.Close()
			const count, window = 10_000, 256
			sink := newCountingSink(t, count, window)
			pkt := make([]byte, 1200)
			for i := range count {
				if !sink.slot(2 * time.Second) {
					t.Fatalf("datagram %d: no slot freed for 2 s: %d delivered", i, sink.got.Load())
				}
				binary.BigEndian.PutUint64(pkt, uint64(i)) //nolint:gosec // i >= 0
				if _, err := relay.WriteTo(pkt, sink.conn.LocalAddr()); err != nil {
					t.Fatalf("datagram %d: %v", i, err)
				}
			}
			if got := sink.wait(count, time.Second); got != count {
				t.Errorf("the peer received %d of %d datagrams sent right after the allocation: %d lost", got, count, count-got)
			}
		})
	}
}

// countingSink is a UDP peer that counts distinct sequence numbers and hands a window slot
// back per datagram.
type countingSink struct {
	conn   *net.UDPConn
	window chan struct{}
	got    atomic.Int64
}

func newCountingSink(t *testing.T, count, window int) *countingSink {
	t.Helper()
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	if got := setReadBuffer(c, ReadBuffer); got < ReadBuffer {
		testenv.Missing(t, "the kernel granted the test's peer "+itoa(got>>10)+" KiB of receive buffer, not 4 MiB",
			"raise net.core.rmem_max (sysctl -w net.core.rmem_max=4194304) or run as root")
	}
	s := &countingSink{conn: c, window: make(chan struct{}, window)}
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
			n, _, err := c.ReadFromUDP(buf)
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
