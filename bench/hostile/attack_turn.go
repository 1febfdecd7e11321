package main

import (
	"context"
	"errors"
	"math"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"
)

// errNoTURN is an attack on TURN against a server started without it.
var errNoTURN = errors.New("this attack needs --turn (the server's TURN port)")

// attackTURNAlloc is item 3: 49 cheap joins from 4 addresses, each peer id's credentials
// used for as many allocations as the relay will give, one UDP socket each.
func attackTURNAlloc(ctx context.Context, env *attackEnv) error {
	if env.turnAddr == "" {
		return errNoTURN
	}
	url := "ws" + strings.TrimPrefix(env.server, "http") + "/ws"
	joins := min(49, env.size)
	creds := make([]turnCreds, 0, joins)
	joinOutcomes := newTally()
	for j := range joins {
		room := "h3-" + randHex(4)
		c, w, err := dialNative(ctx, url, env.addr(j), room)
		if err != nil {
			joinOutcomes.add(errKey(err), 1)
			continue
		}
		_ = c.Close(websocket.StatusNormalClosure, "") // the credentials outlive the connection
		tc, ok := credsFrom(w.ICEServers)
		if !ok {
			joinOutcomes.add("no-turn-credentials", 1)
			continue
		}
		joinOutcomes.add("ok", 1)
		creds = append(creds, tc)
	}
	env.res.add("joins", joinOutcomes.String())
	if len(creds) == 0 {
		return errors.New("no join gave TURN credentials")
	}
	outcomes := newTally()
	var mu sync.Mutex
	var allocs []*turnAlloc
	start := time.Now()
	forEach(ctx, env.size, min(env.conc, 64), func(i int) {
		actx, cancel := context.WithTimeout(ctx, 5*time.Second)
		a, err := turnAllocate(actx, creds[i%len(creds)], env.addr(i), false)
		cancel()
		outcomes.add(turnKey(err), 1)
		if err == nil {
			mu.Lock()
			allocs = append(allocs, a)
			mu.Unlock()
		}
	})
	env.logf("joins %s; allocations %s in %.1fs", joinOutcomes, outcomes, time.Since(start).Seconds())
	env.res.add("allocations", outcomes.String())
	env.atkUDP = int64(len(allocs))
	env.peak(ctx)
	err := sleepCtx(ctx, env.hold)
	left := deallocate(context.WithoutCancel(ctx), env, allocs)
	env.res.int("left_allocated", left)
	return err
}

// deallocate closes the attacker's allocations at a pace the server's UDP socket takes (a
// Refresh with lifetime 0 is one datagram nobody waits for: thousands at once overflow the
// server's receive buffer, and what is lost stays allocated for its lifetime, 10 minutes),
// then waits up to 5 s for the server's allocation gauge to fall. It returns how many of
// the server's allocations are still live.
func deallocate(ctx context.Context, env *attackEnv, allocs []*turnAlloc) int64 {
	const batch = 16
	for i, a := range allocs {
		a.close()
		if i%batch == batch-1 {
			time.Sleep(5 * time.Millisecond)
		}
	}
	var live int64 = -1
	for range 50 {
		m, err := scrapeMetrics(ctx, env.server)
		if err != nil {
			return -1
		}
		if live = int64(m["switchboard_turn_allocations"]); live == 0 {
			break
		}
		if sleepCtx(ctx, 100*time.Millisecond) != nil {
			break
		}
	}
	return live
}

// attackTURNTCP is item 4: idle TCP connections to the TURN port that never allocate.
func attackTURNTCP(ctx context.Context, env *attackEnv) error {
	if env.turnAddr == "" {
		return errNoTURN
	}
	outcomes := newTally()
	var open atomic.Int64
	cuts := newCutLog()
	var mu sync.Mutex
	var conns []net.Conn
	var readers sync.WaitGroup
	dialers := make([]*net.Dialer, len(env.addrs))
	for i, a := range env.addrs {
		dialers[i] = tcpDialer(a, 5*time.Second, 0)
	}
	start := time.Now()
	forEach(ctx, env.size, env.conc, func(i int) {
		dctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		c, err := dialers[i%len(dialers)].DialContext(dctx, "tcp4", env.turnAddr)
		cancel()
		if err != nil {
			outcomes.add(errKey(err), 1)
			return
		}
		outcomes.add("connected", 1)
		open.Add(1)
		mu.Lock()
		conns = append(conns, c)
		mu.Unlock()
		opened := time.Now()
		readers.Add(1)
		go func() { // the server speaks first only to close
			defer readers.Done()
			var b [64]byte
			for {
				if _, err := c.Read(b[:]); err != nil {
					open.Add(-1)
					cuts.add(time.Since(opened))
					_ = c.Close()
					return
				}
			}
		}()
	})
	env.logf("connections: %s in %.1fs", outcomes, time.Since(start).Seconds())
	_ = sleepCtx(ctx, time.Second)
	env.res.add("conns", outcomes.String())
	env.res.int("open_at_peak", open.Load())
	env.logf("open a second later: %d", open.Load())
	env.peak(ctx)
	err := sleepCtx(ctx, env.hold)
	env.res.int("open_at_end", open.Load())
	env.res.add("cut", cuts.String())
	env.logf("open at the end: %d; cut by the server: %s", open.Load(), cuts)
	cuts.stop()
	mu.Lock()
	for _, c := range conns {
		_ = c.Close()
	}
	mu.Unlock()
	readers.Wait()
	return err
}

// cutLog records when the server closed attacking connections, counted in bands of time
// since each was opened. After stop, closes are the attacker's own and not recorded.
type cutLog struct {
	mu      sync.Mutex
	n       int64
	bands   [len(cutBands)]int64
	stopped bool
}

func newCutLog() *cutLog { return &cutLog{} }

// cutBands are the bands, in order: the upper bound of each.
var cutBands = [...]struct {
	upTo time.Duration
	name string
}{{time.Second, "<1s"}, {5 * time.Second, "1-5s"}, {9 * time.Second, "5-9s"}, {12 * time.Second, "9-12s"},
	{29 * time.Second, "12-29s"}, {32 * time.Second, "29-32s"}, {time.Duration(math.MaxInt64), ">32s"}}

func cutBand(d time.Duration) int {
	for i, b := range cutBands {
		if d < b.upTo {
			return i
		}
	}
	return len(cutBands) - 1
}

// add records a connection cut d after it opened.
func (l *cutLog) add(d time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.stopped {
		return
	}
	l.n++
	l.bands[cutBand(d)]++
}

// stop ends the recording: the attacker is closing its connections.
func (l *cutLog) stop() {
	l.mu.Lock()
	l.stopped = true
	l.mu.Unlock()
}

// String is "N(band:n,...)" with the bands in order, or "0".
func (l *cutLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.n == 0 {
		return "0"
	}
	var parts []string
	for i, n := range l.bands {
		if n > 0 {
			parts = append(parts, cutBands[i].name+":"+strconv.FormatInt(n, 10))
		}
	}
	return strconv.FormatInt(l.n, 10) + "(" + strings.Join(parts, ",") + ")"
}
