package webhook

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"time"
)

// target is one URL: its queue and its delivery goroutine (run).
type target struct {
	s      *Sender
	url    string
	logURL string        // url redacted for logs
	wake   chan struct{} // an event was queued, or the target closed
	kick   chan struct{} // the in-flight event was pushed out of the queue

	mu sync.Mutex
	// q holds the events not yet delivered, oldest first. q[0] is the one being sent, unless
	// it was pushed out (abandoned).
	q         []*item
	inflight  *item
	abandoned bool // the in-flight event was pushed out of a full queue
	closed    bool // Shutdown or Close: no more events are taken

	// Owned by run: what was last logged, so a failing receiver is not logged per attempt.
	failures   int // failed attempts since the last success
	lastReject int // status of the last refusal logged
}

func (t *target) signal() {
	select {
	case t.wake <- struct{}{}:
	default:
	}
}

// push queues it, dropping the oldest event when the queue is full. It never blocks.
func (t *target) push(it *item) {
	st := t.s.stats
	t.mu.Lock()
	if t.closed {
		t.mu.Unlock()
		st.WebhooksDropped.Add(1)
		return
	}
	if len(t.q) >= t.s.cfg.Queue {
		old := t.q[0]
		t.q[0] = nil
		t.q = t.q[1:]
		st.WebhooksQueued.Add(-1)
		if old == t.inflight {
			// Counted when its attempt ends: it may still get through.
			t.abandoned = true
			select {
			case t.kick <- struct{}{}:
			default:
			}
		} else {
			st.WebhooksDropped.Add(1)
		}
	}
	t.q = append(t.q, it)
	st.WebhooksQueued.Add(1)
	t.mu.Unlock()
	t.signal()
}

func (t *target) close() {
	t.mu.Lock()
	t.closed = true
	t.mu.Unlock()
	t.signal()
}

// next waits for an event to send and marks it in flight. It returns nil when the target is
// closed and its queue is empty, or when the Sender stops.
func (t *target) next() *item {
	for {
		if t.s.ctx.Err() != nil {
			return nil
		}
		t.mu.Lock()
		if len(t.q) > 0 {
			it := t.q[0]
			t.inflight, t.abandoned = it, false
			t.mu.Unlock()
			return it
		}
		closed := t.closed
		t.mu.Unlock()
		if closed {
			return nil
		}
		select {
		case <-t.wake:
		case <-t.s.ctx.Done():
			return nil
		}
	}
}

// finish ends its delivery: it leaves the queue, unless it was pushed out already.
func (t *target) finish(it *item) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if !t.abandoned && len(t.q) > 0 && t.q[0] == it {
		t.q[0] = nil
		t.q = t.q[1:]
		t.s.stats.WebhooksQueued.Add(-1)
	}
	t.inflight, t.abandoned = nil, false
}

func (t *target) isAbandoned() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.abandoned
}

// dropAll drops every queued event, when the Sender stops.
func (t *target) dropAll() {
	t.mu.Lock()
	n := len(t.q)
	t.q = nil
	t.closed = true
	t.mu.Unlock()
	t.s.stats.WebhooksQueued.Add(-int64(n))
	t.s.stats.WebhooksDropped.Add(uint64(n))
	t.s.lost.Add(int64(n))
}

func (t *target) run() {
	defer t.s.wg.Done()
	defer t.dropAll()
	for {
		it := t.next()
		if it == nil {
			return
		}
		t.deliver(it)
	}
}

// outcome is how one attempt ended.
type outcome int

const (
	delivered outcome = iota
	retry
	refused
)

// deliver sends it until it is delivered, refused, pushed out of the queue or the Sender
// stops; exactly one of the delivered, rejected and dropped counters counts it.
func (t *target) deliver(it *item) {
	st := t.s.stats
	for attempt := 1; ; attempt++ {
		res, status, wait, err := t.attempt(it)
		switch res {
		case delivered:
			t.finish(it)
			st.WebhooksDelivered.Add(1)
			if t.failures > 0 {
				t.s.log.Info("webhook receiver is back", "url", t.logURL, "failed_attempts", t.failures)
			}
			t.failures, t.lastReject = 0, 0
			return
		case refused:
			t.finish(it)
			st.WebhooksRejected.Add(1)
			lvl := t.s.log.Warn
			if status == t.lastReject {
				lvl = t.s.log.Debug
			}
			t.lastReject = status
			lvl("webhook refused; not retried", "url", t.logURL, "status", status, "error", err,
				"event", it.ev.Kind.String(), "room", it.ev.Room, "id", it.ID())
			return
		}
		t.failures++
		if t.s.ctx.Err() != nil || t.isAbandoned() {
			t.drop(it)
			return
		}
		if wait == 0 {
			wait = t.backoff(attempt)
		}
		st.WebhookRetries.Add(1)
		lvl := t.s.log.Debug
		if t.failures == 1 {
			lvl = t.s.log.Warn
		}
		lvl("webhook failed; retrying", "url", t.logURL, "event", it.ev.Kind.String(), "room", it.ev.Room,
			"id", it.ID(), "attempt", attempt, "error", err, "retry_in", wait.Round(time.Millisecond))
		if !t.pause(wait) {
			t.drop(it)
			return
		}
	}
}

// drop ends its delivery without success.
func (t *target) drop(it *item) {
	t.finish(it)
	t.s.stats.WebhooksDropped.Add(1)
	if t.s.ctx.Err() != nil {
		t.s.lost.Add(1)
	}
}

// pause waits d before a retry. It returns false, early, when the event being retried is
// pushed out of the queue or the Sender stops.
func (t *target) pause(d time.Duration) bool {
	timer := time.NewTimer(d)
	defer timer.Stop()
	for {
		select {
		case <-timer.C:
			return true
		case <-t.s.ctx.Done():
			return false
		case <-t.kick:
			// Perhaps left over from an earlier event: check.
			if t.isAbandoned() {
				return false
			}
		}
	}
}

// backoff is the wait before retry number attempt: MinBackoff doubled per failed attempt up
// to MaxBackoff, drawn at random from its upper half.
func (t *target) backoff(attempt int) time.Duration {
	c := t.s.cfg
	d := c.MinBackoff
	for i := 1; i < attempt && d < c.MaxBackoff; i++ {
		d *= 2
	}
	d = min(d, c.MaxBackoff)
	if d <= 1 {
		return d
	}
	return d/2 + rand.N(d/2+1)
}

// attempt POSTs it once. For a retry, wait is the receiver's Retry-After (0 when none).
func (t *target) attempt(it *item) (res outcome, status int, wait time.Duration, err error) {
	body, err := it.body(time.Now())
	if err != nil {
		// Cannot happen with the bus's events (meta is a JSON object); refuse rather than loop.
		return refused, 0, 0, fmt.Errorf("webhook: encode: %w", err)
	}
	ctx, cancel := context.WithTimeout(t.s.ctx, t.s.cfg.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, t.url, bytes.NewReader(body))
	if err != nil {
		return refused, 0, 0, errors.New("webhook: bad URL")
	}
	h := req.Header
	h.Set("Content-Type", "application/json")
	h.Set("User-Agent", "Switchboard-Webhook/1")
	h.Set(HeaderEvent, it.ev.Kind.String())
	h.Set(HeaderEventID, it.ID())
	h.Set(HeaderKeyID, t.s.cfg.Key.ID)
	h.Set(HeaderSignature, Sign(t.s.cfg.Key.Secret, body))
	resp, err := t.s.client.Do(req)
	if err != nil {
		return retry, 0, 0, attemptError(err, ctx, t.s.cfg.Timeout)
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	_ = resp.Body.Close()
	switch c := resp.StatusCode; {
	case c >= 200 && c < 300:
		return delivered, c, 0, nil
	case c == http.StatusRequestTimeout, c == http.StatusTooManyRequests, c >= 500:
		return retry, c, retryAfter(resp.Header.Get("Retry-After"), t.s.cfg.MaxBackoff), fmt.Errorf("HTTP %d", c)
	default:
		return refused, c, 0, fmt.Errorf("HTTP %d", c)
	}
}

// attemptError says why a request failed without quoting its URL (it may hold credentials).
func attemptError(err error, ctx context.Context, timeout time.Duration) error {
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return fmt.Errorf("no answer within %v", timeout)
	}
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

// retryAfter parses a Retry-After of seconds, capped at limit; 0 when absent or a date.
func retryAfter(v string, limit time.Duration) time.Duration {
	n, err := strconv.Atoi(v)
	if err != nil || n <= 0 {
		return 0
	}
	return min(time.Duration(n)*time.Second, limit)
}
