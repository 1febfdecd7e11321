package wsserver

import (
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/switchboard-rtc/switchboard/internal/hub"
)

// BenchmarkCanaryUnderBroadcasts: 10 senders broadcast 60 KB messages, 12 a second each, to a
// room of 40 peers (each broadcast is 2.4 MB to write), on one event loop, while a pair of
// peers in another room relays a message every 5 ms for 3 s. It reports the canary's latency
// percentiles with the loop's 2 ms batch slice and without it, in the same run:
//
//	go test -run '^$' -bench CanaryUnderBroadcasts -benchtime 1x ./internal/wsserver/
func BenchmarkCanaryUnderBroadcasts(b *testing.B) {
	for _, c := range []struct {
		name  string
		slice time.Duration
	}{{"slice-2ms", 2 * time.Millisecond}, {"no-slice", time.Hour}} {
		b.Run(c.name, func(b *testing.B) { canaryUnderBroadcasts(b, c.slice) })
	}
}

func canaryUnderBroadcasts(b *testing.B, slice time.Duration) {
	hcfg := hub.Config{RateLimit: 1e9, RateBurst: 1e9, Clients: hub.ClientLimits{JoinRate: 1e6, JoinBurst: 1e6}} // one address plays every peer
	_, hs := startTestServer(b, hcfg, Config{Loops: 1, SendQueueBytes: 64 << 20, BatchSlice: slice})
	addr := strings.TrimPrefix(hs.URL, "http://")
	var wg sync.WaitGroup
	var members []*benchConn
	for range 40 {
		c := benchDial(b, addr)
		c.write(`{"type":"join","room":"flood"}`)
		c.readJSON()
		members = append(members, c)
	}
	for _, c := range members {
		wg.Add(1)
		go func() { // members read everything, so nobody is dropped as slow
			defer wg.Done()
			for {
				if _, _, err := c.readFrame(); err != nil {
					return
				}
			}
		}()
	}
	big := `{"type":"message","broadcast":true,"data":"` + strings.Repeat("x", 60_000) + `"}`
	stop := make(chan struct{})
	var senders []*benchConn
	for range 10 {
		s := benchDial(b, addr)
		s.write(`{"type":"join","room":"flood"}`)
		s.readJSON()
		senders = append(senders, s)
		frame := s.frame(big)
		wg.Add(2)
		go func() { // what the server sends a sender (peer-joined) is read and dropped
			defer wg.Done()
			for {
				if _, _, err := s.readFrame(); err != nil {
					return
				}
			}
		}()
		go func() { // 12 broadcasts a second each, 120 in all: ~290 MB/s to write
			defer wg.Done()
			tick := time.NewTicker(time.Second / 12)
			defer tick.Stop()
			for {
				select {
				case <-stop:
					return
				case <-tick.C:
				}
				if _, err := s.conn.Write(frame); err != nil {
					return
				}
			}
		}()
	}
	defer func() {
		close(stop)
		for _, c := range append(members, senders...) {
			c.Close()
		}
		wg.Wait()
	}()

	measureCanary(b, addr)
}
