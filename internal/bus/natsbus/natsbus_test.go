package natsbus

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	natsserver "github.com/nats-io/nats-server/v2/server"
	"go.uber.org/goleak"

	"github.com/switchboard-rtc/switchboard/internal/bus"
	"github.com/switchboard-rtc/switchboard/protocol"
)

const waitFor = 5 * time.Second

func startNATS(t *testing.T) *natsserver.Server {
	t.Helper()
	s, err := natsserver.NewServer(&natsserver.Options{Host: "127.0.0.1", Port: natsserver.RANDOM_PORT, NoLog: true, NoSigs: true})
	if err != nil {
		t.Fatal(err)
	}
	go s.Start()
	if !s.ReadyForConnections(waitFor) {
		t.Fatal("nats not ready")
	}
	return s
}

func stopNATS(s *natsserver.Server) {
	s.Shutdown()
	s.WaitForShutdown()
}

func newBus(t *testing.T, url string, nodeTimeout time.Duration) *Bus {
	t.Helper()
	b, err := New(Config{
		URL:         url,
		Heartbeat:   20 * time.Millisecond,
		NodeTimeout: nodeTimeout,
		// Short, for the requests lost with a node killed mid-flight.
		RequestTimeout: 300 * time.Millisecond,
		// Orphans of a dead node leave soon (grace_test.go sets its own).
		Grace:  100 * time.Millisecond,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// waitNodes waits until every bus knows all the others and takes joins.
func waitNodes(t *testing.T, bs ...*Bus) {
	t.Helper()
	deadline := time.Now().Add(waitFor)
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for {
		ok := true
		for _, b := range bs {
			ok = ok && b.Nodes() == len(bs) && b.Ready() == nil
		}
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("cluster did not form")
		}
		<-tick.C
	}
}

type recSink struct {
	ch chan protocol.Event
}

func newSink() *recSink { return &recSink{ch: make(chan protocol.Event, 1024)} }

func (s *recSink) Send(e *protocol.Event) bool {
	c := *e
	c.Data = append([]byte(nil), e.Data...)
	s.ch <- c
	return true
}

func (s *recSink) expect(t *testing.T, typ protocol.Type) protocol.Event {
	t.Helper()
	select {
	case e := <-s.ch:
		if e.Type != typ {
			t.Fatalf("got %v, want %v", e.Type, typ)
		}
		return e
	case <-time.After(waitFor):
		t.Fatalf("no %v", typ)
	}
	return protocol.Event{}
}

func member(room string) (*bus.Member, *recSink) {
	s := newSink()
	return &bus.Member{Room: room, Info: protocol.PeerInfo{ID: protocol.NewPeerID()}, Sink: s}, s
}

func join(t *testing.T, b *Bus, m *bus.Member, max int) ([]protocol.PeerInfo, error) {
	t.Helper()
	var others []protocol.PeerInfo
	err := b.Join(context.Background(), m, max, func(o []protocol.PeerInfo) {
		others = o
		m.Sink.Send(&protocol.Event{Type: protocol.TypeWelcome})
	})
	return others, err
}

func TestBusStopsEveryGoroutine(t *testing.T) {
	defer goleak.VerifyNone(t)
	ns := startNATS(t)
	defer stopNATS(ns)
	b1, b2 := newBus(t, ns.ClientURL(), 200*time.Millisecond), newBus(t, ns.ClientURL(), 200*time.Millisecond)
	waitNodes(t, b1, b2)
	m1, s1 := member("r")
	m2, s2 := member("r")
	if _, err := join(t, b1, m1, 0); err != nil {
		t.Fatal(err)
	}
	s1.expect(t, protocol.TypeWelcome)
	if others, err := join(t, b2, m2, 0); err != nil || len(others) != 1 || others[0].ID != m1.Info.ID {
		t.Fatalf("join: %v %v", others, err)
	}
	s2.expect(t, protocol.TypeWelcome)
	s1.expect(t, protocol.TypePeerJoined)
	if err := b1.Relay(m1, []byte(m2.Info.ID), &protocol.Event{Type: protocol.TypeOffer, From: m1.Info.ID, Data: []byte(`{"sdp":"x"}`)}); err != nil {
		t.Fatal(err)
	}
	if e := s2.expect(t, protocol.TypeOffer); e.From != m1.Info.ID || string(e.Data) != `{"sdp":"x"}` {
		t.Fatalf("relay: %+v", e)
	}
	b2.Crash()
	if e := s1.expect(t, protocol.TypePeerLeft); e.Peer.ID != m2.Info.ID || e.Reason != "timeout" {
		t.Fatalf("peer-left: %+v", e)
	}
	if err := b1.Close(); err != nil {
		t.Fatal(err)
	}
	if err := b1.Ready(); !errors.Is(err, bus.ErrUnavailable) {
		t.Fatalf("ready after close: %v", err)
	}
}

// A coordinator that dies is skipped at once (its inbox has no responders), well before the
// node timeout, and the room limit still holds.
func TestBusJoinSkipsDeadCoordinator(t *testing.T) {
	ns := startNATS(t)
	defer stopNATS(ns)
	bs := []*Bus{newBus(t, ns.ClientURL(), time.Minute), newBus(t, ns.ClientURL(), time.Minute), newBus(t, ns.ClientURL(), time.Minute)}
	for _, b := range bs {
		defer b.Close()
	}
	waitNodes(t, bs...)
	// A room coordinated by bs[2], which dies.
	var room string
	for i := 0; room == ""; i++ {
		r := fmt.Sprintf("room-%d", i)
		bs[0].mu.RLock()
		if bs[0].coordinatorLocked(r) == bs[2].id {
			room = r
		}
		bs[0].mu.RUnlock()
	}
	bs[2].Crash()
	start := time.Now()
	const limit = 3
	var wg sync.WaitGroup
	var mu sync.Mutex
	joined, full := 0, 0
	for i := range 12 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			m, _ := member(room)
			_, err := join(t, bs[i%2], m, limit)
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
				joined++
			case errors.Is(err, bus.ErrRoomFull):
				full++
			default:
				t.Errorf("join: %v", err)
			}
		}()
	}
	wg.Wait()
	if joined != limit || full != 12-limit {
		t.Fatalf("%d joined, %d refused", joined, full)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("joins took %v", d)
	}
}

func TestConfigValidate(t *testing.T) {
	for _, c := range []Config{
		{},
		{URL: "nats://127.0.0.1:1", Heartbeat: time.Second, NodeTimeout: time.Second},
	} {
		if _, err := New(c); !errors.Is(err, ErrBadConfig) {
			t.Errorf("New(%+v): %v", c, err)
		}
	}
}

func TestRelayWireRoundTrip(t *testing.T) {
	e := &protocol.Event{Type: protocol.TypeICECandidate, From: "abc", Data: []byte(`{"candidate":"c"}`)}
	for _, target := range []string{"xyz", ""} {
		m, err := decodeRelay(encodeRelay("room", target, e))
		if err != nil {
			t.Fatal(err)
		}
		if m.room != "room" || m.target != target || m.broadcast != (target == "") || m.ev.Type != e.Type || m.ev.From != e.From || string(m.ev.Data) != string(e.Data) || m.ev.ID != nil || m.ev.Retry {
			t.Fatalf("round trip: %+v", m)
		}
	}
	// The relay's id and retry go to the receiver's node.
	r := &protocol.Event{Type: protocol.TypeMessage, From: "abc", ID: []byte(`"r7"`), Retry: true, Data: []byte(`{}`)}
	m, err := decodeRelay(encodeRelay("room", "xyz", r))
	if err != nil || string(m.ev.ID) != `"r7"` || !m.ev.Retry || string(m.ev.Data) != `{}` {
		t.Fatalf("round trip with id: %+v %v", m, err)
	}
	for _, bad := range [][]byte{nil, {'r'}, {'r', 1, 0, 9, 'a'}, {'r', 1, 0, 0, 9, 'a'},
		{'r', 1, relayRetry, 0, 0, 0, 1, 't', 0, 1, 'f'},      // retry without an id
		{'r', 1, 0x80, 0, 0, 0, 1, 't', 0, 1, 'f'},            // unknown flag
		{'r', 1, relayID, 0, 0, 0, 1, 't', 0, 1, 'f', 0, 0}} { // empty id
		if _, err := decodeRelay(bad); err == nil {
			t.Errorf("decodeRelay(%q) accepted", bad)
		}
	}
}

// A leave lost on the way (simulated: removed without announcing it) is repaired by the next
// periodic sync of the peer's node.
func TestBusSyncRepairsLostLeave(t *testing.T) {
	ns := startNATS(t)
	defer stopNATS(ns)
	b1, b2 := newBus(t, ns.ClientURL(), time.Minute), newBus(t, ns.ClientURL(), time.Minute)
	defer b1.Close()
	defer b2.Close()
	waitNodes(t, b1, b2)
	m1, s1 := member("r")
	m2, s2 := member("r")
	if _, err := join(t, b1, m1, 0); err != nil {
		t.Fatal(err)
	}
	s1.expect(t, protocol.TypeWelcome)
	if _, err := join(t, b2, m2, 0); err != nil {
		t.Fatal(err)
	}
	s2.expect(t, protocol.TypeWelcome)
	s1.expect(t, protocol.TypePeerJoined)

	b1.mu.Lock()
	b1.leaveLocked(b1.locals[m1], "left", false) // the leave never reaches node 2
	b1.mu.Unlock()
	start := time.Now()
	if e := s2.expect(t, protocol.TypePeerLeft); e.Peer.ID != m1.Info.ID || e.Reason != "timeout" {
		t.Fatalf("peer-left: %+v", e)
	}
	t.Logf("repaired after %v", time.Since(start).Round(time.Millisecond))
	if err := b2.Relay(m2, []byte(m1.Info.ID), &protocol.Event{Type: protocol.TypeOffer, From: m2.Info.ID}); !errors.Is(err, bus.ErrUnknownTarget) {
		t.Fatalf("relay to the repaired peer: %v", err)
	}
}

// A node that joins the cluster learns every room from the others' syncs, so the rooms it now
// coordinates keep their members and order.
func TestBusNewNodeTakesOverRooms(t *testing.T) {
	ns := startNATS(t)
	defer stopNATS(ns)
	b1, b2 := newBus(t, ns.ClientURL(), time.Minute), newBus(t, ns.ClientURL(), time.Minute)
	defer b1.Close()
	defer b2.Close()
	waitNodes(t, b1, b2)
	// Node ids are random: each room goes to the new node with probability 1/3, so with 12
	// rooms none did in about 1 run in 130 (a CI run failed so); with 48, 1 in 3·10^8.
	const rooms = 48
	first := make([][2]protocol.PeerID, rooms)
	for i := range rooms {
		room := fmt.Sprintf("r%d", i)
		m1, _ := member(room)
		m2, _ := member(room)
		if _, err := join(t, b1, m1, 2); err != nil {
			t.Fatal(err)
		}
		if _, err := join(t, b2, m2, 2); err != nil {
			t.Fatal(err)
		}
		first[i] = [2]protocol.PeerID{m1.Info.ID, m2.Info.ID}
	}
	b3 := newBus(t, ns.ClientURL(), time.Minute)
	defer b3.Close()
	waitNodes(t, b1, b2, b3)
	moved := 0
	for i := range rooms {
		room := fmt.Sprintf("r%d", i)
		b3.mu.RLock()
		if b3.coordinatorLocked(room) == b3.id {
			moved++
		}
		b3.mu.RUnlock()
		// Full at 2: the newcomer must know both members wherever the room is coordinated.
		m, _ := member(room)
		if _, err := join(t, b3, m, 2); !errors.Is(err, bus.ErrRoomFull) {
			t.Fatalf("room %s: join on the new node: %v", room, err)
		}
		m, _ = member(room)
		others, err := join(t, b3, m, 3)
		if err != nil {
			t.Fatal(err)
		}
		if len(others) != 2 || others[0].ID != first[i][0] || others[1].ID != first[i][1] {
			t.Fatalf("room %s: welcome on the new node %v, want %v", room, others, first[i])
		}
	}
	if moved == 0 {
		t.Fatal("no room moved to the new node: the test proves nothing")
	}
}

// A relay that reaches a node before the welcome of its target (the sender's node learnt of
// the join first) waits for the welcome instead of being lost or overtaking it.
func TestBusRelayWaitsForWelcome(t *testing.T) {
	ns := startNATS(t)
	defer stopNATS(ns)
	b := newBus(t, ns.ClientURL(), time.Minute)
	defer b.Close()
	waitNodes(t, b)
	m, s := member("r")
	welcome := func([]protocol.PeerInfo) { m.Sink.Send(&protocol.Event{Type: protocol.TypeWelcome}) }
	b.mu.Lock()
	b.pending[m.Info.ID] = &pendingJoin{m: m, welcome: welcome}
	b.mu.Unlock()
	for i := range 3 {
		rm := relayMsg{room: "r", target: string(m.Info.ID), ev: protocol.Event{Type: protocol.TypeICECandidate, From: "other", Data: fmt.Appendf(nil, "%d", i)}}
		b.handleRelay(&rm)
	}
	b.mu.Lock()
	b.applyJoinLocked("r", &wirePeer{ID: "other", Node: "elsewhere", Seq: 1}, false)
	b.applyJoinLocked("r", &wirePeer{ID: m.Info.ID, Node: b.id, Seq: 2}, false)
	b.mu.Unlock()
	s.expect(t, protocol.TypeWelcome)
	for i := range 3 {
		if e := s.expect(t, protocol.TypeICECandidate); string(e.Data) != fmt.Sprint(i) {
			t.Fatalf("relay %d: %s", i, e.Data)
		}
	}
}
