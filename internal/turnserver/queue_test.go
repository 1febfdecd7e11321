package turnserver

import (
	"bytes"
	"net"
	"testing"
	"time"

	"github.com/switchboard-rtc/switchboard/internal/testenv"
)

// TestRelayQueueSendsEveryDatagram: whatever mix the queue holds — runs of one size to one
// peer (sent as one GSO message), a shorter one ending a run, single datagrams, peers taking
// turns, more than a batch — each peer receives its datagrams whole and in order, through
// real sockets, with GSO and without.
func TestRelayQueueSendsEveryDatagram(t *testing.T) {
	for _, gso := range []bool{true, false} {
		name := map[bool]string{true: "gso", false: "sendmmsg"}[gso]
		t.Run(name, func(t *testing.T) {
			relay := newUDPPeer(t)
			var s udpSender
			s.init(relay)
			if gso && !s.gso.Load() {
				testenv.Missing(t, "UDP GSO in the kernel", "run on Linux 4.18 or later")
			}
			s.gso.Store(gso)
			peers := []*net.UDPConn{newUDPPeer(t), newUDPPeer(t)}
			type sent struct {
				peer int
				size int
			}
			var plan []sent
			for _, size := range []int{1200, 1200, 1200, 700, 1200, 1200} { // a run ended by a shorter one
				plan = append(plan, sent{0, size})
			}
			plan = append(plan, sent{1, 30}, sent{0, 30}, sent{1, 1200}, sent{1, 1200}) // peers taking turns
			plan = append(plan, sent{0, 90}, sent{0, 1500}, sent{0, 1500})              // a longer one after a shorter
			for range 70 {                                                              // past a batch: flushed on the way
				plan = append(plan, sent{1, 1000})
			}
			var q relayQueue
			for i, p := range plan {
				q.add(&s, bytes.Repeat([]byte{byte(i)}, p.size), peers[p.peer].LocalAddr())
			}
			q.flush()
			buf := make([]byte, 2048)
			for i, p := range plan {
				c := peers[p.peer]
				_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
				n, _, err := c.ReadFromUDP(buf)
				if err != nil {
					t.Fatalf("datagram %d to peer %d: %v", i, p.peer, err)
				}
				if n != p.size || bytes.Count(buf[:n], []byte{byte(i)}) != n {
					t.Fatalf("datagram %d to peer %d: got %d bytes starting %d, want %d bytes of %d", i, p.peer, n, buf[0], p.size, byte(i))
				}
			}
		})
	}
}
