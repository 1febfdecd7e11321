package wsserver

import (
	"bytes"
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/switchboard-rtc/switchboard/internal/hub"
	"github.com/switchboard-rtc/switchboard/internal/membudget"
)

// TestUpgradeRefusedWhenBudgetFull: with nine tenths of the memory budget held, an upgrade is
// answered 503 with Retry-After before any 101, and counted; once the budget has room again,
// upgrades are served.
func TestUpgradeRefusedWhenBudgetFull(t *testing.T) {
	b := membudget.New(1 << 20)
	hog := b.NewAccount(membudget.WSQueue, func() {})
	if !hog.Add(950 << 10) {
		t.Fatal("charge refused")
	}
	s, hs := startTestServer(t, hub.Config{}, Config{Budget: b, KernelSendBuffer: 128 << 10})
	url := "ws" + strings.TrimPrefix(hs.URL, "http")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, resp, err := websocket.Dial(ctx, url, nil)
	if err == nil || resp == nil || resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("upgrade with the budget full: %v, %+v", err, resp)
	}
	if got := s.stats.RefusedMemory.Load(); got != 1 {
		t.Fatalf("refused for memory: %d", got)
	}
	hog.Release()
	c := dialT(t, url)
	c.CloseNow()
}

// TestPartialFrameCharged: an incomplete frame is charged to the budget while it is carried
// and given back when it completes; one the budget cannot hold closes its connection 1013.
func TestPartialFrameCharged(t *testing.T) {
	b := membudget.New(1 << 20)
	_, hs := startTestServer(t, hub.Config{}, Config{Budget: b, MaxFrameBytes: 512 << 10, SendQueueBytes: 1 << 20})
	r, st := rawDial(t, strings.TrimPrefix(hs.URL, "http://"), "127.0.0.1", "")
	if st != http.StatusSwitchingProtocols {
		t.Fatalf("handshake: %d", st)
	}
	// Half of a 200 KiB frame (all-zero mask): the connection carries it.
	frame := []byte{0x81, 0x80 | 127, 0, 0, 0, 0, 0, 0x03, 0x20, 0x00, 0, 0, 0, 0}
	frame = append(frame, bytes.Repeat([]byte("a"), 200<<10)...)
	write := func(p []byte) {
		if _, err := r.conn.Write(p); err != nil {
			t.Fatal(err)
		}
	}
	write(frame[:100<<10])
	waitUntil(t, "the partial frame charged", func() bool { return b.Used() >= 100<<10 })
	// Nearly all of the rest of the budget goes elsewhere: the frame cannot grow.
	other := b.NewAccount(membudget.WSQueue, func() {})
	if !other.Add(b.Limit() - b.Used() - 4<<10) {
		t.Fatal("charge refused")
	}
	write(frame[100<<10 : 160<<10]) // still incomplete, and past what its buffer holds
	if code, _ := r.closeCode(t); code != CloseTryAgainLater {
		t.Fatalf("closed with %d, want %d", code, CloseTryAgainLater)
	}
	waitUntil(t, "the connection's charges given back", func() bool { return b.Used() == other.Held() })
}
