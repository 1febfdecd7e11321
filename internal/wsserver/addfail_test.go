package wsserver

import (
	"net/http"
	"testing"

	"github.com/switchboard-rtc/switchboard/internal/membudget"
)

// TestUpgradeThatCannotRegister: when the socket cannot join its loop (the loop stopping, or
// epoll refusing it), what the adopting protocol already queued on it (its first packet,
// held for the loop's end-of-batch flush) is given back to the memory budget, and the flush
// still due must not write to the descriptor closed meanwhile.
func TestUpgradeThatCannotRegister(t *testing.T) {
	b := membudget.New(64 << 20)
	done := make(chan struct{}, 1)
	s, addr := newEdgeServer(t, Config{Budget: b, Loops: 1}, func(s *Server) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			defer func() { done <- struct{}{} }()
			s.Adopt(w, r, func(c *Conn) Handler {
				c.SendText(func(dst []byte) []byte { return append(dst, "hello"...) })
				return &nopHandler{}
			})
		})
	})
	l := s.loops[0]
	// The loop is mid-batch (so the first packet waits for its flush) and stopping (so the
	// socket cannot join it).
	l.mu.Lock()
	l.stop = true
	l.mu.Unlock()
	l.fmu.Lock()
	l.batching = true
	l.fmu.Unlock()
	_, st := rawDial(t, addr, "127.0.0.1", "")
	<-done
	if st != http.StatusSwitchingProtocols {
		t.Fatalf("handshake: %d", st)
	}
	l.fmu.Lock()
	var pending []*conn
	pending = append(pending, l.dirty...)
	l.fmu.Unlock()
	if len(pending) != 1 {
		t.Fatalf("%d connections wait for the flush, want the refused one", len(pending))
	}
	c := pending[0]
	c.mu.Lock()
	closed := c.closed
	c.mu.Unlock()
	if !closed {
		t.Error("the refused connection is not marked closed: its flush would write to a closed (or reused) descriptor")
	}
	if b.Used() != 0 {
		t.Errorf("the refused connection's queue is still charged: %d bytes", b.Used())
	}
}
