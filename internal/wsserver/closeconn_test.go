package wsserver

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"

	"github.com/switchboard-rtc/switchboard/internal/bus"
	"github.com/switchboard-rtc/switchboard/internal/hub"
	"github.com/switchboard-rtc/switchboard/internal/membudget"
)

// TestNothingHandledAfterCloseFrame: bytes that follow a client's close frame in the same
// read are discarded. A partial frame after it must not be carried (and charged to the memory
// budget) by a connection that is already closed — the charge would never be given back — and
// a join after it must not put a presence in a room with no connection behind it.
func TestNothingHandledAfterCloseFrame(t *testing.T) {
	b := membudget.New(64 << 20)
	// One loop: once the watcher's own request is answered, the loop has handled everything
	// the closed connections sent before.
	s, hs := startTestServer(t, hub.Config{}, Config{Budget: b, KernelSendBuffer: 128 << 10, Loops: 1})
	addr := strings.TrimPrefix(hs.URL, "http://")
	watcher, st := rawDial(t, addr, "127.0.0.1", "")
	if st != http.StatusSwitchingProtocols {
		t.Fatalf("handshake: %d", st)
	}
	closeFrame := rawFrame(0x88, []byte{0x03, 0xe8})

	// A close frame, then the first 40 KiB of a 60 KiB frame, in one write.
	r, st := rawDial(t, addr, "127.0.0.1", "")
	if st != http.StatusSwitchingProtocols {
		t.Fatalf("handshake: %d", st)
	}
	big := []byte{0x81, 0x80 | 126, 0xF0, 0x00, 0, 0, 0, 0} // 61,440 bytes, all-zero mask
	big = append(big, bytes.Repeat([]byte("a"), 40<<10)...)
	if _, err := r.conn.Write(append(closeFrame, big...)); err != nil {
		t.Fatal(err)
	}
	if code, _ := r.closeCode(t); code != 1000 {
		t.Fatalf("close code %d", code)
	}

	// A close frame, then a join, in one write.
	r2, st := rawDial(t, addr, "127.0.0.1", "")
	if st != http.StatusSwitchingProtocols {
		t.Fatalf("handshake: %d", st)
	}
	join := rawFrame(0x81, []byte(`{"type":"join","room":"ghost"}`))
	if _, err := r2.conn.Write(append(closeFrame, join...)); err != nil {
		t.Fatal(err)
	}
	if code, _ := r2.closeCode(t); code != 1000 {
		t.Fatalf("close code %d", code)
	}

	// Sync with the loop: the watcher's join is answered after both closes were handled.
	watcher.send(t, `{"type":"join","room":"sync"}`)
	if ev := watcher.event(t); ev["type"] != "welcome" {
		t.Fatalf("watcher: %v", ev)
	}
	waitUntil(t, "both connections closed", func() bool { return s.stats.Connections.Load() == 1 })
	peers, err := s.hub.Peers(context.Background(), "ghost")
	if err != nil && !errors.Is(err, bus.ErrNoRoom) {
		t.Fatal(err)
	}
	if len(peers) != 0 {
		t.Errorf("a join sent after the close frame left %d presence(s) in the room", len(peers))
	}
	// The watcher's welcome may still be charged for a moment (queued during the loop's batch).
	waitUntil(t, "the budget back to 0", func() bool { return b.Used() == 0 })
}
