package hub

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/switchboard-rtc/switchboard/internal/bus"
	"github.com/switchboard-rtc/switchboard/internal/stats"
	"github.com/switchboard-rtc/switchboard/protocol"
)

// gateBus is an in-memory bus whose joins to room gate wait for release before joining:
// the window of a cluster join that passed Ready and waits on the network.
type gateBus struct {
	bus.Bus
	gate    string
	mu      sync.Mutex
	entered chan *bus.Member
	release chan struct{}
	left    map[*bus.Member]string
}

func (b *gateBus) Join(ctx context.Context, m *bus.Member, max int, welcome func([]protocol.PeerInfo)) error {
	if m.Room == b.gate {
		b.entered <- m
		<-b.release
	}
	return b.Bus.Join(ctx, m, max, welcome)
}

func (b *gateBus) Leave(m *bus.Member, reason string) {
	b.mu.Lock()
	b.left[m] = reason
	b.mu.Unlock()
	b.Bus.Leave(m, reason)
}

func (b *gateBus) leftWith(m *bus.Member) (string, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	r, ok := b.left[m]
	return r, ok
}

// TestRestartMutesLateJoin: a join that passed Ready before a restart began and was welcomed
// after Shutdown(restart) had muted the others was neither muted nor refused: when the
// transport closed its connection for the restart, it left its room, its outbox and tokens
// went, and its client came back as a new presence (a rolling-restart test saw it as
// "left (shutdown)"). It is now muted like the others, whichever way its connection ends.
func TestRestartMutesLateJoin(t *testing.T) {
	for _, end := range []string{"restart close", "connection lost"} {
		t.Run(end, func(t *testing.T) {
			st := new(stats.Stats)
			gb := &gateBus{Bus: bus.NewMemory(st), gate: "late", entered: make(chan *bus.Member, 1),
				release: make(chan struct{}), left: make(map[*bus.Member]string)}
			h, err := New(Config{Logger: quietLogger(), Bus: gb, Stats: st})
			if err != nil {
				t.Fatal(err)
			}
			early, _ := reviewJoin(t, h, `{"type":"join","room":"r"}`)
			earlyID := early.Peer()
			sink := &syncSink{}
			s := h.Connect(sink, time.Now())
			done := make(chan error, 1)
			go func() { done <- s.HandleFrame([]byte(`{"type":"join","id":"j","room":"late"}`), time.Now()) }()
			var m *bus.Member
			select {
			case m = <-gb.entered:
			case <-time.After(10 * time.Second):
				t.Fatal("the join never reached the bus")
			}
			saved := h.Shutdown(true)
			if len(saved) != 1 || saved[0].ID != earlyID {
				t.Fatalf("Shutdown muted %+v; want only the presence that had joined", saved)
			}
			close(gb.release)
			select {
			case err := <-done:
				if err != nil {
					t.Fatalf("the late join: %v", err)
				}
			case <-time.After(10 * time.Second):
				t.Fatal("the late join never ended")
			}
			if sink.welcome(t).Self != m.Info.ID {
				t.Fatal("the late join was not welcomed")
			}
			if end == "restart close" {
				s.Leave(bus.ReasonRestart)
			} else {
				s.Drop("lost")
			}
			if r, ok := gb.leftWith(m); !ok || r != bus.ReasonRestart {
				t.Fatalf("the late presence left its room with %q (left: %v); want it muted (%q)", r, ok, bus.ReasonRestart)
			}
			if s.Peer() != "" {
				t.Fatalf("the session still holds %q", s.Peer())
			}
			// Its outbox is kept for the node its client resumes on.
			ho := m.Handover(0)
			if ho == nil {
				t.Fatal("no handover for the late presence: its outbox was let go")
			}
			// What its client sends before the close gets no answer, as for the others.
			if perr := s.Handle(&protocol.Frame{Type: protocol.TypeLeave}); perr != nil {
				t.Fatalf("a muted session answered %v", perr)
			}
		})
	}
}
