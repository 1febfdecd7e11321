package sdk_test

import (
	"context"
	"crypto/sha256"
	"math/rand/v2"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pion/ice/v4"
	"github.com/pion/webrtc/v4"

	"github.com/switchboard-rtc/switchboard/internal/netimpair"
	"github.com/switchboard-rtc/switchboard/internal/testserver"
	"github.com/switchboard-rtc/switchboard/sdk"
)

// impairedEngine is the SDK's loopback SettingEngine, with its transport settings, on a
// network impaired by c (both peers use one: the round trip is twice c.Delay).
func impairedEngine(t *testing.T, c netimpair.Config) *webrtc.SettingEngine {
	t.Helper()
	var se webrtc.SettingEngine
	sdk.TuneTransport(&se)
	n, err := sdk.BufferedNet(4<<20, nil)
	if err != nil {
		t.Fatal(err)
	}
	se.SetNet(netimpair.Net(n, c))
	se.SetIncludeLoopbackCandidate(true)
	se.SetNetworkTypes([]webrtc.NetworkType{webrtc.NetworkTypeUDP4})
	se.SetInterfaceFilter(func(name string) bool { return name == "lo" })
	se.SetIPFilter(func(ip net.IP) bool { return ip.IsLoopback() })
	se.SetICEMulticastDNSMode(ice.MulticastDNSModeDisabled)
	return &se
}

// A reliable data channel on paths people have — a long round trip whose jitter reorders
// packets, and loss — delivers every byte, in order. Before the SDK's transport settings and
// the patched SCTP (third_party/pion-sctp/PATCHES.md), the reordering path crawled at about
// 40 KiB/s and these transfers took minutes: the bound here is far above what they take now
// (seconds) and far below what they took then.
func TestChannelOnImpairedPaths(t *testing.T) {
	for _, c := range []struct {
		name string
		cfg  netimpair.Config
		size int
	}{
		{"200ms RTT ±10ms jitter", netimpair.Config{Delay: 100 * time.Millisecond, Jitter: 10 * time.Millisecond, Rate: 16 << 20}, 4 << 20},
		{"100ms RTT 2% loss", netimpair.Config{Delay: 50 * time.Millisecond, Loss: 0.02, Rate: 16 << 20}, 512 << 10},
	} {
		t.Run(c.name, func(t *testing.T) {
			data := make([]byte, c.size)
			rng := rand.New(rand.NewPCG(3, 4))
			for i := range data {
				data[i] = byte(rng.Uint32())
			}
			want := sha256.Sum256(data)
			url := testserver.Start(t, nil)
			se := impairedEngine(t, c.cfg)
			h := sha256.New()
			var n atomic.Int64
			done := make(chan [32]byte, 1)
			dial(t, url, "impaired", sdk.Options{Name: "b", SettingEngine: se, OnPeer: func(p *sdk.Peer) {
				p.OnDataChannel(func(dc *webrtc.DataChannel) {
					dc.OnMessage(func(m webrtc.DataChannelMessage) {
						h.Write(m.Data)
						if n.Add(int64(len(m.Data))) == int64(c.size) {
							var s [32]byte
							copy(s[:], h.Sum(nil))
							done <- s
						}
					})
				})
			}})
			opened := make(chan *webrtc.DataChannel, 1)
			dial(t, url, "impaired", sdk.Options{Name: "a", SettingEngine: se, OnPeer: func(p *sdk.Peer) {
				dc, err := p.CreateDataChannel("bulk", nil)
				if err != nil {
					t.Error(err)
					return
				}
				dc.OnOpen(func() { opened <- dc })
			}})
			dc := testserver.Recv(t, opened, 30*time.Second, "channel open")
			const bound = 90 * time.Second
			ctx, cancel := context.WithTimeout(context.Background(), bound)
			defer cancel()
			start := time.Now()
			w := sdk.NewChannelWriter(dc, nil)
			defer w.Close()
			if _, err := w.WriteContext(ctx, data); err != nil {
				t.Fatalf("write: %v after %v", err, time.Since(start))
			}
			select {
			case got := <-done:
				if got != want {
					t.Fatal("the bytes arrived changed")
				}
			case <-ctx.Done():
				t.Fatalf("%d of %d bytes in %v", n.Load(), c.size, bound)
			}
			t.Logf("%d KiB in %v", c.size>>10, time.Since(start).Round(time.Millisecond))
		})
	}
}
