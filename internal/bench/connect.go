package bench

import (
	"context"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"
)

// maxHandshakesPerWorker bounds a connect worker's loop whatever the duration.
const maxHandshakesPerWorker = 10_000_000

// connectWorker holds one worker's figures, read after it has exited.
type connectWorker struct {
	done int64           // handshakes completed in the window
	lats []time.Duration // their durations
}

func runConnect(ctx context.Context, o *options, stdout, stderr io.Writer) error {
	if _, err := raiseNoFile(); err != nil {
		fmt.Fprintf(stderr, "bench: warning: %v\n", err)
	}
	d, err := newDialer(o.url, o.proto, o.sourceIPs, o.dialTimeout)
	if err != nil {
		return err
	}
	defer d.close()
	probe := serverProbe{pid: o.pid}
	if _, _, err := probe.cpu(); err != nil {
		return fmt.Errorf("--pid: %w", err)
	}
	errs := newErrorLog(stderr)
	runID := newRunID()
	var phase atomic.Int32
	stop := make(chan struct{})
	workers := make([]connectWorker, o.concurrency)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cw := &workers[w]
			for k := range maxHandshakesPerWorker {
				select {
				case <-stop:
					return
				default:
				}
				t0 := time.Now()
				c, err := d.open(ctx, w+k*o.concurrency, fmt.Sprintf("conn-%s-%d-%d", runID, w, k))
				if err != nil {
					if phase.Load() != phaseDone {
						errs.add("worker %d: %v", w, err)
						// Do not spin on a refusing server.
						select {
						case <-stop:
						case <-time.After(10 * time.Millisecond):
						}
					}
					continue
				}
				lat := time.Since(t0)
				if phase.Load() == phaseMeasure {
					cw.done++
					if len(cw.lats) < maxSamplesPerPair {
						cw.lats = append(cw.lats, lat)
					}
				}
				if err := c.closeGracefully(); err != nil && phase.Load() == phaseMeasure {
					// A close that fails does not undo the handshake; count it anyway.
					errs.add("worker %d: %v", w, err)
				}
			}
		}()
	}
	finish := func() {
		phase.Store(phaseDone)
		close(stop)
		wg.Wait()
	}

	if err := sleepCtx(ctx, o.warmup); err != nil {
		finish()
		return err
	}
	cpu0, _ := probe.sample()
	t0 := time.Now()
	phase.Store(phaseMeasure)
	if err := sleepCtx(ctx, o.duration); err != nil {
		finish()
		return err
	}
	phase.Store(phaseDone)
	t1 := time.Now()
	cpu1, cpuErr := probe.sample()
	finish()

	window := t1.Sub(t0)
	var done int64
	var lats []time.Duration
	for i := range workers {
		done += workers[i].done
		lats = append(lats, workers[i].lats...)
	}
	lat := summarize(lats)
	rate := float64(done) / window.Seconds()
	fmt.Fprintf(stdout, "connect: proto=%s url=%s workers=%d warmup=%s duration=%s\n", o.proto, o.url, o.concurrency, o.warmup, o.duration)
	fmt.Fprintf(stdout, "handshakes: %d in %.2fs = %.0f/s (each: TCP + WebSocket + %s, then close)\n",
		done, window.Seconds(), rate, map[protoKind]string{protoNative: "join/welcome", protoSocketIO: "engine.io open + socket.io CONNECT"}[o.proto])
	fmt.Fprintf(stdout, "handshake time: p50 %.3f ms  p90 %.3f ms  p99 %.3f ms  max %.3f ms\n", ms(lat.P50), ms(lat.P90), ms(lat.P99), ms(lat.Max))
	fmt.Fprintf(stdout, "errors: %d\n", errs.count())
	cpu := diffCPU(cpu0, cpu1)
	if cpuErr != nil {
		fmt.Fprintf(stderr, "bench: warning: server CPU: %v\n", cpuErr)
	}
	printCPU(stdout, o.pid, cpu, window, done, "handshake")

	r := newResultLine("connect", o.proto)
	r.int("workers", int64(o.concurrency))
	r.float("handshakes_per_s", rate, 1)
	r.float("p50_ms", ms(lat.P50), 3)
	r.float("p99_ms", ms(lat.P99), 3)
	r.int("errors", errs.count())
	cpu.addTo(r, window, done, "cpu_us_per_handshake")
	fmt.Fprintln(stdout, r)
	return nil
}
