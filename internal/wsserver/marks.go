package wsserver

import (
	"strconv"
	"time"

	"github.com/switchboard-rtc/switchboard/internal/hub"
)

// Read marks (docs/protocol.md "Resuming"): the hub keeps a presence's events until the
// client is known to have read them. A mark ping's payload is the decimal seq of the last
// event written before it; the pong echoes it, and since the ping followed the events on the
// same stream, every event up to that seq was read. A connection sends one when it has
// events not yet marked and no mark ping is outstanding, at most every markInterval (the
// loop's mark beat), and at once when the hub asks (MarkNow: half the outbox is unread).

// markInterval is the least time between two mark pings of a connection.
const markInterval = 250 * time.Millisecond

var _ hub.Marker = (*conn)(nil)

// queueMark puts c on the loop's list for a mark ping at the next beat. The caller holds
// c.mu (fmu is taken after it, as for deferFlush).
func (l *loop) queueMark(c *conn) {
	l.fmu.Lock()
	l.markList = append(l.markList, c)
	l.fmu.Unlock()
}

// MarkNow implements hub.Marker: a mark ping goes out now unless one is outstanding.
func (c *conn) MarkNow() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.markOut == 0 && c.lastSeq > c.marked {
		c.markLocked(time.Now().UnixNano())
	}
}

// markLocked writes a mark ping for the last event written. c.mu is held.
func (c *conn) markLocked(t int64) {
	var pb [20]byte
	var fb [2 + 20]byte
	payload := strconv.AppendUint(pb[:0], c.lastSeq, 10)
	frame := append(appendFrameHeader(fb[:0], opPing, len(payload)), payload...)
	if c.writeLocked(frame, false) {
		c.markOut, c.markAt = c.lastSeq, t
	}
}

// marks sends the mark pings due at this beat. Loop goroutine only.
func (l *loop) marks(now time.Time) {
	l.fmu.Lock()
	list := l.markList
	l.markList = nil
	l.fmu.Unlock()
	if len(list) == 0 {
		return
	}
	t := now.UnixNano()
	lost := int64(l.srv.cfg.PingInterval) // a mark ping unanswered that long is given up
	for _, c := range list {
		c.mu.Lock()
		c.markQueued = false
		if c.closed || c.shut || c.noSend || c.lastSeq <= c.marked {
			c.mu.Unlock()
			continue
		}
		if c.markOut != 0 && t-c.markAt >= lost {
			c.markOut = 0
		}
		switch {
		case c.markOut != 0:
			// The pong queues it again.
		case t-c.markAt >= int64(markInterval):
			c.markLocked(t)
		default:
			c.markQueued = true
			l.markList = append(l.markList, c)
		}
		c.mu.Unlock()
	}
	clear(list)
}

// pong handles a pong's payload: the seq of an outstanding mark ping marks its events read.
// Loop goroutine only.
func (c *conn) pong(p []byte, now time.Time) {
	seq, err := strconv.ParseUint(string(p), 10, 64)
	if err != nil {
		return // not a mark ping's (a client's own ping payload, or garbage)
	}
	c.mu.Lock()
	if c.markOut == 0 || seq != c.markOut {
		c.mu.Unlock()
		return
	}
	c.markOut = 0
	c.marked = seq
	if c.lastSeq > seq && !c.markQueued && !c.closed {
		c.markQueued = true
		c.l.queueMark(c)
	}
	c.mu.Unlock()
	c.sess.MarkRead(seq) // outside c.mu: the hub's outbox lock comes before it
}
