package natsbus

import (
	"context"
	"github.com/switchboard-rtc/switchboard/protocol"
	"reflect"
	"testing"
	"time"
)

// A Resumed join of an id the room does not have is announced with peer-joined marked
// resumed, and reported as a join.
func TestResumedJoinUnknownIDAnnouncedResumed(t *testing.T) {
	ns := startNATS(t)
	defer stopNATS(ns)
	var log eventLog
	a := newGraceBus(t, ns.ClientURL(), time.Second, &log, 0)
	b := newGraceBus(t, ns.ClientURL(), time.Second, &log, 1)
	defer a.Close()
	defer b.Close()
	waitNodes(t, a, b)
	y, ys := member("r")
	if _, err := join(t, a, y, 0); err != nil {
		t.Fatal(err)
	}
	ys.expect(t, protocol.TypeWelcome)
	x, xs := member("r")
	x.Resumed = true
	if _, err := join(t, b, x, 0); err != nil {
		t.Fatal(err)
	}
	xs.expect(t, protocol.TypeWelcome)
	if e := ys.expect(t, protocol.TypePeerJoined); e.Peer.ID != x.Info.ID || !e.Resumed {
		t.Fatalf("peer-joined %+v resumed=%v, want x resumed", e.Peer, e.Resumed)
	}
	log.waitEvents(t, "r", 3)
}

// A Resumed join of an id still connected on another node (its takeover did not happen)
// replaces it in place: the other node ends that connection (replaced) without a peer-left,
// nobody hears a peer-joined, the room limit is not charged twice, and relays reach the new
// member. A member with the same identity is not kicked by its own resume.
func TestResumedJoinReplacesLiveMember(t *testing.T) {
	ns := startNATS(t)
	defer stopNATS(ns)
	var log eventLog
	a := newGraceBus(t, ns.ClientURL(), time.Second, &log, 0)
	b := newGraceBus(t, ns.ClientURL(), time.Second, &log, 1)
	c := newGraceBus(t, ns.ClientURL(), time.Second, &log, 2)
	defer a.Close()
	defer b.Close()
	defer c.Close()
	waitNodes(t, a, b, c)
	x, xs := member("r")
	x.Info.Identity = "alice"
	kicked := make(chan protocol.Code, 1)
	x.Kick = func(code protocol.Code, reason string) {
		kicked <- code
		a.Leave(x, reason)
	}
	if _, err := join(t, a, x, 0); err != nil {
		t.Fatal(err)
	}
	xs.expect(t, protocol.TypeWelcome)
	y, ys := member("r")
	if _, err := join(t, b, y, 0); err != nil {
		t.Fatal(err)
	}
	ys.expect(t, protocol.TypeWelcome)
	xs.expect(t, protocol.TypePeerJoined)

	nx, nxs := resumed(x)
	if others, err := join(t, c, nx, 2); err != nil || len(others) != 1 || others[0].ID != y.Info.ID {
		t.Fatalf("resumed join into a full room: %v %v", others, err)
	}
	nxs.expect(t, protocol.TypeWelcome)
	select {
	case code := <-kicked:
		if code != protocol.CodeReplaced {
			t.Fatalf("old connection ended with %v", code)
		}
	case <-time.After(waitFor):
		t.Fatal("the old connection was not ended")
	}
	for _, n := range []*Bus{a, b} {
		waitUntil(t, "x listed on c", func() bool {
			ps := peersOf(n, "r")
			return len(ps) == 2 && ps[0] == string(x.Info.ID)+"/alice/@"+c.id
		})
	}
	if err := b.Relay(y, []byte(x.Info.ID), msg(y.Info.ID, "to-new")); err != nil {
		t.Fatal(err)
	}
	expectData(t, nxs, "to-new")
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if h, err := a.TakeOver(ctx, "r", x.Info.ID, 0); h != nil || err != nil {
		t.Fatalf("take over of a member re-homed to c, asked from a: %v %v", h, err)
	}
	none(t, ys, "y")
	none(t, nxs, "the resumed member")
	if events, _ := log.room("r"); len(events) != 3 {
		t.Fatalf("room events %v", events)
	}
}

// A presence still on its node (its connection lost there, its client back through another
// node) is taken over: its node stops delivering to it and hands its events over, the others
// hold its relays until the Resumed join, and nothing is announced.
func TestTakeOverOfConnectedMember(t *testing.T) {
	ns := startNATS(t)
	defer stopNATS(ns)
	var log eventLog
	a := newGraceBus(t, ns.ClientURL(), 5*time.Second, &log, 0)
	b := newGraceBus(t, ns.ClientURL(), 5*time.Second, &log, 1)
	c := newGraceBus(t, ns.ClientURL(), 5*time.Second, &log, 2)
	defer a.Close()
	defer b.Close()
	defer c.Close()
	waitNodes(t, a, b, c)
	x, xs, y, ys := twoInRoom(t, a, b, "r")
	ob := &outbox{}
	for i := 1; i <= 2; i++ {
		e := msg(y.Info.ID, "before")
		e.Seq = uint64(i)
		ob.events = append(ob.events, e)
	}
	ob.retryIDs = []uint64{7, 1 << 63, 42}
	x.Handover = ob.handover
	waitUntil(t, "c knows x", func() bool { return len(peersOf(c, "r")) == 2 })
	h, err := c.TakeOver(context.Background(), "r", x.Info.ID, 1)
	if err != nil || h == nil || len(h.Events) != 1 || h.Events[0].Seq != 2 || h.Seq != 2 {
		t.Fatalf("take over: %+v %v", h, err)
	}
	if !reflect.DeepEqual(h.RetryIDs, ob.retryIDs) {
		t.Fatalf("take over carried retry ids %v, want %v", h.RetryIDs, ob.retryIDs)
	}
	waitUntil(t, "x orphaned on b", func() bool { return orphaned(b, "r", x.Info.ID) })
	if err := b.Relay(y, []byte(x.Info.ID), msg(y.Info.ID, "after")); err != nil {
		t.Fatal(err)
	}
	nx, nxs := resumed(x)
	if _, err := join(t, c, nx, 0); err != nil {
		t.Fatal(err)
	}
	nxs.expect(t, protocol.TypeWelcome)
	expectData(t, nxs, "after")
	none(t, xs, "the old member")
	none(t, ys, "y")
	if n := ob.calls.Load(); n != 1 {
		t.Fatalf("Handover called %d times", n)
	}
	if events, _ := log.room("r"); len(events) != 3 {
		t.Fatalf("room events %v", events)
	}
}

// A Resumed join marked Lost (no handover: what x's node had queued for it may be gone)
// replaces x in place all the same, and the others hear a peer-joined marked resumed, for
// their SDKs to send their recent relays to x again.
func TestResumedJoinLostAnnounced(t *testing.T) {
	ns := startNATS(t)
	defer stopNATS(ns)
	var log eventLog
	a := newGraceBus(t, ns.ClientURL(), time.Second, &log, 0)
	b := newGraceBus(t, ns.ClientURL(), time.Second, &log, 1)
	c := newGraceBus(t, ns.ClientURL(), time.Second, &log, 2)
	defer a.Close()
	defer b.Close()
	defer c.Close()
	waitNodes(t, a, b, c)
	x, xs := member("r")
	x.Kick = func(_ protocol.Code, reason string) { a.Leave(x, reason) }
	if _, err := join(t, a, x, 0); err != nil {
		t.Fatal(err)
	}
	xs.expect(t, protocol.TypeWelcome)
	y, ys := member("r")
	if _, err := join(t, b, y, 0); err != nil {
		t.Fatal(err)
	}
	ys.expect(t, protocol.TypeWelcome)
	xs.expect(t, protocol.TypePeerJoined)

	nx, nxs := resumed(x)
	nx.Lost = true
	if others, err := join(t, c, nx, 0); err != nil || len(others) != 1 || others[0].ID != y.Info.ID {
		t.Fatalf("lost resumed join: %v %v", others, err)
	}
	nxs.expect(t, protocol.TypeWelcome)
	if e := ys.expect(t, protocol.TypePeerJoined); e.Peer.ID != x.Info.ID || !e.Resumed {
		t.Fatalf("peer-joined %+v resumed=%v, want x resumed", e.Peer, e.Resumed)
	}
	if ps := peersOf(b, "r"); len(ps) != 2 {
		t.Fatalf("b lists %v, want x and y", ps)
	}
}

// A second Resumed join of the same id on the node that already has it (an earlier attempt
// of the same resume whose connection is still there, or went before it was welcomed) takes
// its place: welcomed, the earlier one ended (replaced), nobody hears a leave.
func TestResumedJoinAgainOnSameNode(t *testing.T) {
	ns := startNATS(t)
	defer stopNATS(ns)
	var log eventLog
	a := newGraceBus(t, ns.ClientURL(), time.Second, &log, 0)
	b := newGraceBus(t, ns.ClientURL(), time.Second, &log, 1)
	defer a.Close()
	defer b.Close()
	waitNodes(t, a, b)
	x, xs := member("r")
	x.Kick = func(_ protocol.Code, reason string) { a.Leave(x, reason) }
	if _, err := join(t, a, x, 0); err != nil {
		t.Fatal(err)
	}
	xs.expect(t, protocol.TypeWelcome)
	y, ys := member("r")
	if _, err := join(t, a, y, 0); err != nil {
		t.Fatal(err)
	}
	ys.expect(t, protocol.TypeWelcome)
	xs.expect(t, protocol.TypePeerJoined)

	first, firsts := resumed(x)
	kicked := make(chan protocol.Code, 1)
	first.Kick = func(code protocol.Code, reason string) {
		kicked <- code
		b.Leave(first, reason)
	}
	if _, err := join(t, b, first, 0); err != nil {
		t.Fatal(err)
	}
	firsts.expect(t, protocol.TypeWelcome)
	second, seconds := resumed(x)
	if others, err := join(t, b, second, 0); err != nil || len(others) != 1 || others[0].ID != y.Info.ID {
		t.Fatalf("second resumed join on the same node: %v %v", others, err)
	}
	seconds.expect(t, protocol.TypeWelcome)
	select {
	case code := <-kicked:
		if code != protocol.CodeReplaced {
			t.Fatalf("first attempt ended with %v", code)
		}
	case <-time.After(waitFor):
		t.Fatal("the first attempt was not ended")
	}
	waitUntil(t, "x listed on b by a", func() bool {
		ps := peersOf(a, "r")
		return len(ps) == 2 && ps[0] == string(x.Info.ID)+"//@"+b.id
	})
	if err := a.Relay(y, []byte(x.Info.ID), msg(y.Info.ID, "to-second")); err != nil {
		t.Fatal(err)
	}
	expectData(t, seconds, "to-second")
	none(t, ys, "y")
}
