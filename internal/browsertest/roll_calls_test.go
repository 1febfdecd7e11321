package browsertest

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/pion/webrtc/v4"

	"github.com/switchboard-rtc/switchboard/internal/testserver"
	"github.com/switchboard-rtc/switchboard/sdk"
)

// stream checks that numbered messages arrive each once and in order.
type stream struct {
	mu     sync.Mutex
	name   string
	last   int
	faults []string
}

func (s *stream) got(n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case n <= s.last:
		s.faults = append(s.faults, fmt.Sprintf("%s: %d again after %d", s.name, n, s.last))
	case n > s.last+1:
		s.faults = append(s.faults, fmt.Sprintf("%s: %d after %d (%d lost)", s.name, n, s.last, n-s.last-1))
		s.last = n
	default:
		s.last = n
	}
}

func (s *stream) state() (int, []string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.last, append([]string(nil), s.faults...)
}

// callEnd is one SDK peer of a call: what it received and every sign of a dropped call.
type callEnd struct {
	name    string
	client  *sdk.Client
	id      string
	relayed stream
	channel stream
	dc      chan *webrtc.DataChannel

	mu       sync.Mutex
	troubles []string // peer-left, channel closed, started over
	resumes  int
	down     bool          // reconnecting
	losses   int           // times it lost the server
	changed  chan struct{} // signaled (without blocking) when down changes; may be shared
}

func (e *callEnd) setDown(down bool) {
	e.mu.Lock()
	e.down = down
	if down {
		e.losses++
	}
	e.mu.Unlock()
	select {
	case e.changed <- struct{}{}:
	default:
	}
}

func (e *callEnd) isDown() bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.down
}

func (e *callEnd) lostServer() bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.losses > 0
}

func (e *callEnd) trouble(format string, args ...any) {
	e.mu.Lock()
	e.troubles = append(e.troubles, e.name+": "+fmt.Sprintf(format, args...))
	e.mu.Unlock()
}

func (e *callEnd) options(offer bool) sdk.Options {
	return sdk.Options{
		Name:           e.name,
		Reconnect:      sdk.ReconnectOptions{MinDelay: 20 * time.Millisecond, MaxDelay: 300 * time.Millisecond},
		OnReconnecting: func(int, error) { e.setDown(true) },
		OnReconnected: func(resumed bool) {
			e.mu.Lock()
			e.resumes++
			e.mu.Unlock()
			e.setDown(false)
			if !resumed {
				e.trouble("reconnected as a new presence")
			}
		},
		OnPeerLeft: func(p *sdk.Peer, reason string) { e.trouble("saw %s leave (%s)", p.ID(), reason) },
		OnPeer: func(p *sdk.Peer) {
			p.OnMessage(func(m json.RawMessage) {
				var v struct{ N int }
				if json.Unmarshal(m, &v) == nil {
					e.relayed.got(v.N)
				}
			})
			watch := func(dc *webrtc.DataChannel) {
				dc.OnMessage(func(m webrtc.DataChannelMessage) {
					if n, err := strconv.Atoi(string(m.Data)); err == nil {
						e.channel.got(n)
					}
				})
				dc.OnClose(func() { e.trouble("data channel closed") })
				dc.OnOpen(func() { e.dc <- dc })
			}
			if offer {
				dc, err := p.CreateDataChannel("numbers", nil)
				if err != nil {
					e.trouble("create data channel: %v", err)
					return
				}
				watch(dc)
			} else {
				p.OnDataChannel(watch)
			}
		},
	}
}

// call is two SDK peers in a room of their own, sending numbered messages to each other
// through the server every 100 ms and on a data channel every 50 ms.
type call struct {
	a, b   *callEnd
	pa, pb *sdk.Peer // a's view of b, b's view of a
	dcA    *webrtc.DataChannel
	dcB    *webrtc.DataChannel

	mu      sync.Mutex
	sent    map[string]int
	sendErr []string
}

// startCall connects a pair through base and waits for its data channel.
// Both ends signal changed when they lose or regain the server.
func startCall(t *testing.T, base, room string, changed chan struct{}) *call {
	t.Helper()
	c := &call{sent: map[string]int{}}
	c.a = &callEnd{name: room + "/a", relayed: stream{name: room + " b→a relay"}, channel: stream{name: room + " b→a channel"}, dc: make(chan *webrtc.DataChannel, 1), changed: changed}
	c.b = &callEnd{name: room + "/b", relayed: stream{name: room + " a→b relay"}, channel: stream{name: room + " a→b channel"}, dc: make(chan *webrtc.DataChannel, 1), changed: changed}
	c.a.client = testserver.DialPeer(t, base, room, c.a.options(false), 30*time.Second)
	c.b.client = testserver.DialPeer(t, base, room, c.b.options(true), 30*time.Second)
	c.a.id, c.b.id = c.a.client.ID(), c.b.client.ID()
	c.dcA = testserver.Recv(t, c.a.dc, 60*time.Second, room+": a's channel open")
	c.dcB = testserver.Recv(t, c.b.dc, 60*time.Second, room+": b's channel open")
	c.pa, c.pb = c.a.client.Peer(c.b.id), c.b.client.Peer(c.a.id)
	if c.pa == nil || c.pb == nil {
		t.Fatalf("%s: the peers do not know each other", room)
	}
	return c
}

// run sends until stop closes (bounded at 10 minutes' worth).
func (c *call) run(stop <-chan struct{}, wg *sync.WaitGroup) {
	pace := func(what string, every time.Duration, send func(n int) error) {
		defer wg.Done()
		tick := time.NewTicker(every)
		defer tick.Stop()
		for n := 1; n <= int(10*time.Minute/every); n++ {
			select {
			case <-stop:
				return
			case <-tick.C:
			}
			if err := send(n); err != nil {
				c.mu.Lock()
				c.sendErr = append(c.sendErr, fmt.Sprintf("%s %d: %v", what, n, err))
				c.mu.Unlock()
				return
			}
			c.mu.Lock()
			c.sent[what] = n
			c.mu.Unlock()
		}
	}
	wg.Add(4)
	go pace("a→b relay", 100*time.Millisecond, func(n int) error { return c.pa.SendMessage(map[string]int{"n": n}) })
	go pace("b→a relay", 100*time.Millisecond, func(n int) error { return c.pb.SendMessage(map[string]int{"n": n}) })
	go pace("a→b channel", 50*time.Millisecond, func(n int) error { return c.dcA.SendText(strconv.Itoa(n)) })
	go pace("b→a channel", 50*time.Millisecond, func(n int) error { return c.dcB.SendText(strconv.Itoa(n)) })
}

// check waits (up to deadline) for everything sent to arrive and returns every fault: lost,
// duplicated or reordered messages, peer-left, closed channels, new presences, changed ids.
func (c *call) check(ctx context.Context) (faults []string, sent map[string]int) {
	c.mu.Lock()
	sent = map[string]int{}
	for k, v := range c.sent {
		sent[k] = v
	}
	faults = append(faults, c.sendErr...)
	c.mu.Unlock()
	streams := map[string]*stream{"a→b relay": &c.b.relayed, "b→a relay": &c.a.relayed, "a→b channel": &c.b.channel, "b→a channel": &c.a.channel}
	for what, s := range streams {
		for {
			last, fs := s.state()
			if last >= sent[what] {
				faults = append(faults, fs...)
				break
			}
			if ctx.Err() != nil {
				faults = append(faults, fmt.Sprintf("%s: got up to %d of %d", s.name, last, sent[what]))
				faults = append(faults, fs...)
				break
			}
			select { // the streams have no signal of their own: look again shortly
			case <-ctx.Done():
			case <-time.After(20 * time.Millisecond):
			}
		}
	}
	for _, e := range []*callEnd{c.a, c.b} {
		e.mu.Lock()
		faults = append(faults, e.troubles...)
		e.mu.Unlock()
		if id := e.client.ID(); id != e.id {
			faults = append(faults, fmt.Sprintf("%s: id changed from %s to %s", e.name, e.id, id))
		}
	}
	return faults, sent
}
