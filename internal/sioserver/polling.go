package sioserver

import (
	"errors"
	"io"
	"net/http"
	"strconv"
	"time"
	"unicode/utf8"
)

// Long-polling requests of an Engine.IO session: the GET that waits for packets and the
// POST that carries the client's.

// poll answers a long-polling GET with the packets queued for the session, waiting for some
// when there are none.
func (s *Server) poll(w http.ResponseWriter, r *http.Request, sid string) {
	ss := s.session(sid)
	if ss == nil {
		httpError(w, http.StatusBadRequest, errUnknownSID, "session ID unknown")
		return
	}
	ss.mu.Lock()
	if ss.ws != nil || ss.polling {
		ss.mu.Unlock()
		if !ss.isUpgraded() {
			ss.close("kicked") // two GETs at once: the client is broken
		}
		httpError(w, http.StatusBadRequest, errBadRequest, "overlapping or late poll")
		return
	}
	ss.polling = true
	answered := ss.answered
	ss.answered = 0
	ss.mu.Unlock()
	// A GET comes once the client has handled the answer to the one before.
	ss.markRead(answered)
	ss.mu.Lock()
	// While a WebSocket probes an upgrade, a GET is answered at once (with a noop when nothing
	// is queued) so the client can pause polling and finish the upgrade.
	for len(ss.queue) == 0 && !ss.closed && ss.ws == nil && !ss.probing {
		ss.mu.Unlock()
		select {
		case <-ss.wake:
		case <-r.Context().Done():
		}
		ss.mu.Lock()
		if r.Context().Err() != nil {
			ss.polling = false
			ss.mu.Unlock()
			// The client gave up its GET: Engine.IO's server ends the session ("poll
			// connection closed prematurely"), as it would a lost WebSocket.
			ss.lose("closed")
			return
		}
	}
	out := ss.queue
	ss.queue = nil
	// The answer holds out's bytes until the client has read it: they stay charged, beside
	// what is queued meanwhile, until the write ends, which a client that does not read
	// cannot make last past pollWriteTimeout.
	ss.writing = cap(out)
	ss.answering = ss.sent
	ss.polling = false
	closed := ss.closed
	ss.mu.Unlock()
	defer func() {
		ss.written()
		if closed {
			s.removeSession(ss) // kept until now to deliver its last packets (closeLocked)
		}
	}()
	if len(out) == 0 {
		out = []byte{eioNoop}
	}
	w.Header().Set("Content-Type", "text/plain; charset=UTF-8")
	w.Header().Set("Content-Length", strconv.Itoa(len(out)))
	_ = http.NewResponseController(w).SetWriteDeadline(time.Now().Add(pollWriteTimeout))
	_, _ = w.Write(out)
}

// post handles a long-polling POST: a payload of packets.
func (s *Server) post(w http.ResponseWriter, r *http.Request, sid string) {
	if r.ContentLength > int64(s.cfg.MaxPayload) {
		// Refused before reading: the connection is closed rather than drained.
		w.Header().Set("Connection", "close")
		httpError(w, http.StatusRequestEntityTooLarge, errBadRequest, "payload over maxPayload")
		return
	}
	ss := s.session(sid)
	if ss == nil {
		httpError(w, http.StatusBadRequest, errUnknownSID, "session ID unknown")
		return
	}
	if ss.isUpgraded() {
		httpError(w, http.StatusBadRequest, errBadRequest, "session upgraded to websocket")
		return
	}
	release, ok := s.startPost(w, r, ss)
	if !ok {
		return
	}
	defer release()
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, int64(s.cfg.MaxPayload)))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			w.Header().Set("Connection", "close")
			httpError(w, http.StatusRequestEntityTooLarge, errBadRequest, "payload over maxPayload")
			return
		}
		httpError(w, http.StatusBadRequest, errBadRequest, "cannot read body")
		return
	}
	now := time.Now()
	s.stats.BytesIn.Add(uint64(len(body)))
	if !utf8.Valid(body) {
		ss.close("kicked")
		httpError(w, http.StatusBadRequest, errBadRequest, "payload is not UTF-8")
		return
	}
	ss.in.Lock()
	err = decodePayload(body, func(p eioPacket) error { return ss.packet(p, now) })
	ss.in.Unlock()
	if err != nil {
		ss.fail(err)
		var ec *errClose
		if !errors.As(err, &ec) {
			httpError(w, http.StatusBadRequest, errBadRequest, "bad payload")
			return
		}
	}
	w.Header().Set("Content-Type", "text/html")
	_, _ = w.Write([]byte("ok"))
}
