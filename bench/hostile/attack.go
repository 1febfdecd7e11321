package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"net"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// attack is one of issue 12's attacks.
type attack struct {
	name string
	// size is the size; addrs the source addresses the issue used (0: one).
	size, addrs int
	// perClient is the server's default per-client cap the attack runs into: with
	// --addrs 0 the attacker spreads over enough addresses to stay under it.
	perClient int
	hold      time.Duration // how long the attack is held at its height
	run       func(ctx context.Context, env *attackEnv) error
}

var attacks = map[int]attack{
	1: {name: "sio-queue", size: 1000, perClient: 64, hold: 10 * time.Second, run: attackSIOQueue},
	2: {name: "sio-table", size: 100_000, perClient: 64, hold: 10 * time.Second, run: attackSIOTable},
	3: {name: "turn-alloc", size: 4096, addrs: 4, perClient: 64, hold: 5 * time.Second, run: attackTURNAlloc},
	4: {name: "turn-tcp", size: 4200, perClient: 32, hold: 12 * time.Second, run: attackTURNTCP},
	5: {name: "ws-drip", size: 6000, perClient: 256, hold: 20 * time.Second, run: attackWSDrip},
	6: {name: "http-drip", size: 5000, hold: 40 * time.Second, run: attackHTTPDrip},
	7: {name: "fd-flood", size: 30_000, perClient: 256, hold: 10 * time.Second, run: attackFlood},
	8: {name: "no-read", size: 490, perClient: 256, hold: 15 * time.Second, run: attackNoRead},
}

// attackEnv is what an attack is given, and where it leaves its figures.
type attackEnv struct {
	server   string // http://127.0.0.1:PORT
	host     string // 127.0.0.1:PORT
	turnAddr string // the TURN port, host:port; empty without TURN
	ports    []int  // the server's TCP ports: the listener and TURN
	size     int
	addrs    []netip.Addr
	hold     time.Duration
	conc     int // connections or requests in flight at once
	newcomer netip.Addr
	stderr   io.Writer
	res      *resultLine

	peakOnce sync.Once
	atkUDP   int64   // UDP sockets the attacker holds at its height (TURN)
	before   metrics // the server's metrics before the attack
}

// addr is the source address of the i-th attacking client connection.
func (e *attackEnv) addr(i int) netip.Addr { return e.addrs[i%len(e.addrs)] }

// logf prints progress to stderr.
func (e *attackEnv) logf(format string, args ...any) {
	fmt.Fprintf(e.stderr, "  %s "+format+"\n", append([]any{time.Now().Format("15:04:05.000")}, args...)...)
}

// peak is called by the attack once at its height: it records what the server holds (its
// gauges, both sides' sockets), then runs the newcomer probe. Later calls do nothing.
func (e *attackEnv) peak(ctx context.Context) {
	e.peakOnce.Do(func() {
		e.res.int("peak_ms", unixMS(time.Now()))
		m, err := scrapeMetrics(ctx, e.server)
		if err != nil {
			e.logf("metrics at the peak: %v", err)
		}
		e.res.add("gauges", gauges(m))
		// The Go memory (heap and goroutine stacks) the server took on for the attack: RSS
		// alone misses it when an earlier attack left free memory to grow into.
		const heap, stacks = "go_memstats_heap_inuse_bytes", "go_memstats_stack_inuse_bytes"
		if _, ok := m[heap]; ok && e.before != nil {
			e.res.int("srv_gomem", int64(m[heap]+m[stacks]-e.before[heap]-e.before[stacks]))
		}
		snap, err := snapshotSockets(ctx, e.ports)
		if err != nil {
			e.logf("sockets at the peak: %v", err)
		}
		srvUDP := int64(m["switchboard_turn_allocations"]) // one relay socket each
		e.res.int("srv_tcp", int64(snap.server.n))
		e.res.int("srv_buf", snap.server.buf)
		e.res.int("srv_udp", srvUDP)
		e.res.int("srv_kmem", snap.server.kernelBytes()+srvUDP*udpSocketBytes)
		e.res.int("atk_tcp", int64(snap.clients.n))
		e.res.int("atk_buf", snap.clients.buf)
		e.res.int("atk_udp", e.atkUDP)
		e.res.int("atk_kmem", snap.clients.kernelBytes()+e.atkUDP*udpSocketBytes)
		e.logf("at the peak: server %d TCP sockets (%d KiB buffered), %d relay sockets; clients %d TCP sockets (%d KiB buffered), %d UDP",
			snap.server.n, snap.server.buf>>10, srvUDP, snap.clients.n, snap.clients.buf>>10, e.atkUDP)
		nc := probeNewcomer(ctx, e.server, e.newcomer)
		e.res.add("newcomer", nc.String())
		e.res.int("newcomer_ms", nc.took.Milliseconds())
		e.logf("newcomer from %s: %s in %d ms (%s)", e.newcomer, nc, nc.took.Milliseconds(), strings.Join(nc.steps, ","))
		for _, msg := range nc.errs {
			e.logf("  newcomer %s", msg)
		}
	})
}

// scaled is size × scale, at least 1.
func scaled(size int, scale float64) int {
	return max(1, int(math.Round(float64(size)*scale)))
}

func runAttack(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return errUsage
	}
	n, err := strconv.Atoi(args[0])
	a, ok := attacks[n]
	if err != nil || !ok {
		return fmt.Errorf("attack %q: want a number from 1 to 8", args[0])
	}
	fs := flag.NewFlagSet("attack "+args[0], flag.ContinueOnError)
	fs.SetOutput(stderr)
	server := fs.String("server", "http://127.0.0.1:8080", "the server's base URL (loopback)")
	turnAddr := fs.String("turn", "", "the TURN port, host:port (attacks 3 and 4)")
	size := fs.Int("size", a.size, "how many: sessions, allocations, connections, requests (issue 12's size)")
	scale := fs.Float64("scale", 1, "multiplies --size")
	nAddrs := fs.Int("addrs", max(a.addrs, 1), "source addresses the attacker uses; 0: enough to stay under the server's default per-client cap")
	first := fs.String("first-addr", "127.1.0.1", "the attacker's first source address")
	hold := fs.Duration("hold", a.hold, "how long the attack is held at its height")
	conc := fs.Int("concurrency", 200, "connections or requests in flight at once")
	nc := fs.String("newcomer-addr", "127.0.0.200", "the newcomer's source address")
	if err := fs.Parse(args[1:]); err != nil {
		return errUsage
	}
	env, err := newEnv(a, *server, *turnAddr, scaled(*size, *scale), *nAddrs, *first, *nc)
	if err != nil {
		return err
	}
	env.hold, env.conc, env.stderr = *hold, max(1, *conc), stderr
	env.res = newResult(n, a.name)
	env.res.int("size", int64(env.size))
	env.res.int("addrs", int64(len(env.addrs)))
	fmt.Fprintf(stderr, "attack %d (%s): size %d from %d address(es) %s.., hold %s\n", n, a.name, env.size, len(env.addrs), env.addrs[0], env.hold)

	m0, err := scrapeMetrics(ctx, env.server)
	if err != nil {
		return err
	}
	env.before = m0
	t0, cpu0 := time.Now(), ownCPU()
	runErr := a.run(ctx, env)
	env.peak(ctx) // an attack that failed before its height still gets a newcomer
	t1 := time.Now()
	env.res.int("atk_cpu_ms", (ownCPU() - cpu0).Milliseconds())
	m1, err := scrapeMetrics(context.WithoutCancel(ctx), env.server)
	if err != nil {
		return fmt.Errorf("after the attack: %w", err)
	}
	env.res.int("t0", unixMS(t0))
	env.res.int("t1", unixMS(t1))
	env.res.add("counters", counterDeltas(m0, m1))
	if runErr != nil {
		env.res.add("error", errKey(runErr))
		fmt.Fprintf(stderr, "attack %d: %v\n", n, runErr)
	}
	fmt.Fprintln(stdout, env.res)
	if runErr != nil && errors.Is(runErr, context.Canceled) {
		return runErr
	}
	return nil
}

// newEnv checks the flags and lays out the attacker's addresses.
func newEnv(a attack, server, turnAddr string, size, nAddrs int, first, newcomer string) (*attackEnv, error) {
	u, err := url.Parse(server)
	if err != nil || u.Scheme != "http" || u.Port() == "" {
		return nil, fmt.Errorf("--server %q: want http://HOST:PORT", server)
	}
	env := &attackEnv{server: strings.TrimRight(server, "/"), host: u.Host, turnAddr: turnAddr, size: size}
	port, _ := strconv.Atoi(u.Port())
	env.ports = append(env.ports, port)
	if turnAddr != "" {
		_, tp, err := net.SplitHostPort(turnAddr)
		p, perr := strconv.Atoi(tp)
		if err != nil || perr != nil {
			return nil, fmt.Errorf("--turn %q: want HOST:PORT", turnAddr)
		}
		env.ports = append(env.ports, p)
	}
	if nAddrs <= 0 {
		nAddrs = clientsFor(size, a.perClient)
	}
	f, err := netip.ParseAddr(first)
	if err != nil {
		return nil, fmt.Errorf("--first-addr: %w", err)
	}
	if env.addrs, err = addrRange(f, nAddrs); err != nil {
		return nil, fmt.Errorf("--addrs: %w", err)
	}
	if env.newcomer, err = netip.ParseAddr(newcomer); err != nil {
		return nil, fmt.Errorf("--newcomer-addr: %w", err)
	}
	return env, nil
}

// forEach runs fn(i) for i in [0, n) with at most conc at once, stopping early when ctx
// ends.
func forEach(ctx context.Context, n, conc int, fn func(i int)) {
	sem := make(chan struct{}, conc)
	var wg sync.WaitGroup
	for i := range n {
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
			wg.Wait()
			return
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			fn(i)
		}()
	}
	wg.Wait()
}

// ownCPU is the CPU time this process and its waited-for children (the flood processes)
// have used.
func ownCPU() time.Duration {
	var total time.Duration
	for _, who := range []int{syscall.RUSAGE_SELF, syscall.RUSAGE_CHILDREN} {
		var ru syscall.Rusage
		if syscall.Getrusage(who, &ru) == nil {
			total += time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
		}
	}
	return total
}
