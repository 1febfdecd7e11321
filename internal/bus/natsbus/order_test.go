package natsbus

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/switchboard-rtc/switchboard/internal/bus"
	"github.com/switchboard-rtc/switchboard/protocol"
)

// roomNotCoordinatedBy returns a room name whose coordinator is not b (the same on every
// node of a formed cluster).
func roomNotCoordinatedBy(t *testing.T, b *Bus) string {
	t.Helper()
	b.mu.RLock()
	defer b.mu.RUnlock()
	for i := range 100 {
		if r := fmt.Sprintf("order-%d", i); b.coordinatorLocked(r) != b.id {
			return r
		}
	}
	t.Fatal("every room coordinated by one node")
	return ""
}

// nodeOf returns the node b's replica has peer of room on.
func nodeOf(b *Bus, room string, peer protocol.PeerID) string {
	b.mu.RLock()
	defer b.mu.RUnlock()
	if p := b.peerLocked(room, peer); p != nil && !p.orphan {
		return p.node
	}
	return ""
}

// orderScene: y on b relays r1 to x on a before b hears that x is orphaned; r1 reaches a
// only after a handed x over to c (a holds it); b, which knows by then, holds r2. x re-homes
// on c while a's dispatch is held up (a is returned locked, with its unlock): b learns it
// first, flushes r2 to c and sends r3 straight there.
type orderScene struct {
	a, b, c *Bus
	nxs     *recSink // x re-homed on c
	unlock  func()   // lets a go on
}

func newOrderScene(t *testing.T) *orderScene {
	t.Helper()
	ns := startNATS(t)
	t.Cleanup(func() { stopNATS(ns) })
	var log eventLog
	a := newGraceBus(t, ns.ClientURL(), 5*time.Second, &log, 0)
	b := newGraceBus(t, ns.ClientURL(), 5*time.Second, &log, 1)
	c := newGraceBus(t, ns.ClientURL(), 5*time.Second, &log, 2)
	t.Cleanup(func() { a.Close(); b.Close(); c.Close() })
	waitNodes(t, a, b, c)
	room := roomNotCoordinatedBy(t, a)
	x, xs, y, _ := twoInRoom(t, a, b, room)
	ob := &outbox{}
	x.Handover = ob.handover

	a.Leave(x, bus.ReasonRestart)
	waitUntil(t, "x orphaned on b and c", func() bool {
		return orphaned(b, room, x.Info.ID) && orphaned(c, room, x.Info.ID)
	})
	none(t, xs, "x muted")
	h, err := c.TakeOver(context.Background(), room, x.Info.ID, 0)
	if err != nil || h == nil {
		t.Fatalf("take over: %v %v", h, err)
	}
	// r1, sent by b before it heard of the orphan, reaches a after the handover.
	a.handleRelay(&relayMsg{kind: kindRelay, room: room, target: string(x.Info.ID), ev: *msg(y.Info.ID, "r1")})
	if err := b.Relay(y, []byte(x.Info.ID), msg(y.Info.ID, "r2")); err != nil {
		t.Fatal(err)
	}

	// a's dispatch is held up: it learns of the re-homing after b and c.
	a.mu.Lock()
	locked := true
	sc := &orderScene{a: a, b: b, c: c, unlock: func() {
		if locked {
			locked = false
			a.mu.Unlock()
		}
	}}
	t.Cleanup(sc.unlock) // before the Close calls
	nx, nxs := resumed(x)
	if _, err := join(t, c, nx, 0); err != nil {
		t.Fatalf("resumed join on c: %v", err)
	}
	nxs.expect(t, protocol.TypeWelcome)
	sc.nxs = nxs
	waitUntil(t, "b knows x is on c", func() bool { return nodeOf(b, room, x.Info.ID) == c.id })
	if err := b.Relay(y, []byte(x.Info.ID), msg(y.Info.ID, "r3")); err != nil {
		t.Fatal(err)
	}
	// c has r2 and r3 by now (b flushed r2 before it sent r3).
	if err := b.nc.Flush(); err != nil {
		t.Fatal(err)
	}
	if err := c.nc.Flush(); err != nil {
		t.Fatal(err)
	}
	return sc
}

// Per sender, per target order across a re-homing (TestRollingRestartKeepsCalls in CI:
// "77 after 70", then 71…76): in the orderScene, a flushes r1 to c only once it goes on,
// after r2 and r3 reached c. x must still read r1, r2, r3: c, which took x over from a,
// holds r2 and r3 until a says it has flushed.
func TestRehomeKeepsOrderOfOldNodeHold(t *testing.T) {
	sc := newOrderScene(t)
	sc.unlock()
	expectData(t, sc.nxs, "r1", "r2", "r3")
	none(t, sc.nxs, "x on c")
	waitUntil(t, "c holds nothing", func() bool { return sc.c.stats.ClusterHeld.Load() == 0 })
}

// c awaits a's flush for at most its RequestTimeout: with a held up longer, x reads r2 and r3
// then, and r1 when a goes on (late, but not lost).
func TestRehomeAwaitsOldNodeForRequestTimeout(t *testing.T) {
	sc := newOrderScene(t)
	expectData(t, sc.nxs, "r2", "r3")
	sc.c.mu.RLock()
	awaiting := len(sc.c.awaits)
	sc.c.mu.RUnlock()
	if awaiting != 0 {
		t.Fatalf("c still awaits %d peers", awaiting)
	}
	sc.unlock()
	expectData(t, sc.nxs, "r1")
	none(t, sc.nxs, "x on c")
	waitUntil(t, "c holds nothing", func() bool { return sc.c.stats.ClusterHeld.Load() == 0 })
}
