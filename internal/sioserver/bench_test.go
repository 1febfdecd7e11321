package sioserver

import (
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/switchboard-rtc/switchboard/internal/hub"
	"github.com/switchboard-rtc/switchboard/internal/wsserver"
)

// BenchmarkRelayOffer: one 3 KB offer EVENT from a lobby socket to another, decoded,
// validated, routed and encoded into the target's (polling) queue: the server's work per
// relayed message, without the sockets.
func BenchmarkRelayOffer(b *testing.B) {
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	h, err := hub.New(hub.Config{RateLimit: 1e12, RateBurst: 1e12, Logger: log})
	if err != nil {
		b.Fatal(err)
	}
	ws, err := wsserver.New(wsserver.Config{Hub: h, Logger: log})
	if err != nil {
		b.Fatal(err)
	}
	defer ws.Close()
	srv, err := New(Config{Hub: h, WS: ws, Logger: log, SendQueueBytes: 1 << 30})
	if err != nil {
		b.Fatal(err)
	}
	defer srv.Close()
	now := time.Now()
	from, to := newSess(srv, now), newSess(srv, now)
	_ = from.connect(nil, now)
	_ = to.connect(nil, now)
	sdp := strings.Repeat(`a=candidate:1 1 udp 2122260223 192.0.2.1 54400 typ host\r\n`, 50)
	pkt := []byte(`42["offer",{"target":"` + string(to.id) + `","from":"` + string(from.id) + `","type":"offer","sdp":"` + sdp + `"}]`)
	b.SetBytes(int64(len(pkt)))
	b.ReportAllocs()
	for b.Loop() {
		from.in.Lock()
		err := from.packet(eioPacket{typ: eioMessage, data: pkt[1:]}, now)
		from.in.Unlock()
		if err != nil {
			b.Fatal(err)
		}
		to.mu.Lock()
		to.queue = to.queue[:0]
		to.mu.Unlock()
	}
}
