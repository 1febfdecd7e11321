package bench

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/switchboard-rtc/switchboard/internal/auth"
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
	d, err := newRawDialer(o.url, o.sourceIPs, o.dialTimeout)
	if err != nil {
		return err
	}
	d.withTrust(o.trust)
	probe := serverProbe{pid: o.pid}
	if _, _, err := probe.cpu(); err != nil {
		return fmt.Errorf("--pid: %w", err)
	}
	errs := newErrorLog(stderr)
	runID := newRunID()
	tokens, err := connectTokens(o, runID)
	if err != nil {
		return err
	}
	var phase atomic.Int32
	stop := make(chan struct{})
	workers := make([]connectWorker, o.concurrency)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cw := &workers[w]
			c := newRawConn()
			prefix := fmt.Sprintf("conn-%s-%d-", runID, w)
			room := make([]byte, 0, len(prefix)+12)
			for k := range maxHandshakesPerWorker {
				if phase.Load() == phaseDone {
					return // no attempt starts after the window
				}
				room = strconv.AppendInt(append(room[:0], prefix...), int64(k), 10)
				t0 := time.Now()
				err := openConnect(ctx, d, c, o.proto, w+k*o.concurrency, room, tokens[w])
				if err != nil {
					// An attempt under way when the window closed is waited for, and its
					// failure counts: a server whose handshakes outlast the window must not
					// read as 0 errors. Only the run's own cancellation is no error.
					if ctx.Err() == nil {
						errs.add("worker %d: %v", w, err)
					}
					// Do not spin on a refusing server.
					select {
					case <-stop:
					case <-time.After(10 * time.Millisecond):
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
				if err := c.closeGracefully(o.dialTimeout); err != nil && phase.Load() == phaseMeasure {
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
	if o.apiKey != nil {
		fmt.Fprintf(stdout, "tokens: one per worker (identity bench-%s-W, rooms conn-%s-W-*), minted before the run; the server verifies one with each join (%d bytes)\n", runID, runID, len(tokens[0]))
	}
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
	r.int("tokens", map[bool]int64{false: 0, true: 1}[o.apiKey != nil])
	r.float("handshakes_per_s", rate, 1)
	r.float("p50_ms", ms(lat.P50), 3)
	r.float("p99_ms", ms(lat.P99), 3)
	r.int("errors", errs.count())
	cpu.addTo(r, window, done, "cpu_us_per_handshake")
	fmt.Fprintln(stdout, r)
	return nil
}

// connectTokens returns each worker's access token ("" each without --api-key). A worker is
// one identity that joins room after room: its token grants the prefix of its rooms. They are
// minted here, before the run, so the measured window holds the server's verification of each
// join and none of the load tool's signing.
func connectTokens(o *options, runID string) ([]string, error) {
	tokens := make([]string, o.concurrency)
	if o.apiKey == nil {
		return tokens, nil
	}
	now := time.Now()
	ttl := o.warmup + o.duration + 10*time.Minute
	for w := range tokens {
		c := auth.NewClaims(fmt.Sprintf("bench-%s-%d", runID, w), fmt.Sprintf("conn-%s-%d-*", runID, w), now, ttl)
		c.TURN = false
		t, err := auth.Mint(*o.apiKey, c)
		if err != nil {
			return nil, err
		}
		tokens[w] = t
	}
	return tokens, nil
}

// openConnect dials connection number slot on c and completes the protocol
// handshake: native joins room (with token when not empty) and waits for the
// welcome; Socket.IO waits for the Engine.IO open packet, sends CONNECT and
// waits for its reply. The whole exchange is bounded by the dialer's timeout
// and aborted when ctx is done. On error c holds no connection.
func openConnect(ctx context.Context, d *rawDialer, c *rawConn, proto protoKind, slot int, room []byte, token string) error {
	if err := d.dial(ctx, c, slot); err != nil {
		return err
	}
	if ctx.Done() != nil {
		conn := c.conn
		stop := context.AfterFunc(ctx, func() { _ = conn.SetDeadline(time.Unix(1, 0)) })
		defer stop()
	}
	var err error
	if proto == protoSocketIO {
		err = rawSocketIOHandshake(c)
	} else {
		err = rawNativeJoin(c, room, token)
	}
	if err != nil {
		c.close()
		return err
	}
	return nil
}

// rawNativeJoin sends a join for room, with the access token when not empty,
// and waits for the welcome. Frames are classified by scanning, not decoding,
// to keep the load tool's cost low.
func rawNativeJoin(c *rawConn, room []byte, token string) error {
	join := append(c.rbuf[:0], `{"type":"join","id":1,"v":1,"room":`...)
	join = strconv.AppendQuote(join, string(room))
	if token != "" {
		join = append(join, `,"token":`...)
		join = strconv.AppendQuote(join, token)
	}
	join = append(join, '}')
	c.rbuf = join[:0]
	if err := c.writeText(join); err != nil {
		return fmt.Errorf("send join: %w", err)
	}
	for range 16 {
		msg, err := c.readMessage()
		if err != nil {
			return fmt.Errorf("wait for welcome: %w", err)
		}
		t, ok := topLevelString(msg, "type")
		if !ok {
			return fmt.Errorf("frame without a type: %q", truncate(msg))
		}
		switch string(t) {
		case "welcome":
			if peer, ok := topLevelString(msg, "peer"); !ok || len(peer) == 0 {
				return fmt.Errorf("welcome without peer id: %s", truncate(msg))
			}
			return nil
		case "error":
			code, _ := topLevelString(msg, "code")
			text, _ := topLevelString(msg, "message")
			return fmt.Errorf("join %s: %s: %s", room, code, text)
		}
	}
	return errors.New("no welcome within 16 frames")
}

// rawSocketIOHandshake waits for the Engine.IO open packet, sends a Socket.IO
// CONNECT for the main namespace and waits for its reply, answering Engine.IO
// pings on the way.
func rawSocketIOHandshake(c *rawConn) error {
	msg, err := c.readMessage()
	if err != nil {
		return fmt.Errorf("wait for engine.io open: %w", err)
	}
	if len(msg) < 2 || msg[0] != '0' {
		return fmt.Errorf("want engine.io open packet, got %q", truncate(msg))
	}
	if sid, ok := topLevelString(msg[1:], "sid"); !ok || len(sid) == 0 {
		return fmt.Errorf("engine.io open without sid: %q", truncate(msg))
	}
	if err := c.writeText(sioConnect); err != nil {
		return fmt.Errorf("send socket.io CONNECT: %w", err)
	}
	for range 16 {
		msg, err := c.readMessage()
		if err != nil {
			return fmt.Errorf("wait for socket.io CONNECT reply: %w", err)
		}
		if isEIOPing(msg) {
			if err := c.writeText(eioPong); err != nil {
				return fmt.Errorf("send engine.io pong: %w", err)
			}
			continue
		}
		switch {
		case bytes.HasPrefix(msg, []byte("44")):
			return fmt.Errorf("socket.io CONNECT_ERROR: %s", truncate(msg))
		case !bytes.HasPrefix(msg, []byte("40")):
			return fmt.Errorf("want socket.io CONNECT reply, got %q", truncate(msg))
		}
		if sid, ok := topLevelString(msg[2:], "sid"); !ok || len(sid) == 0 {
			return fmt.Errorf("socket.io CONNECT reply without sid: %q", truncate(msg))
		}
		return nil
	}
	return errors.New("no socket.io CONNECT reply within 16 frames")
}

// sioConnect is a Socket.IO CONNECT packet for the main namespace.
var sioConnect = []byte("40")
