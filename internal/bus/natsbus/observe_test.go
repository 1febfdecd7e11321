package natsbus

import (
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/switchboard-rtc/switchboard/internal/bus"
)

// eventLog collects the room events of every node of a test cluster, in the order reported.
type eventLog struct {
	mu     sync.Mutex
	events []loggedEvent
}

type loggedEvent struct {
	node int // the index of the reporting node
	e    bus.RoomEvent
}

// nodeObserver is one node's bus.Observer, writing to the shared log.
type nodeObserver struct {
	log  *eventLog
	node int
}

func (o *nodeObserver) RoomEvent(e *bus.RoomEvent) {
	o.log.mu.Lock()
	defer o.log.mu.Unlock()
	o.log.events = append(o.log.events, loggedEvent{o.node, *e})
}

// room returns room's events as "kind[ peer][ reason]" strings, and the reporting nodes.
func (l *eventLog) room(room string) (events []string, nodes []int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, le := range l.events {
		if le.e.Room != room {
			continue
		}
		s := le.e.Kind.String()
		if le.e.Peer != nil {
			s += " " + string(le.e.Peer.Info.ID)
		}
		if le.e.Reason != "" {
			s += " " + le.e.Reason
		}
		events = append(events, s)
		nodes = append(nodes, le.node)
	}
	return events, nodes
}

func (l *eventLog) len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.events)
}

// waitEvents waits until room has n events.
func (l *eventLog) waitEvents(t *testing.T, room string, n int) {
	t.Helper()
	waitUntil(t, fmt.Sprintf("%d events in room %s", n, room), func() bool {
		ev, _ := l.room(room)
		return len(ev) >= n
	})
}

func newObservedBus(t *testing.T, url string, nodeTimeout time.Duration, log *eventLog, node int) *Bus {
	t.Helper()
	b, err := New(Config{
		URL:            url,
		Heartbeat:      20 * time.Millisecond,
		NodeTimeout:    nodeTimeout,
		RequestTimeout: 300 * time.Millisecond,
		Grace:          100 * time.Millisecond,
		Observer:       &nodeObserver{log: log, node: node},
		Logger:         slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// roomCoordinatedBy returns a room name that b's view gives to node.
func roomCoordinatedBy(b *Bus, node, prefix string) string {
	b.mu.RLock()
	defer b.mu.RUnlock()
	for i := 0; ; i++ {
		if r := fmt.Sprintf("%s%d", prefix, i); b.coordinatorLocked(r) == node {
			return r
		}
	}
}

// Each room event is reported once in the whole cluster, by the room's coordinator, in order:
// joins and leaves on every node, a node killed (timeout) and a node drained (shutdown),
// including in the rooms those nodes coordinated.
func TestObserverEachEventOnceAcrossNodes(t *testing.T) {
	ns := startNATS(t)
	defer stopNATS(ns)
	log := &eventLog{}
	// A node timeout well above the heartbeat: a node wrongly dropped while the race detector
	// slows the machine would add events, and fail the test, without being a bug.
	const nodeTimeout = time.Second
	bs := make([]*Bus, 3)
	for i := range bs {
		bs[i] = newObservedBus(t, ns.ClientURL(), nodeTimeout, log, i)
		defer bs[i].Close()
	}
	waitNodes(t, bs...)
	rooms := make([]string, len(bs))
	for i, b := range bs {
		rooms[i] = roomCoordinatedBy(bs[0], b.id, "obs")
	}
	// In every room: a on node 0, b on node 1, c on node 2, d on node 1.
	type cast struct{ a, b, c, d *bus.Member }
	casts := make([]cast, len(rooms))
	want := make([][]string, len(rooms))
	for i, room := range rooms {
		var c cast
		var ms []*bus.Member
		for _, node := range []int{0, 1, 2, 1} {
			m, _ := member(room)
			m.Info.Identity = fmt.Sprintf("user-%d", len(ms))
			if _, err := join(t, bs[node], m, 0); err != nil {
				t.Fatal(err)
			}
			ms = append(ms, m)
		}
		c.a, c.b, c.c, c.d = ms[0], ms[1], ms[2], ms[3]
		casts[i] = c
		want[i] = []string{"room-started"}
		for _, m := range ms {
			want[i] = append(want[i], "peer-joined "+string(m.Info.ID))
		}
		log.waitEvents(t, room, len(want[i]))
	}
	step := func(what string, f func(i int, c cast), left func(c cast) string) {
		t.Helper()
		for i, c := range casts {
			f(i, c)
		}
		for i, room := range rooms {
			want[i] = append(want[i], left(casts[i]))
			log.waitEvents(t, room, len(want[i]))
		}
		t.Logf("%s: done", what)
	}
	step("b leaves on node 1", func(_ int, c cast) { bs[1].Leave(c.b, "left") },
		func(c cast) string { return "peer-left " + string(c.b.Info.ID) + " left" })
	killed := time.Now()
	step("node 2 is killed", func(i int, _ cast) {
		if i == 0 {
			bs[2].Crash()
		}
	}, func(c cast) string { return "peer-left " + string(c.c.Info.ID) + " timeout" })
	t.Logf("timeouts reported %v after the kill", time.Since(killed).Round(time.Millisecond))
	waitNodes(t, bs[0], bs[1])
	step("node 1 drains", func(i int, _ cast) {
		if i == 0 {
			if err := bs[1].Close(); err != nil {
				t.Fatal(err)
			}
		}
	}, func(c cast) string { return "peer-left " + string(c.d.Info.ID) + " shutdown" })
	step("a leaves on node 0", func(_ int, c cast) { bs[0].Leave(c.a, "closed") },
		func(c cast) string { return "peer-left " + string(c.a.Info.ID) + " closed" })
	for i := range want {
		want[i] = append(want[i], "room-finished")
		log.waitEvents(t, rooms[i], len(want[i]))
	}

	// Nothing more comes: a second report of an event would follow within a few messages.
	total := log.len()
	<-time.After(10 * 20 * time.Millisecond)
	for i, room := range rooms {
		got, nodes := log.room(room)
		if !slices.Equal(got, want[i]) {
			t.Fatalf("room %s (coordinated by node %d):\n got %s\nwant %s", room, i, strings.Join(got, "\n     "), strings.Join(want[i], "\n     "))
		}
		// Node i reported the room's first events, until it was gone.
		if nodes[0] != i {
			t.Fatalf("room %s: first reported by node %d, want node %d", room, nodes[0], i)
		}
	}
	if n := log.len(); n != total {
		t.Fatalf("%d more events after the last one expected", n-total)
	}
}

// A node that joins the cluster learns the existing rooms without reporting them again; once
// ready it reports what happens in the rooms it now coordinates.
func TestObserverNewNodeReportsOnlyChanges(t *testing.T) {
	ns := startNATS(t)
	defer stopNATS(ns)
	log := &eventLog{}
	b0, b1 := newObservedBus(t, ns.ClientURL(), time.Minute, log, 0), newObservedBus(t, ns.ClientURL(), time.Minute, log, 1)
	defer b0.Close()
	defer b1.Close()
	waitNodes(t, b0, b1)
	const rooms = 48
	for i := range rooms {
		m, _ := member(fmt.Sprintf("n%d", i))
		if _, err := join(t, b1, m, 0); err != nil {
			t.Fatal(err)
		}
	}
	waitUntil(t, "the joins reported", func() bool { return log.len() == 2*rooms })
	b2 := newObservedBus(t, ns.ClientURL(), time.Minute, log, 2)
	defer b2.Close()
	waitNodes(t, b0, b1, b2)
	room := ""
	for i := range rooms {
		if r := fmt.Sprintf("n%d", i); room == "" && func() bool {
			b0.mu.RLock()
			defer b0.mu.RUnlock()
			return b0.coordinatorLocked(r) == b2.id
		}() {
			room = r
		}
	}
	if room == "" {
		// Each room goes to the new node with a chance of 1 in 3: none of 48 does with a
		// chance of (2/3)^48, about 4 in a billion.
		t.Fatal("no room moved to the new node")
	}
	if got := log.len(); got != 2*rooms {
		t.Fatalf("%d events after the new node learnt the rooms, want %d", got, 2*rooms)
	}
	m, _ := member(room)
	if _, err := join(t, b0, m, 0); err != nil {
		t.Fatal(err)
	}
	b0.Leave(m, "left")
	log.waitEvents(t, room, 4)
	got, nodes := log.room(room)
	want := []string{"peer-joined " + string(m.Info.ID), "peer-left " + string(m.Info.ID) + " left"}
	if !slices.Equal(got[2:], want) || nodes[2] != 2 || nodes[3] != 2 {
		t.Fatalf("room %s: %v reported by %v; want %v by node 2", room, got, nodes, want)
	}
	if d := log.len(); d != 2*rooms+2 {
		t.Fatalf("%d events, want %d", d, 2*rooms+2)
	}
}
