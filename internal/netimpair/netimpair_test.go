package netimpair

import (
	"net"
	"testing"
	"time"

	"github.com/pion/transport/v5/stdnet"
)

// send sends n numbered datagrams through an impaired socket to a plain one and returns the
// numbers received, in arrival order, and each one's delay (it reads until 1 s passes with
// nothing).
func send(t *testing.T, c Config, n int) (order []int, delays []time.Duration) {
	t.Helper()
	base, err := stdnet.NewNet()
	if err != nil {
		t.Fatal(err)
	}
	from, err := Net(base, c).ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer from.Close()
	to, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer to.Close()
	_ = to.SetReadBuffer(4 << 20)
	sent := make([]time.Time, n)
	for i := range n {
		sent[i] = time.Now()
		if _, err := from.WriteTo([]byte{byte(i >> 8), byte(i)}, to.LocalAddr()); err != nil {
			t.Fatal(err)
		}
	}
	buf := make([]byte, 16)
	for {
		_ = to.SetReadDeadline(time.Now().Add(time.Second))
		k, _, err := to.ReadFrom(buf)
		if err != nil {
			return order, delays
		}
		if k == 2 {
			i := int(buf[0])<<8 | int(buf[1])
			order = append(order, i)
			delays = append(delays, time.Since(sent[i]))
		}
	}
}

// Every datagram waits at least the delay minus the jitter; jitter reorders them; nothing is
// lost without loss.
func TestDelayAndJitterReorder(t *testing.T) {
	const n = 2000
	order, delays := send(t, Config{Delay: 30 * time.Millisecond, Jitter: 10 * time.Millisecond}, n)
	if len(order) != n {
		t.Fatalf("%d of %d datagrams arrived without loss", len(order), n)
	}
	reordered := 0
	for i := 1; i < len(order); i++ {
		if order[i] < order[i-1] {
			reordered++
		}
	}
	for i, d := range delays {
		if d < 20*time.Millisecond {
			t.Fatalf("datagram %d arrived after %v, under delay - jitter", order[i], d)
		}
	}
	if reordered == 0 {
		t.Fatal("jitter reordered nothing")
	}
	t.Logf("%d of %d arrived after a later one", reordered, n)
}

// Without jitter the order is kept; loss drops about its share.
func TestLossKeepsOrder(t *testing.T) {
	const n = 4000
	order, _ := send(t, Config{Delay: 5 * time.Millisecond, Loss: 0.1}, n)
	if len(order) < n*80/100 || len(order) > n*97/100 {
		t.Fatalf("%d of %d arrived with 10%% loss", len(order), n)
	}
	for i := 1; i < len(order); i++ {
		if order[i] < order[i-1] {
			t.Fatalf("datagram %d arrived after %d without jitter", order[i], order[i-1])
		}
	}
}

// A rate paces datagrams and drops those beyond the queue.
func TestRateQueueDrops(t *testing.T) {
	const n = 1000
	// 30 bytes each on the wire at 30 kB/s: 1 ms apart; a 100 ms queue holds about 100.
	order, _ := send(t, Config{Rate: 30_000, QueueDelay: 100 * time.Millisecond}, n)
	if len(order) < 50 || len(order) > 200 {
		t.Fatalf("%d of %d passed a queue of about 100", len(order), n)
	}
}
