package natsbus

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/switchboard-rtc/switchboard/internal/bus"
	"github.com/switchboard-rtc/switchboard/protocol"
)

// A drained node whose presences all come back at once gets more TakeOver requests than it
// serves at a time: the others wait their turn. None may be dropped, else its asker times out
// and restores the presence without the events and relays the drained node held for it (a
// gap), and those relays reach the new node later, after newer ones (the rolling-restart
// test saw relay 42 arrive after 55).
func TestTakeOverBurstBeyondConcurrency(t *testing.T) {
	ns := startNATS(t)
	defer stopNATS(ns)
	var log eventLog
	a := newGraceBus(t, ns.ClientURL(), 5*time.Second, &log, 0)
	c := newGraceBus(t, ns.ClientURL(), 5*time.Second, &log, 1)
	defer a.Close()
	defer c.Close()
	waitNodes(t, a, c)

	const n = maxTakeovers + 4
	release := make(chan struct{})
	var entered atomic.Int32
	var ms []*bus.Member
	for i := range n {
		m, s := member(fmt.Sprintf("burst-%d", i))
		var once atomic.Bool
		m.Handover = func(last uint64) *bus.Handover {
			if !once.CompareAndSwap(false, true) {
				return nil
			}
			entered.Add(1)
			<-release // the hub's Handover taking its time
			return &bus.Handover{Seq: 1, Events: []*protocol.Event{{Type: protocol.TypeMessage, Seq: 1, From: "x", Data: []byte(`1`)}}}
		}
		if _, err := join(t, a, m, 0); err != nil {
			t.Fatal(err)
		}
		s.expect(t, protocol.TypeWelcome)
		ms = append(ms, m)
	}
	for _, m := range ms {
		a.Leave(m, bus.ReasonRestart)
	}
	waitUntil(t, "every member orphaned on c", func() bool {
		for _, m := range ms {
			if !orphaned(c, m.Room, m.Info.ID) {
				return false
			}
		}
		return true
	})

	// A spy on a's inbox counts the requests NATS delivers there.
	nc, err := nats.Connect(ns.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	var seen atomic.Int32
	sub, err := nc.Subscribe(a.cfg.Prefix+".node."+a.id, func(msg *nats.Msg) {
		if len(msg.Data) > 0 && msg.Data[0] == kindTakeOver {
			seen.Add(1)
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Unsubscribe()
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}

	type result struct {
		h   *bus.Handover
		err error
	}
	results := make([]result, n)
	var wg sync.WaitGroup
	for i, m := range ms {
		wg.Add(1)
		go func() {
			defer wg.Done()
			h, err := c.TakeOver(context.Background(), m.Room, m.Info.ID, 0)
			results[i] = result{h, err}
		}()
	}
	// Every request reached a and its dispatcher took them all while maxTakeovers are busy.
	waitUntil(t, "all requests at a, the limit busy", func() bool {
		return seen.Load() == n && len(a.msgs) == 0 && entered.Load() == maxTakeovers
	})
	close(release)
	wg.Wait()
	for i, r := range results {
		if r.err != nil || r.h == nil || len(r.h.Events) != 1 {
			t.Errorf("take-over %d: %+v %v", i, r.h, r.err)
		}
	}
	if got := entered.Load(); got != n {
		t.Fatalf("%d handovers served, want %d", got, n)
	}
}
