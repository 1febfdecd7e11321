package main

import (
	"context"
	"fmt"
	"sync"
	"time"
)

// noReadRcvBuf is the receive buffer a non-reading peer asks for: the smaller, the less the
// attack costs the attacker (the kernel doubles it and keeps a floor).
const noReadRcvBuf = 4096

// attackNoRead is item 8: native peers that join a room and never read again, 49 to a room
// with a sender broadcasting 60 KB messages: what the server cannot write waits in its
// kernel send buffers and its send queues.
func attackNoRead(ctx context.Context, env *attackEnv) error {
	runID := randHex(4)
	room := func(i int) string { return fmt.Sprintf("h8-%s-%d", runID, i/roomPeers) }
	rooms := (env.size + roomPeers - 1) / roomPeers
	// The senders first, so a per-client cap leaves them their connections.
	senders, refused := openSenders(ctx, env, rooms, func(r int) string { return room(r * roomPeers) })
	defer closeSenders(senders)
	env.res.int("senders", int64(len(senders)))
	env.res.add("senders_refused", refused.String())

	dialers := attackerDialers(env, noReadRcvBuf)
	outcomes := newTally()
	var mu sync.Mutex
	var peers []*rawWS
	defer func() {
		for _, p := range peers {
			p.close()
		}
	}()
	start := time.Now()
	forEach(ctx, env.size, env.conc, func(i int) {
		ws, err := dialWS(ctx, dialers[i%len(dialers)], env.host, "/ws", 10*time.Second)
		if err != nil {
			outcomes.add(errKey(err), 1)
			return
		}
		if _, err := ws.joinRaw(room(i), 10*time.Second); err != nil {
			outcomes.add("join-"+errKey(err), 1)
			ws.close()
			return
		}
		outcomes.add("joined", 1)
		mu.Lock()
		peers = append(peers, ws)
		mu.Unlock()
	})
	env.logf("senders %d (refused %s); peers %s in %.1fs; flooding", len(senders), refused, outcomes, time.Since(start).Seconds())
	env.res.add("peers", outcomes.String())
	msg := bigMessage(60_000)
	sent := broadcast(ctx, env, senders, msg, 40, 10)
	env.res.int("broadcasts", sent)
	env.logf("%d broadcasts of %d B sent", sent, len(msg))
	return nil
}
