package bench

import (
	"context"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"
)

// idleRun is the shared state of an idle run.
type idleRun struct {
	opts    *options
	d       *dialer
	errs    *errorLog
	closing atomic.Bool
	dropped atomic.Int64 // connections lost after being established
	readers sync.WaitGroup
}

func runIdle(ctx context.Context, o *options, stdout, stderr io.Writer) error {
	limit, err := raiseNoFile()
	if err != nil {
		fmt.Fprintf(stderr, "bench: warning: %v\n", err)
	} else if uint64(o.conns)+64 > limit {
		return fmt.Errorf("--conns %d needs more than the open-files limit %d allows", o.conns, limit)
	}
	d, err := newDialer(o.url, o.proto, o.sourceIPs, o.dialTimeout)
	if err != nil {
		return err
	}
	defer d.close()
	if err := d.withTrust(o.trust); err != nil {
		return err
	}
	probe := serverProbe{pid: o.pid}
	rssBefore, rssOK, err := probe.rss()
	if err != nil {
		return fmt.Errorf("--pid: %w", err)
	}
	run := &idleRun{opts: o, d: d, errs: newErrorLog(stderr)}
	clients := make([]*client, o.conns)
	defer func() {
		run.closing.Store(true)
		for _, c := range clients {
			if c != nil {
				c.close()
			}
		}
		run.readers.Wait()
	}()

	start := time.Now()
	if err := run.openAll(ctx, clients); err != nil {
		return err
	}
	connectTime := time.Since(start)
	connected := 0
	for _, c := range clients {
		if c != nil {
			connected++
		}
	}
	fmt.Fprintf(stdout, "idle: proto=%s url=%s opened %d/%d connections in %.2fs (%.0f/s) over %d source addresses\n",
		o.proto, o.url, connected, o.conns, connectTime.Seconds(), float64(connected)/connectTime.Seconds(), len(d.clients))
	if err := sleepCtx(ctx, o.settle); err != nil {
		return err
	}
	rssAfter, rssOK2, rssErr := probe.rss()
	alive := int64(connected) - run.dropped.Load()
	errCount := run.errs.count()
	fmt.Fprintf(stdout, "after %s settle: %d connections alive, errors: %d\n", o.settle, alive, errCount)
	r := newResultLine("idle", o.proto)
	r.int("conns", int64(o.conns))
	r.int("connected", int64(connected))
	r.int("alive", alive)
	r.int("errors", errCount)
	rssOK = rssOK && rssOK2
	var perConn float64
	if rssOK {
		if alive > 0 {
			perConn = float64((rssAfter-rssBefore)*1024) / float64(alive)
		}
		fmt.Fprintf(stdout, "server pid %d: RSS %d kB before, %d kB after = %.0f bytes per connection\n",
			o.pid, rssBefore, rssAfter, perConn)
	} else if rssErr != nil {
		fmt.Fprintf(stderr, "bench: warning: server RSS: %v\n", rssErr)
	}
	r.optFloat("rss_before_kb", float64(rssBefore), rssOK, 0)
	r.optFloat("rss_after_kb", float64(rssAfter), rssOK, 0)
	r.optFloat("bytes_per_conn", perConn, rssOK && alive > 0, 0)
	r.float("connect_s", connectTime.Seconds(), 2)
	fmt.Fprintln(stdout, r)
	return nil
}

// openAll opens len(clients) connections with opts.concurrency workers,
// bounded by opts.connectTimeout, and starts a reader for each.
func (run *idleRun) openAll(ctx context.Context, clients []*client) error {
	o := run.opts
	octx, cancel := context.WithTimeout(ctx, o.connectTimeout)
	defer cancel()
	runID := newRunID()
	var next atomic.Int64
	var wg sync.WaitGroup
	for range min(o.concurrency, len(clients)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= len(clients) || octx.Err() != nil {
					return
				}
				room := fmt.Sprintf("idle-%s-%d", runID, i/o.roomSize)
				c, err := run.d.open(octx, i, room)
				if err != nil {
					run.errs.add("connection %d: %v", i, err)
					continue
				}
				clients[i] = c
				run.readers.Add(1)
				go run.read(c, i)
			}
		}()
	}
	wg.Wait()
	if ctx.Err() != nil {
		return fmt.Errorf("idle run interrupted: %w", context.Cause(ctx))
	}
	if octx.Err() != nil {
		return fmt.Errorf("could not open %d connections within --connect-timeout %s", len(clients), o.connectTimeout)
	}
	return nil
}

// read keeps c answering pings (WebSocket pings are answered while reading,
// Engine.IO pings by next) and discards what arrives, until c is closed.
func (run *idleRun) read(c *client, i int) {
	defer run.readers.Done()
	for {
		kind, msg, err := c.next()
		if err != nil {
			if !run.closing.Load() {
				run.dropped.Add(1)
				run.errs.add("connection %d dropped: %v", i, err)
			}
			return
		}
		if kind == kindError {
			run.errs.add("connection %d got %s", i, truncate(msg))
		}
	}
}
