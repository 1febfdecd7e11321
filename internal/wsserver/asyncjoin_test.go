package wsserver

import (
	"context"
	"io"
	"log/slog"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/switchboard-rtc/switchboard/internal/bus"
	"github.com/switchboard-rtc/switchboard/internal/hub"
	"github.com/switchboard-rtc/switchboard/protocol"
)

// gatedBus is the in-memory bus whose joins wait for the test to open a gate, as a cluster
// bus's joins wait on a round trip to another node.
type gatedBus struct {
	*bus.Memory
	entered chan struct{}
	gate    chan struct{}
}

func (b *gatedBus) SlowJoins() bool { return true }

func (b *gatedBus) Join(ctx context.Context, m *bus.Member, max int, welcome func([]protocol.PeerInfo)) error {
	b.entered <- struct{}{}
	<-b.gate
	return b.Memory.Join(ctx, m, max, welcome)
}

// A join waiting on the bus does not hold up the other connections of its event loop; its
// welcome arrives when the bus answers; and a connection that goes while its join waits does
// not leave a presence behind.
func TestSlowJoinDoesNotStallTheLoop(t *testing.T) {
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	gb := &gatedBus{Memory: bus.NewMemory(nil), entered: make(chan struct{}, 4), gate: make(chan struct{})}
	h, err := hub.New(hub.Config{Logger: log, Bus: gb, ResumeGrace: -1})
	if err != nil {
		t.Fatal(err)
	}
	s, err := New(Config{Hub: h, Logger: log, Loops: 1}) // one loop: every connection shares it
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(s)
	t.Cleanup(func() { hs.Close(); _ = s.Close() })
	url := "ws" + strings.TrimPrefix(hs.URL, "http")
	t.Cleanup(func() { close(gb.gate) }) // first: a failed test leaves no join waiting

	a, b := dialT(t, url), dialT(t, url)
	writeT(t, a, `{"type":"join","id":"ja","room":"r"}`)
	<-gb.entered // a's join waits on the bus
	writeT(t, a, `{"type":"join","id":"again","room":"r"}`)
	if m, err := readT(t, a); err != nil || !strings.Contains(m, `"already-joined"`) || !strings.Contains(m, `"again"`) {
		t.Fatalf("second join while one waits: %s %v", m, err)
	}
	// Meanwhile the loop serves b at once.
	writeT(t, b, `{"type":"message","id":"x","target":"nobody","data":1}`)
	if m, err := readT(t, b); err != nil || !strings.Contains(m, `"not-joined"`) {
		t.Fatalf("b while a's join waits: %s %v", m, err)
	}
	gb.gate <- struct{}{}
	if m, err := readT(t, a); err != nil || !strings.Contains(m, `"welcome"`) || !strings.Contains(m, `"ja"`) {
		t.Fatalf("a's welcome: %s %v", m, err)
	}

	// c's connection goes while its join waits: once admitted, it leaves at once.
	writeT(t, b, `{"type":"join","room":"r"}`)
	gb.gate <- struct{}{}
	if m, err := readT(t, b); err != nil || !strings.Contains(m, `"welcome"`) {
		t.Fatalf("b's welcome: %s %v", m, err)
	}
	c := dialT(t, url)
	writeT(t, c, `{"type":"join","room":"r"}`)
	<-gb.entered
	<-gb.entered
	c.CloseNow()
	// Open the gate only once the server has seen c go, so the join completes for a
	// connection that is gone.
	deadline := time.Now().Add(5 * time.Second)
	for h.Stats().Connections.Load() != 2 {
		if time.Now().After(deadline) {
			t.Fatal("server did not see c close")
		}
		time.Sleep(time.Millisecond) // polling a gauge with a deadline, not waiting for an event
	}
	gb.gate <- struct{}{}
	var joined, left string
	for left == "" {
		m, err := readT(t, b)
		if err != nil {
			t.Fatal(err)
		}
		switch {
		case strings.Contains(m, `"peer-joined"`) && !strings.Contains(m, `"ja"`):
			joined = m
		case strings.Contains(m, `"peer-left"`):
			left = m
		}
	}
	if joined == "" || !strings.Contains(left, `"closed"`) {
		t.Fatalf("c's presence: joined %q, left %q", joined, left)
	}
	if err := h.WaitJoins(context.Background()); err != nil {
		t.Fatal(err)
	}
}
