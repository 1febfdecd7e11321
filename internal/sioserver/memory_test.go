package sioserver

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/switchboard-rtc/switchboard/internal/hub"
	"github.com/switchboard-rtc/switchboard/internal/membudget"
)

// TestHandshakeRefusedWhenBudgetFull: with nine tenths of the memory budget held, an
// Engine.IO handshake gets 503 with Retry-After and the Engine.IO error JSON, counted; with
// room again, it is served and its session's queue is charged until the session goes.
func TestHandshakeRefusedWhenBudgetFull(t *testing.T) {
	b := membudget.New(1 << 20)
	hog := b.NewAccount(membudget.WSQueue, func() {})
	hog.Add(950 << 10)
	ts := startServer(t, hub.Config{}, func(c *Config) { c.Budget = b })
	c := clientFrom(t, "127.0.0.2")
	handshake := ts.url + "socket.io/?EIO=4&transport=polling"
	resp, body := doFrom(t, c, "GET", handshake, "")
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" || !strings.Contains(body, `"code"`) {
		t.Fatalf("handshake with the budget full: %d %q", resp.StatusCode, body)
	}
	if got := ts.sio.stats.RefusedMemory.Load(); got != 1 {
		t.Fatalf("refused for memory: %d", got)
	}
	hog.Release()
	resp, body = doFrom(t, c, "GET", handshake, "")
	if resp.StatusCode != http.StatusOK || !strings.HasPrefix(body, "0{") {
		t.Fatalf("handshake with room: %d %q", resp.StatusCode, body)
	}
	sid := body[strings.Index(body, `"sid":"`)+7:]
	sid = sid[:strings.IndexByte(sid, '"')]
	// CONNECT queues the answer for the next GET: charged while it waits.
	doFrom(t, c, "POST", handshake+"&sid="+sid, "40")
	waitFor(t, 5*time.Second, "the queued CONNECT answer charged", func() bool { return b.Used() > 0 })
	doFrom(t, c, "GET", handshake+"&sid="+sid, "")
	waitFor(t, 5*time.Second, "the collected answer given back", func() bool { return b.Used() == 0 })
}
