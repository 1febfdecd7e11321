package server

import (
	"errors"
	"io"
	"net/http"
	"os"
	"sync"
	"time"

	"github.com/switchboard-rtc/switchboard/internal/stats"
)

// bodyDeadline gives every request that has a body d to deliver it (--read-timeout): a body
// dripped slower is cut, and its connection closed, instead of holding a descriptor and a
// goroutine for as long as the client likes. Requests without a body — WebSocket upgrades and
// Engine.IO long-polling GETs, which legitimately wait — get no deadline (a read deadline on
// them would cancel the request's context when it passed). Once the body has been read to
// its end the deadline is lifted, so a handler may take its time answering.
func bodyDeadline(d time.Duration, st *stats.Stats, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Body == nil || r.Body == http.NoBody {
			next.ServeHTTP(w, r)
			return
		}
		rc := http.NewResponseController(w)
		if err := rc.SetReadDeadline(time.Now().Add(d)); err != nil {
			next.ServeHTTP(w, r) // not a connection that takes deadlines (HTTP/2 tests, say)
			return
		}
		db := &deadlineBody{ReadCloser: r.Body, rc: rc, st: st}
		r.Body = db
		next.ServeHTTP(w, r)
		// A handler that did not read the body: net/http discards what is left after it
		// returns, under the same deadline, and closes the connection if it passes.
		db.mu.Lock()
		db.done = true
		db.mu.Unlock()
	})
}

// deadlineBody lifts its request's read deadline at the end of the body and counts the body
// that did not arrive in time.
type deadlineBody struct {
	io.ReadCloser
	rc *http.ResponseController
	st *stats.Stats

	mu   sync.Mutex
	done bool // the handler returned, or the body ended or timed out
}

func (b *deadlineBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if err == nil {
		return n, nil
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.done {
		return n, err
	}
	switch {
	case errors.Is(err, io.EOF):
		b.done = true
		_ = b.rc.SetReadDeadline(time.Time{})
	case errors.Is(err, os.ErrDeadlineExceeded):
		b.done = true
		b.st.Timeouts[stats.TimeoutHTTPBody].Add(1)
	}
	return n, err
}
