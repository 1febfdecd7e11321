package natsbus

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/switchboard-rtc/switchboard/internal/bus"
	"github.com/switchboard-rtc/switchboard/protocol"
)

// newPatientBus is a node whose requests and node timeout outlast a test holding another
// node's lock for a moment.
func newPatientBus(t *testing.T, url string, log *eventLog, node int) *Bus {
	t.Helper()
	b, err := New(Config{
		URL:            url,
		Heartbeat:      50 * time.Millisecond,
		NodeTimeout:    5 * time.Second,
		RequestTimeout: 3 * time.Second,
		Grace:          10 * time.Second,
		Observer:       &nodeObserver{log: log, node: node},
		Logger:         slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return b
}

// A relay b sent to x's node a before b heard x was orphaned reaches a only after a applied
// x's re-homing on c (the rolling-restart test in CI: "184 after 181 (2 lost)"): a holds it
// until b has acknowledged the orphaning, then hands it on to c ahead of what b sends c later.
func TestRelayReachingFormerNodeAfterRehome(t *testing.T) {
	ns := startNATS(t)
	t.Cleanup(func() { stopNATS(ns) })
	var log eventLog
	a := newPatientBus(t, ns.ClientURL(), &log, 0)
	b := newPatientBus(t, ns.ClientURL(), &log, 1)
	c := newPatientBus(t, ns.ClientURL(), &log, 2)
	waitNodes(t, a, b, c)
	room := roomNotCoordinatedBy(t, b)
	x, xs, y, _ := twoInRoom(t, a, b, room)
	x.Handover = (&outbox{}).handover

	// b's dispatch is held up: it has not heard of the orphaning when it sends r1.
	b.mu.Lock()
	locked := true
	unlock := func() {
		if locked {
			locked = false
			b.mu.Unlock()
		}
	}
	t.Cleanup(unlock)
	a.Leave(x, bus.ReasonRestart)
	waitUntil(t, "x orphaned on c", func() bool { return orphaned(c, room, x.Info.ID) })
	none(t, xs, "x muted")
	if h, err := c.TakeOver(context.Background(), room, x.Info.ID, 0); err != nil || h == nil {
		t.Fatalf("take over: %v %v", h, err)
	}
	nx, nxs := resumed(x)
	if _, err := join(t, c, nx, 0); err != nil {
		t.Fatalf("resumed join on c: %v", err)
	}
	nxs.expect(t, protocol.TypeWelcome)
	waitUntil(t, "a knows x is on c", func() bool { return nodeOf(a, room, x.Info.ID) == c.id })
	// r1 leaves b now, as b's Relay would have sent it before it heard of the orphan.
	if err := b.nc.Publish(b.cfg.Prefix+".node."+a.id, encodeRelay(room, string(x.Info.ID), msg(y.Info.ID, "r1"))); err != nil {
		t.Fatal(err)
	}
	if err := b.nc.Flush(); err != nil {
		t.Fatal(err)
	}
	unlock()
	waitUntil(t, "b knows x is on c", func() bool { return nodeOf(b, room, x.Info.ID) == c.id })
	if err := b.Relay(y, []byte(x.Info.ID), msg(y.Info.ID, "r2")); err != nil {
		t.Fatal(err)
	}
	expectData(t, nxs, "r1", "r2")
	none(t, nxs, "x on c")
	waitUntil(t, "a and c hold nothing", func() bool {
		return a.stats.ClusterHeld.Load() == 0 && c.stats.ClusterHeld.Load() == 0
	})
	a.mu.RLock()
	acking := len(a.acking)
	a.mu.RUnlock()
	if acking != 0 {
		t.Fatalf("a still awaits acknowledgements for %d peers", acking)
	}
	if n := a.stats.ClusterHeldDropped.Load() + c.stats.ClusterHeldDropped.Load(); n != 0 {
		t.Fatalf("%d held relays dropped", n)
	}
}
