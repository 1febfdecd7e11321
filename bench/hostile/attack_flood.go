package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// perChild is how many connections one flood process opens: each process is limited to
// 20,000 descriptors on this machine, like the server.
const perChild = 15_000

// attackFlood is item 7: WebSocket upgrades from several processes at once, each keeping
// what it is given, to take the server to its descriptor limit; /healthz is probed every
// 100 ms meanwhile from an address of its own.
func attackFlood(ctx context.Context, env *attackEnv) error {
	self, err := os.Executable()
	if err != nil {
		return fmt.Errorf("find this program: %w", err)
	}
	procs := max(1, (env.size+perChild-1)/perChild)
	probe := newHealthProbe(env.server, netip.MustParseAddr("127.0.0.99"))
	pctx, stopProbe := context.WithCancel(context.WithoutCancel(ctx))
	probeDone := make(chan struct{})
	go func() {
		defer close(probeDone)
		probe.run(pctx, 100*time.Millisecond)
	}()
	defer func() {
		stopProbe()
		<-probeDone
	}()

	type child struct {
		cmd   *exec.Cmd
		stdin io.WriteCloser
		lines chan string
	}
	var children []*child
	defer func() {
		for _, c := range children {
			_ = c.stdin.Close()
		}
		for _, c := range children {
			for range c.lines { // the final line, then EOF
			}
			_ = c.cmd.Wait()
		}
	}()
	start := time.Now()
	for k := range procs {
		var addrs []string
		for i := k; i < len(env.addrs); i += procs {
			addrs = append(addrs, env.addrs[i].String())
		}
		if len(addrs) == 0 {
			addrs = []string{env.addrs[k%len(env.addrs)].String()}
		}
		size := env.size / procs
		if k < env.size%procs {
			size++
		}
		cmd := exec.CommandContext(context.WithoutCancel(ctx), self, "flood-child", "--host", env.host,
			"--size", strconv.Itoa(size), "--addrs", strings.Join(addrs, ","),
			"--concurrency", strconv.Itoa(max(1, env.conc/procs)))
		cmd.Stderr = env.stderr
		stdin, err := cmd.StdinPipe()
		if err != nil {
			return fmt.Errorf("flood process: %w", err)
		}
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			return fmt.Errorf("flood process: %w", err)
		}
		if err := cmd.Start(); err != nil {
			return fmt.Errorf("start a flood process: %w", err)
		}
		c := &child{cmd: cmd, stdin: stdin, lines: make(chan string, 4)}
		go func() {
			defer close(c.lines)
			sc := bufio.NewScanner(stdout)
			for sc.Scan() {
				c.lines <- sc.Text()
			}
		}()
		children = append(children, c)
	}
	// Each child says FLOODED when it has made all its attempts, CHILD when it ends.
	sum := func(tag string) childSum {
		t := childSum{outcomes: newTally(), deadHow: newTally()}
		for _, c := range children {
			for line := range c.lines {
				if !strings.HasPrefix(line, tag+" ") {
					continue
				}
				kv := parseKV(line)
				addCounts(t.outcomes, kv["outcomes"])
				addCounts(t.deadHow, kv["dead_how"])
				n, _ := strconv.ParseInt(kv["live"], 10, 64)
				t.live += n
				break
			}
		}
		return t
	}
	flooded := sum("FLOODED")
	took := time.Since(start)
	env.res.add("attempts", flooded.outcomes.String())
	env.res.int("flood_ms", took.Milliseconds())
	env.res.int("procs", int64(procs))
	env.logf("flood from %d processes: %s in %.1fs", procs, flooded.outcomes, took.Seconds())
	env.peak(ctx)
	err = sleepCtx(ctx, env.hold)
	for _, c := range children {
		_ = c.stdin.Close()
	}
	final := sum("CHILD")
	env.res.int("live_at_end", final.live)
	env.res.add("dead", final.deadHow.String())
	stopProbe()
	<-probeDone
	env.res.add("healthz", probe.String())
	env.logf("at the end: %d upgraded sockets still live, dead after a 101: %s; /healthz %s",
		final.live, final.deadHow, probe)
	return err
}

// childSum adds up what the flood processes said.
type childSum struct {
	outcomes, deadHow *tally
	live              int64
}

// addCounts adds a formatCounts value ("a:1,b:2") to t.
func addCounts(t *tally, s string) {
	for kv := range strings.SplitSeq(s, ",") {
		k, v, ok := strings.Cut(kv, ":")
		if n, err := strconv.ParseInt(v, 10, 64); ok && err == nil {
			t.add(k, n)
		}
	}
}

// runFloodChild is one flood process: it upgrades --size connections, keeps the ones it
// gets (answering pings), prints FLOODED, waits for stdin to close, prints CHILD and exits.
func runFloodChild(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("flood-child", flag.ContinueOnError)
	fs.SetOutput(stderr)
	host := fs.String("host", "127.0.0.1:8080", "the server")
	size := fs.Int("size", 1000, "upgrade attempts")
	addrList := fs.String("addrs", "127.1.0.1", "source addresses, comma-separated")
	conc := fs.Int("concurrency", 100, "attempts in flight")
	if err := fs.Parse(args); err != nil {
		return errUsage
	}
	var lim syscall.Rlimit
	if syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim) == nil && lim.Cur < lim.Max {
		lim.Cur = lim.Max
		_ = syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim)
	}
	var env attackEnv
	for a := range strings.SplitSeq(*addrList, ",") {
		p, err := netip.ParseAddr(a)
		if err != nil {
			return fmt.Errorf("--addrs: %w", err)
		}
		env.addrs = append(env.addrs, p)
	}
	dialers := attackerDialers(&env, 0)
	outcomes, deadHow := newTally(), newTally()
	var live, upgraded atomic.Int64
	var closing atomic.Bool
	var mu sync.Mutex
	var conns []*rawWS
	var readers sync.WaitGroup
	forEach(ctx, *size, max(1, *conc), func(i int) {
		ws, err := dialWS(ctx, dialers[i%len(dialers)], *host, "/ws", 10*time.Second)
		if err != nil {
			outcomes.add(errKey(err), 1)
			return
		}
		outcomes.add("101", 1)
		upgraded.Add(1)
		live.Add(1)
		mu.Lock()
		conns = append(conns, ws)
		mu.Unlock()
		readers.Add(1)
		go func() {
			defer readers.Done()
			_, err := ws.readMessage()
			live.Add(-1)
			if closing.Load() {
				return
			}
			var ce *closeError
			if errors.As(err, &ce) {
				deadHow.add("close-"+strconv.Itoa(ce.code), 1)
			} else {
				deadHow.add(errKey(err), 1)
			}
		}()
	})
	fmt.Fprintf(stdout, "FLOODED upgraded=%d outcomes=%s\n", upgraded.Load(), outcomes)
	stdinDone := make(chan struct{})
	go func() {
		_, _ = io.Copy(io.Discard, os.Stdin)
		close(stdinDone)
	}()
	select {
	case <-stdinDone:
	case <-ctx.Done():
	}
	fmt.Fprintf(stdout, "CHILD live=%d dead=%d dead_how=%s\n", live.Load(), upgraded.Load()-live.Load(), deadHow)
	closing.Store(true)
	mu.Lock()
	for _, ws := range conns {
		ws.close()
	}
	mu.Unlock()
	readers.Wait()
	return nil
}

// healthProbe GETs /healthz on a new connection every interval and records how it went.
type healthProbe struct {
	hc  *http.Client
	url string

	mu        sync.Mutex
	ok, fails int
	lat       []time.Duration
}

func newHealthProbe(server string, src netip.Addr) *healthProbe {
	d := tcpDialer(src, 5*time.Second, 0)
	tr := &http.Transport{Proxy: nil, DialContext: d.DialContext, DisableKeepAlives: true}
	return &healthProbe{hc: &http.Client{Transport: tr, Timeout: 5 * time.Second}, url: server + "/healthz"}
}

func (p *healthProbe) run(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		start := time.Now()
		err := p.once(ctx)
		p.mu.Lock()
		if err == nil {
			p.ok++
			p.lat = append(p.lat, time.Since(start))
		} else if ctx.Err() == nil {
			p.fails++
		}
		p.mu.Unlock()
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (p *healthProbe) once(ctx context.Context) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, p.url, nil)
	if err != nil {
		return fmt.Errorf("healthz request: %w", err)
	}
	resp, err := p.hc.Do(req)
	if err != nil {
		return fmt.Errorf("healthz: %w", err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return &statusError{code: resp.StatusCode}
	}
	return nil
}

// String is "ok/total,p50:Xms,max:Yms".
func (p *healthProbe) String() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	s := summarize(p.lat)
	return fmt.Sprintf("%d/%d,p50:%.1fms,max:%.1fms", p.ok, p.ok+p.fails, ms(s.p50), ms(s.max))
}
