package sioserver

import (
	"net/http"
	"time"

	"github.com/switchboard-rtc/switchboard/internal/membudget"
)

// pollWriteTimeout bounds writing a long-polling answer: a client that does not read it loses
// the connection rather than holding the answer's bytes and a goroutine.
const pollWriteTimeout = 10 * time.Second

// refuseMemory answers a handshake 503 because the memory budget is nearly spent.
func (s *Server) refuseMemory(w http.ResponseWriter) {
	s.stats.HandshakesRefused.Add(1)
	s.stats.RefusedMemory.Add(1)
	w.Header().Set("Retry-After", "5")
	httpError(w, http.StatusServiceUnavailable, errBadRequest, "server out of memory for new sessions")
}

// chargeLocked brings the session's memory account to what its queues hold. It reports false
// when the budget refuses the growth: the caller drops the session as slow. ss.mu is held.
func (ss *session) chargeLocked() bool {
	if ss.released {
		return true
	}
	want := int64(cap(ss.queue) + cap(ss.held) + ss.writing)
	if !ss.acct.Add(want - ss.charged) {
		return false
	}
	ss.charged = want
	return true
}

// doomSlowLocked drops what the session queued and dooms it as slow. Closing needs ss.in,
// which a sender holding its own in must not wait for: the timers close the session within a
// tick; until then nothing more is queued. ss.mu is held.
func (ss *session) doomSlowLocked() {
	ss.doom = "slow"
	ss.queue, ss.held = nil, nil
	ss.chargeLocked()
	ss.srv.stats.SendQueueDrops.Add(1)
}

// dropSlow is the memory budget's drop for this session: as if its queue had overflowed.
func (ss *session) dropSlow() {
	ss.mu.Lock()
	switch {
	case ss.closed && ss.ws == nil && len(ss.queue) > 1:
		// Kept to deliver its last packets (closeLocked): only the close packet is left.
		ss.queue = []byte{eioClose}
		ss.chargeLocked()
		ss.srv.stats.SendQueueDrops.Add(1)
	case !ss.closed && ss.doom == "":
		ss.doomSlowLocked()
	}
	ss.mu.Unlock()
	select {
	case ss.wake <- struct{}{}:
	default:
	}
}

// written gives back what a polling answer held once it is written (or its write failed).
func (ss *session) written() {
	ss.mu.Lock()
	ss.writing = 0
	ss.answered = max(ss.answered, ss.answering)
	ss.chargeLocked()
	ss.mu.Unlock()
}

// releaseMemory gives the session's account back, once, as the session leaves the table.
func (ss *session) releaseMemory() {
	ss.mu.Lock()
	ss.released = true
	ss.acct.Release()
	ss.charged = 0
	ss.mu.Unlock()
}

// startPost admits a long-polling POST for ss: one at a time per session (a second while
// one is read is a broken or hostile client: 400 and the session closes, as Engine.IO's own
// server does), and its body charged to the memory budget before it is read — the
// Content-Length, or maxPayload when the length is not given. Over the budget the POST gets
// 503 and the session stays, for the client to retry. The budget's reclaimer may cut the
// read (its deadline set to now). The caller defers release.
func (s *Server) startPost(w http.ResponseWriter, r *http.Request, ss *session) (release func(), ok bool) {
	ss.mu.Lock()
	if ss.posting {
		ss.mu.Unlock()
		ss.close("kicked")
		httpError(w, http.StatusBadRequest, errBadRequest, "overlapping POST: send one payload at a time")
		return nil, false
	}
	ss.posting = true
	ss.mu.Unlock()
	done := func() {
		ss.mu.Lock()
		ss.posting = false
		ss.mu.Unlock()
	}
	size := int64(s.cfg.MaxPayload)
	if r.ContentLength >= 0 {
		size = r.ContentLength
	}
	rc := http.NewResponseController(w)
	acct := s.cfg.Budget.NewAccount(membudget.PostBody, func() { _ = rc.SetReadDeadline(time.Now()) })
	if !acct.Add(size) {
		done() // counted by the budget (switchboard_memory_refused_total)
		w.Header().Set("Retry-After", "5")
		httpError(w, http.StatusServiceUnavailable, errBadRequest, "server out of memory: send the payload again later")
		return nil, false
	}
	return func() { acct.Release(); done() }, true
}
