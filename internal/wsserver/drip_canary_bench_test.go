package wsserver

import (
	"encoding/binary"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/switchboard-rtc/switchboard/internal/hub"
)

// BenchmarkCanaryUnderDrippedFrames: 500 connections each send 60 KiB of a 64 KiB frame, then
// drip one more byte every 50 ms (10,000 reads a second of a large partial frame), while a
// pair of peers relays a message every 5 ms for 3 s. It reports the canary's latency
// percentiles (one loop serves everyone):
//
//	go test -run '^$' -bench CanaryUnderDrippedFrames -benchtime 1x ./internal/wsserver/
func BenchmarkCanaryUnderDrippedFrames(b *testing.B) {
	_, hs := startTestServer(b, hub.Config{RateLimit: 1e9, RateBurst: 1e9}, Config{Loops: 1, FrameTimeout: time.Minute, ConnsPerClient: 1000}) // one address plays every client
	addr := strings.TrimPrefix(hs.URL, "http://")

	const attackers = 500
	partial := binary.BigEndian.AppendUint16([]byte{0x82, 0x80 | 126}, 64<<10-1)
	partial = append(partial, 0, 0, 0, 0)
	partial = append(partial, make([]byte, 60<<10)...)
	conns := make([]*benchConn, attackers)
	for i := range conns {
		conns[i] = benchDial(b, addr)
		defer conns[i].Close()
		if _, err := conns[i].conn.Write(partial); err != nil {
			b.Fatal(err)
		}
	}
	stop := make(chan struct{})
	dripped := make(chan struct{})
	go func() {
		defer close(dripped)
		tick := time.NewTicker(50 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
				for _, c := range conns {
					_, _ = c.conn.Write([]byte{0})
				}
			}
		}
	}()
	defer func() { close(stop); <-dripped }()

	measureCanary(b, addr)
}

// measureCanary joins a pair of peers to a room of their own on addr and, b.N times over 3 s,
// relays a message every 5 ms from one to the other, reporting the latency percentiles.
func measureCanary(b *testing.B, addr string) {
	callee := benchDial(b, addr)
	caller := benchDial(b, addr)
	defer callee.Close()
	defer caller.Close()
	callee.write(`{"type":"join","room":"canary"}`)
	calleeID := callee.readJSON().Peer
	caller.write(`{"type":"join","room":"canary"}`)
	caller.readJSON()
	callee.readJSON() // peer-joined
	frame := caller.frame(`{"type":"message","target":"` + calleeID + `","data":1}`)

	b.ResetTimer()
	var lat []time.Duration
	pace := time.NewTicker(5 * time.Millisecond)
	defer pace.Stop()
	for i := 0; i < b.N; i++ {
		end := time.Now().Add(3 * time.Second)
		for time.Now().Before(end) {
			<-pace.C
			start := time.Now()
			if _, err := caller.conn.Write(frame); err != nil {
				b.Fatal(err)
			}
			if _, _, err := callee.readFrame(); err != nil {
				b.Fatal(err)
			}
			lat = append(lat, time.Since(start))
		}
	}
	b.StopTimer()
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-ms")
	b.ReportMetric(float64(len(lat)), "messages")
}
