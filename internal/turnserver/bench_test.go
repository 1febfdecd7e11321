package turnserver

import (
	"net"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pion/turn/v5"

	"github.com/switchboard-rtc/switchboard/internal/wsserver"
)

// Relay throughput on loopback: 1,200-byte datagrams from a TURN client (over UDP, TCP and
// TLS) through the embedded server's relay to a plain UDP peer, against the same datagrams
// sent directly, in one run.
// A window of 256 datagrams in flight keeps the sender from overrunning the kernel buffers;
// a datagram not delivered within 100 ms frees its slot and counts as lost.
//
//	go test -run '^$' -bench Relay -benchtime 200000x ./internal/turnserver/
const (
	benchPacket = 1200
	benchWindow = 256
)

func BenchmarkRelay(b *testing.B) {
	b.Run("direct", func(b *testing.B) {
		peer := benchListener(b)
		src, err := net.ListenPacket("udp4", "127.0.0.1:0")
		if err != nil {
			b.Fatal(err)
		}
		defer src.Close()
		benchPath(b, func(p []byte) error { _, err := src.WriteTo(p, peer.LocalAddr()); return err }, peer)
	})
	b.Run("turn", func(b *testing.B) { // over UDP
		s := startServer(b, allowLoopback)
		u, p := s.Credentials("bench", time.Now())
		benchTURN(b, pionClient(b, s, u, p, false))
	})
	b.Run("turn-tcp", func(b *testing.B) {
		s := startServer(b, allowLoopback)
		u, p := s.Credentials("bench", time.Now())
		benchTURN(b, pionClient(b, s, u, p, true))
	})
	b.Run("turn-tls", func(b *testing.B) {
		s := startServer(b, allowLoopback)
		srvCfg, cliCfg := testTLS(b)
		addr, err := s.ListenTLS("127.0.0.1:0", srvCfg)
		if err != nil {
			b.Fatal(err)
		}
		u, p := s.Credentials("bench", time.Now())
		benchTURN(b, pionTLSClient(b, addr.String(), cliCfg, u, p, "127.0.0.1"))
	})
	b.Run("turn-tls-shared", func(b *testing.B) { // through a port shared with HTTPS
		s := startServer(b, allowLoopback)
		srvCfg, cliCfg := testTLS(b)
		inner, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			b.Fatal(err)
		}
		hs := &http.Server{Handler: http.NotFoundHandler(), ReadHeaderTimeout: time.Second}
		done := make(chan struct{})
		go func() {
			defer close(done)
			_ = hs.Serve(wsserver.SharedTLSListener(inner, srvCfg, wsserver.ShareConfig{STUN: s.HandleTLS, Logger: discard()}))
		}()
		b.Cleanup(func() { _ = hs.Close(); <-done })
		u, p := s.Credentials("bench", time.Now())
		benchTURN(b, pionTLSClient(b, inner.Addr().String(), cliCfg, u, p, "127.0.0.1"))
	})
}

// benchTURN allocates through cl and measures the relay to a UDP peer.
func benchTURN(b *testing.B, cl *turn.Client) {
	b.Helper()
	relay, err := cl.Allocate()
	if err != nil {
		b.Fatal(err)
	}
	defer relay.Close()
	peer := benchListener(b)
	// Warm up: the first datagram creates the permission, the channel binds in the
	// background; wait until datagrams flow.
	for i := 0; ; i++ {
		if _, err := relay.WriteTo([]byte("warm"), peer.LocalAddr()); err != nil {
			b.Fatal(err)
		}
		_ = peer.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
		buf := make([]byte, 64)
		if _, _, err := peer.ReadFrom(buf); err == nil {
			break
		} else if i > 50 {
			b.Fatal("relay does not deliver")
		}
	}
	benchPath(b, func(p []byte) error { _, err := relay.WriteTo(p, peer.LocalAddr()); return err }, peer)
}

func benchListener(b *testing.B) *net.UDPConn {
	b.Helper()
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		b.Fatal(err)
	}
	_ = c.SetReadBuffer(4 << 20)
	b.Cleanup(func() { _ = c.Close() })
	return c
}

// benchPath sends b.N datagrams with send and counts what peer receives.
func benchPath(b *testing.B, send func([]byte) error, peer *net.UDPConn) {
	b.Helper()
	window := make(chan struct{}, benchWindow)
	for range benchWindow {
		window <- struct{}{}
	}
	var got atomic.Int64
	var last atomic.Int64 // unix nanos of the last datagram received
	var sent atomic.Bool  // the sender has sent everything
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, 2048)
		for got.Load() < int64(b.N) {
			_ = peer.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
			if _, _, err := peer.ReadFrom(buf); err != nil {
				if sent.Load() {
					return // the rest was lost
				}
				continue // a stall on a loaded machine, not the end
			}
			got.Add(1)
			last.Store(time.Now().UnixNano())
			select {
			case window <- struct{}{}:
			default:
			}
		}
	}()
	pkt := make([]byte, benchPacket)
	timer := time.NewTimer(time.Hour)
	b.SetBytes(benchPacket)
	b.ResetTimer()
	start := time.Now()
	for range b.N {
		select {
		case <-window:
		default:
			timer.Reset(100 * time.Millisecond)
			select {
			case <-window:
			case <-timer.C: // a lost datagram's slot
			}
			timer.Stop()
		}
		if err := send(pkt); err != nil {
			b.Fatal(err)
		}
	}
	sent.Store(true)
	<-done
	b.StopTimer()
	n := got.Load()
	elapsed := time.Duration(last.Load() - start.UnixNano())
	if n == 0 || elapsed <= 0 {
		b.Fatalf("nothing delivered")
	}
	b.ReportMetric(float64(n)/elapsed.Seconds(), "pkt/s")
	b.ReportMetric(float64(n)*benchPacket*8/elapsed.Seconds()/1e6, "Mbit/s")
	b.ReportMetric(100*float64(int64(b.N)-n)/float64(b.N), "%lost")
}

// BenchmarkICEServers is the cost the embedded TURN adds to each join: minting credentials
// and building the entries (the hub then encodes them with the welcome).
func BenchmarkICEServers(b *testing.B) {
	s := startServer(b, nil)
	now := time.Now()
	b.ReportAllocs()
	for b.Loop() {
		_ = s.ICEServers("Vb4k7hVd0S2v0w9Jv1qgXA", now)
	}
}
