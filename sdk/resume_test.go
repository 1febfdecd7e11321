package sdk_test

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pion/webrtc/v4"

	"github.com/switchboard-rtc/switchboard/internal/testserver"
	"github.com/switchboard-rtc/switchboard/sdk"
)

// counter checks that a stream of numbered messages arrives each once, in order.
type counter struct {
	mu     sync.Mutex
	name   string
	last   int
	faults []string
	at     chan int // every number received
}

func newCounter(name string) *counter { return &counter{name: name, at: make(chan int, 4096)} }

func (c *counter) got(n int) {
	c.mu.Lock()
	switch {
	case n <= c.last:
		c.faults = append(c.faults, fmt.Sprintf("%s: %d again after %d (duplicate)", c.name, n, c.last))
	case n > c.last+1:
		c.faults = append(c.faults, fmt.Sprintf("%s: %d after %d (%d lost)", c.name, n, c.last, n-c.last-1))
		c.last = n
	default:
		c.last = n
	}
	c.mu.Unlock()
	select {
	case c.at <- n:
	default:
	}
}

// waitFor waits until n arrived (or fails), then returns the faults seen.
func (c *counter) waitFor(t *testing.T, n int) []string {
	t.Helper()
	deadline := time.After(2 * wait)
	for {
		c.mu.Lock()
		last, faults := c.last, append([]string(nil), c.faults...)
		c.mu.Unlock()
		if last >= n {
			return faults
		}
		select {
		case <-c.at:
		case <-deadline:
			t.Fatalf("%s: got up to %d of %d; faults: %v", c.name, last, n, faults)
		}
	}
}

// side is one SDK peer of the cut test: what it received, from the signaling server and on
// its data channel.
type side struct {
	name      string
	client    *sdk.Client
	proxy     *testserver.Cutter
	relayed   *counter
	channel   *counter
	dc        chan *webrtc.DataChannel
	dcClosed  chan string
	left      chan string
	reconnect chan bool
}

func newSide(name string) *side {
	return &side{
		name:      name,
		relayed:   newCounter(name + " signaling"),
		channel:   newCounter(name + " data channel"),
		dc:        make(chan *webrtc.DataChannel, 1),
		dcClosed:  make(chan string, 4),
		left:      make(chan string, 16),
		reconnect: make(chan bool, 64),
	}
}

func (s *side) options(t *testing.T, offer bool) sdk.Options {
	return sdk.Options{
		Name:          s.name,
		Reconnect:     sdk.ReconnectOptions{MinDelay: 20 * time.Millisecond, MaxDelay: 200 * time.Millisecond},
		OnReconnected: func(resumed bool) { s.reconnect <- resumed },
		OnPeerLeft:    func(p *sdk.Peer, reason string) { s.left <- s.name + " saw " + p.ID() + " leave: " + reason },
		OnPeer: func(p *sdk.Peer) {
			p.OnMessage(func(m json.RawMessage) {
				var v struct{ N int }
				if json.Unmarshal(m, &v) == nil {
					s.relayed.got(v.N)
				}
			})
			watch := func(dc *webrtc.DataChannel) {
				dc.OnMessage(func(m webrtc.DataChannelMessage) {
					if n, err := strconv.Atoi(string(m.Data)); err == nil {
						s.channel.got(n)
					}
				})
				dc.OnClose(func() { s.dcClosed <- s.name + "'s channel closed" })
				dc.OnOpen(func() { s.dc <- dc })
			}
			if offer {
				dc, err := p.CreateDataChannel("numbers", nil)
				if err != nil {
					t.Error(err)
					return
				}
				watch(dc)
			} else {
				p.OnDataChannel(watch)
			}
		},
	}
}

// Two SDK peers, each through its own cutting proxy, relay a numbered message to each other
// every 100 ms through the server and send one every 50 ms on a data channel, while their
// signaling connections are cut again and again (one, the other, or both at once). Every cut
// ends in a resume with the same ids; every message arrives once and in order; the data
// channel never closes and neither side ever sees the other leave.
func TestResumeUnderRepeatedCuts(t *testing.T) {
	url := testserver.Start(t, nil)
	host := strings.TrimPrefix(url, "http://")
	a, b := newSide("a"), newSide("b")
	a.proxy, b.proxy = testserver.NewCutter(t, host), testserver.NewCutter(t, host)
	a.client = dial(t, "http://"+a.proxy.Addr(), "cuts", a.options(t, false))
	b.client = dial(t, "http://"+b.proxy.Addr(), "cuts", b.options(t, true))
	idA, idB := a.client.ID(), b.client.ID()
	dcA, dcB := waitChan(t, a.dc, "a's channel open"), waitChan(t, b.dc, "b's channel open")
	pa := connectedPeer(t, a.client, idB)
	pb := connectedPeer(t, b.client, idA)

	const cuts = 12
	tr := startTraffic(pa, pb, dcA, dcB)
	tick := time.NewTicker(300 * time.Millisecond) // pacing the cuts, not waiting for events
	for i := range cuts {
		<-tick.C
		var cut []*side
		switch i % 3 {
		case 0:
			cut = []*side{a}
		case 1:
			cut = []*side{b}
		default:
			cut = []*side{a, b}
		}
		for _, s := range cut {
			if n := s.proxy.Cut(); n != 1 {
				t.Fatalf("cut %d: %s had %d connections through its proxy, want 1", i, s.name, n)
			}
		}
		for _, s := range cut {
			if !waitChan(t, s.reconnect, s.name+" reconnected") {
				t.Fatalf("cut %d: %s joined anew instead of resuming", i, s.name)
			}
		}
	}
	tick.Stop()
	tr.check(t, a, b)
	if a.client.ID() != idA || b.client.ID() != idB {
		t.Fatalf("ids changed: a %s→%s, b %s→%s", idA, a.client.ID(), idB, b.client.ID())
	}
	for _, s := range []*side{a, b} {
		select {
		case l := <-s.left:
			t.Fatal(l)
		case c := <-s.dcClosed:
			t.Fatal(c)
		default:
		}
	}
	if a.client.Peer(idB) != pa || b.client.Peer(idA) != pb {
		t.Fatal("a peer object was replaced")
	}
}

// traffic is the paced load of the resume tests: a relayed message every 100 ms and a
// data-channel message every 50 ms, each way, numbered from 1.
type traffic struct {
	stop    chan struct{}
	senders sync.WaitGroup
	mu      sync.Mutex
	sent    map[string]int
	errs    []string
}

func startTraffic(pa, pb *sdk.Peer, dcA, dcB *webrtc.DataChannel) *traffic {
	tr := &traffic{stop: make(chan struct{}), sent: map[string]int{}}
	tr.senders.Add(4)
	go tr.pace("a→b relay", 100*time.Millisecond, func(n int) error { return pa.SendMessage(map[string]int{"n": n}) })
	go tr.pace("b→a relay", 100*time.Millisecond, func(n int) error { return pb.SendMessage(map[string]int{"n": n}) })
	go tr.pace("a→b channel", 50*time.Millisecond, func(n int) error { return dcA.SendText(strconv.Itoa(n)) })
	go tr.pace("b→a channel", 50*time.Millisecond, func(n int) error { return dcB.SendText(strconv.Itoa(n)) })
	return tr
}

func (tr *traffic) pace(what string, every time.Duration, send func(n int) error) {
	defer tr.senders.Done()
	tick := time.NewTicker(every)
	defer tick.Stop()
	for n := 1; n <= 2000; n++ { // bounded: the tests end long before
		select {
		case <-tr.stop:
			return
		case <-tick.C:
		}
		if err := send(n); err != nil {
			tr.mu.Lock()
			tr.errs = append(tr.errs, fmt.Sprintf("%s %d: %v", what, n, err))
			tr.mu.Unlock()
			return
		}
		tr.mu.Lock()
		tr.sent[what] = n
		tr.mu.Unlock()
	}
}

// sentNow returns the last number sent of what.
func (tr *traffic) sentNow(what string) int {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	return tr.sent[what]
}

// check stops the senders and waits for every message to arrive: once each, in order.
func (tr *traffic) check(t *testing.T, a, b *side) {
	t.Helper()
	close(tr.stop)
	tr.senders.Wait()
	if len(tr.errs) > 0 {
		t.Fatalf("sends failed: %v", tr.errs)
	}
	t.Logf("sent %v", tr.sent)
	var faults []string
	faults = append(faults, b.relayed.waitFor(t, tr.sent["a→b relay"])...)
	faults = append(faults, a.relayed.waitFor(t, tr.sent["b→a relay"])...)
	faults = append(faults, b.channel.waitFor(t, tr.sent["a→b channel"])...)
	faults = append(faults, a.channel.waitFor(t, tr.sent["b→a channel"])...)
	if len(faults) > 0 {
		t.Fatalf("%d faults: %v", len(faults), faults)
	}
}

// connectedPeer returns c's peer id once it is connected.
func connectedPeer(t *testing.T, c *sdk.Client, id string) *sdk.Peer {
	t.Helper()
	p := c.Peer(id)
	if p == nil {
		t.Fatalf("%s does not know %s", c.ID(), id)
	}
	waitChan(t, p.Connected(), "connected to "+id)
	return p
}
