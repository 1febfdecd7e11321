package server_test

import (
	"context"
	"encoding/json"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/switchboard-rtc/switchboard/internal/config"
	"github.com/switchboard-rtc/switchboard/internal/testserver"
)

// TestRandomizedCuts: two clients relay numbered messages to each other, both directions
// busy, through a proxy that cuts their connections at random moments — silently (the server
// still thinks them open: what it writes is lost) or with a FIN. After each cut both
// reconnect at once and resume with their token and last seq, re-sending with retry what they
// did not see acked. Over all trials: nothing lost, nothing twice, order kept.
func TestRandomizedCuts(t *testing.T) {
	trials, budget := 1000, 50*time.Second
	if testing.Short() {
		trials, budget = 100, 10*time.Second
	}
	ts := startServer(t, func(c *config.Config) {
		c.ResumeHoldEvents, c.ResumeHoldBytes = 1<<14, 8<<20
		c.RateLimit, c.RateBurst = 1e6, 1e6
		c.JoinsPerClient, c.JoinBurstPerClient = 1e6, 1e6
	})
	proxy := testserver.NewCutter(t, strings.TrimPrefix(ts.base, "http://"))
	url := "ws://" + proxy.Addr() + "/ws"
	a, b := &cutPeer{t: t, url: url, name: "a"}, &cutPeer{t: t, url: url, name: "b"}
	a.connect("")
	b.connect("")
	a.other, b.other = b, a
	a.target, b.target = b.id, a.id
	rng := rand.New(rand.NewPCG(14, 1000))
	start := time.Now()
	done, severed, closed := 0, 0, 0
	for done < trials && time.Since(start) < budget {
		a.start()
		b.start()
		// Cut after a random number of messages more has arrived on either side.
		a.waitReceived(a.received() + rng.IntN(40))
		if rng.IntN(4) == 0 {
			proxy.Cut()
			closed++
		} else {
			proxy.Sever()
			severed++
		}
		var wg sync.WaitGroup
		for _, p := range []*cutPeer{a, b} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				p.stop()
				p.connect(p.token)
			}()
		}
		wg.Wait()
		if t.Failed() {
			return
		}
		done++
	}
	// Everything sent arrives: the senders stop, then each side waits for the other's last.
	a.start()
	b.start()
	a.stopSending()
	b.stopSending()
	a.waitAll()
	b.waitAll()
	a.stop()
	b.stop()
	t.Logf("randomized cuts: %d trials in %v (%d silent, %d closed); a sent %d, b sent %d, all received in order once; replayed duplicates dropped by seq %d, retries %d (%d acked without relaying again: the server had them), gaps 0",
		done, time.Since(start).Round(time.Millisecond), severed, closed, a.next, b.next, a.dupes+b.dupes, a.retries+b.retries, ts.Hub().Stats().RetriesDeduped.Load())
	if done < trials && !testing.Short() {
		t.Logf("time budget of %v reached after %d of %d trials", budget, done, trials)
	}
	if done == 0 {
		t.Fatal("no trial ran")
	}
}

// cutPeer is one side of TestRandomizedCuts: a WebSocket client that survives its connection.
type cutPeer struct {
	t      *testing.T
	url    string
	name   string
	other  *cutPeer
	id     string
	target string
	token  string

	c       *websocket.Conn
	cancel  context.CancelFunc
	wg      sync.WaitGroup
	halt    chan struct{} // stops this connection's sender
	noSend  bool          // stopSending: no new messages
	retries int

	mu      sync.Mutex
	cond    *sync.Cond
	last    uint64 // highest seq received
	expect  int    // the next message number expected from the other side
	next    int    // the next message number to send
	unacked []int  // sent, not acked, in order
	dupes   int
}

const cutWindow = 32 // messages in flight per side

func (p *cutPeer) connect(token string) {
	t := p.t
	if p.cond == nil {
		p.cond = sync.NewCond(&p.mu)
	}
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	c, _, err := websocket.Dial(ctx, p.url, nil)
	if err != nil {
		t.Errorf("%s: dial: %v", p.name, err)
		return
	}
	c.SetReadLimit(1 << 20)
	join := map[string]any{"type": "join", "room": "cuts"}
	if token != "" {
		join["resume"], join["last"] = token, p.last
	}
	b, _ := json.Marshal(join)
	if err := c.Write(ctx, websocket.MessageText, b); err != nil {
		t.Errorf("%s: join: %v", p.name, err)
		return
	}
	for {
		_, raw, err := c.Read(ctx)
		if err != nil {
			t.Errorf("%s: welcome: %v", p.name, err)
			return
		}
		var w msg
		_ = json.Unmarshal(raw, &w)
		if w.Type != "welcome" {
			t.Errorf("%s: before the welcome: %s", p.name, raw)
			return
		}
		if token != "" && (!w.Resumed || w.peerID() != p.id || w.Gap) {
			t.Errorf("%s: resume refused or with a gap: %s", p.name, raw)
			return
		}
		p.id, p.token = w.peerID(), w.Resume
		break
	}
	p.c = c
}

// start runs the connection's reader and sender: first the retries, then new messages.
func (p *cutPeer) start() {
	ctx, cancel := context.WithCancel(context.Background())
	p.cancel = cancel
	p.halt = make(chan struct{})
	p.wg.Add(2)
	go p.read(ctx)
	go p.send(ctx, p.halt)
}

// stop ends the connection (without a close frame) and waits for its goroutines.
func (p *cutPeer) stop() {
	p.cancel()
	p.c.CloseNow()
	p.mu.Lock()
	p.cond.Broadcast()
	p.mu.Unlock()
	p.wg.Wait()
}

func (p *cutPeer) stopSending() {
	p.mu.Lock()
	p.noSend = true
	p.cond.Broadcast()
	p.mu.Unlock()
}

func (p *cutPeer) read(ctx context.Context) {
	defer p.wg.Done()
	for {
		_, raw, err := p.c.Read(ctx)
		if err != nil {
			return
		}
		var m msg
		if err := json.Unmarshal(raw, &m); err != nil {
			p.t.Errorf("%s: %s: %v", p.name, raw, err)
			return
		}
		p.mu.Lock()
		switch m.Type {
		case "message":
			if m.Seq <= p.last {
				p.dupes++ // replayed and already seen: dropped by seq, as clients do
				break
			}
			p.last = m.Seq
			var n int
			_ = json.Unmarshal(m.Data, &n)
			if n != p.expect {
				p.t.Errorf("%s: got message %d, want %d (lost, duplicated or out of order): %s", p.name, n, p.expect, raw)
			}
			p.expect = n + 1
		case "ack":
			var n int
			_ = json.Unmarshal(m.ID, &n)
			for i, u := range p.unacked {
				if u == n {
					p.unacked = append(p.unacked[:i], p.unacked[i+1:]...)
					break
				}
			}
		case "resume-token":
			p.token = m.Resume
		case "peer-joined":
			if m.Seq <= p.last {
				p.dupes++
				break
			}
			p.last = m.Seq
		default:
			p.t.Errorf("%s: unexpected %s", p.name, raw)
		}
		p.cond.Broadcast()
		p.mu.Unlock()
	}
}

func (p *cutPeer) send(ctx context.Context, halt chan struct{}) {
	defer p.wg.Done()
	write := func(n int, retry bool) bool {
		f := map[string]any{"type": "message", "id": n, "target": p.target, "data": n}
		if retry {
			f["retry"] = true
		}
		b, _ := json.Marshal(f)
		return p.c.Write(ctx, websocket.MessageText, b) == nil
	}
	p.mu.Lock()
	retry := append([]int(nil), p.unacked...)
	p.retries += len(retry)
	p.mu.Unlock()
	for _, n := range retry {
		if !write(n, true) {
			return
		}
	}
	for {
		p.mu.Lock()
		for ctx.Err() == nil && (p.noSend || len(p.unacked) >= cutWindow) {
			p.cond.Wait()
		}
		if ctx.Err() != nil {
			p.mu.Unlock()
			return
		}
		n := p.next
		p.next++
		p.unacked = append(p.unacked, n)
		p.mu.Unlock()
		if !write(n, false) {
			return
		}
	}
}

func (p *cutPeer) received() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.expect
}

// waitReceived waits until n messages from the other side have arrived (or a deadline).
func (p *cutPeer) waitReceived(n int) {
	deadline := time.AfterFunc(waitFor, func() { p.mu.Lock(); p.cond.Broadcast(); p.mu.Unlock() })
	defer deadline.Stop()
	end := time.Now().Add(waitFor)
	p.mu.Lock()
	defer p.mu.Unlock()
	for p.expect < n && time.Now().Before(end) {
		p.cond.Wait()
	}
	if p.expect < n {
		p.t.Errorf("%s: received %d of %d messages within %v", p.name, p.expect, n, waitFor)
	}
}

// waitAll waits until every message the other side sent has arrived and its own are acked.
func (p *cutPeer) waitAll() {
	p.other.mu.Lock()
	sent := p.other.next
	p.other.mu.Unlock()
	p.waitReceived(sent)
	deadline := time.AfterFunc(waitFor, func() { p.mu.Lock(); p.cond.Broadcast(); p.mu.Unlock() })
	defer deadline.Stop()
	end := time.Now().Add(waitFor)
	p.mu.Lock()
	defer p.mu.Unlock()
	for len(p.unacked) > 0 && time.Now().Before(end) {
		p.cond.Wait()
	}
	if len(p.unacked) > 0 {
		p.t.Errorf("%s: %d messages never acked", p.name, len(p.unacked))
	}
}
