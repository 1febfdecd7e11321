package wsserver

import (
	"crypto/tls"
	"errors"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"golang.org/x/sys/unix"

	"github.com/switchboard-rtc/switchboard/internal/hub"
	"github.com/switchboard-rtc/switchboard/internal/membudget"
	"github.com/switchboard-rtc/switchboard/protocol"
)

// conn states, owned by the loop.
const (
	stateOpen    = iota
	stateClosing // close frame sent, write side shut; waiting for EOF
	stateClosed  // the socket is closed (closeConn): nothing more that was read is handled
)

// conn is one upgraded WebSocket connection. Fields above mu belong to the owning loop's
// goroutine; fields below it are guarded by mu and touched by any goroutine that sends.
type conn struct {
	l      *loop
	fd     int
	sess   *hub.Session
	ext    Handler          // set instead of sess for a connection adopted by another protocol (Adopt)
	lim    *hub.RateLimiter // an adopted connection's share of the rate limit, for its control frames
	client netip.Prefix     // its client's key (Config.ConnsPerClient), released when it closes
	tls    *tls.Conn        // set for a connection over TLS: frames go through it (tls.go)

	outAcct, inAcct *membudget.Account // the memory budget's accounts (memory.go)
	inCharged       int64              // what inAcct holds for in and frag (loop only)

	in           []byte // bytes of an incomplete frame carried to the next read
	inSince      int64  // unix ns: when the frame at the start of in began to arrive
	frag         []byte // fragments of a message in progress
	fragSince    int64  // unix ns: when the fragmented message began
	fragOp       byte
	fragging     bool
	fragDrop     bool // the message in progress went over the rate limit: its fragments are dropped
	state        uint8
	lastRead     int64 // unix ns
	lastPing     int64
	closingSince int64
	lost         bool // ended without a goodbye: the presence may be resumed (loop only)
	extDone      bool // ext.Closed has been called

	mu       sync.Mutex
	out      []byte // bytes the socket could not take yet; nil when empty
	outArmed bool   // EPOLLOUT is registered
	dirty    bool   // on the owning loop's list of connections to flush at the end of its batch
	closed   bool   // fd is closed
	shut     bool   // shut down by a sender (slow or broken); the loop finishes the close
	noSend   bool   // a close frame went out; nothing more may follow it
	reason   string // peer-left reason when shut
	broken   bool   // shut because a write failed: lost, not ended by the server

	outCharged   int64 // what outAcct holds for out (and the kernel buffer behind it)
	kernelQueued int64 // what the kernel held unsent when last looked at (memory.go)
	// kernelCharged mirrors kernelQueued > 0 for the loop's tick, which reads it without c.mu.
	kernelCharged atomic.Bool
	sinceCheck    int // bytes written since then

	// Read marks (marks.go): the seq of the last event written, of the mark ping
	// outstanding (0: none) and when it went, the highest seq the client's pongs marked read,
	// and whether the connection is on its loop's list for a mark ping.
	lastSeq    uint64
	markOut    uint64
	markAt     int64
	marked     uint64
	markQueued bool
}

// testHookMessage, when set by a test, sees every text message before the hub does.
var testHookMessage func(p []byte)

// scratch buffers for encoding outgoing frames.
var scratchPool = sync.Pool{New: func() any { b := make([]byte, 0, 4096); return &b }}

// Send implements bus.Sink: it encodes e as a text frame and writes it, or queues what the
// socket cannot take. It returns false if the peer is gone or its queue overflowed.
func (c *conn) Send(e *protocol.Event) bool {
	bp := scratchPool.Get().(*[]byte)
	const reserve = 10   // longest server frame header
	b := (*bp)[:reserve] // room for the header, written once the length is known
	b = protocol.AppendEvent(b, e)
	start := putFrameHeader(b, reserve, opText, len(b)-reserve)
	ok := c.writeSeq(b[start:], e.Seq)
	if cap(b) <= 1<<16 {
		*bp = b[:0]
		scratchPool.Put(bp)
	}
	return ok
}

var (
	_ hub.Closer = (*conn)(nil)
	_ hub.Kicker = (*conn)(nil)
)

// Kick implements hub.Kicker: the loop closes the connection with a close frame carrying code
// and reason, after whatever was sent before.
func (c *conn) Kick(code int, reason string) {
	c.l.post(func(now time.Time) { c.closeWith(code, reason, "kicked", now) })
}

// CloseConn implements hub.Closer: the connection is shut down and its loop closes it.
func (c *conn) CloseConn(reason string) {
	c.mu.Lock()
	c.shutLocked(reason)
	c.mu.Unlock()
}

// sendControl writes a control frame. last marks the close frame: nothing may follow it.
func (c *conn) sendControl(op byte, payload []byte, last bool) bool {
	var buf [2 + 125]byte
	b := appendFrameHeader(buf[:0], op, len(payload))
	b = append(b, payload...)
	return c.write(b, last)
}

func (c *conn) write(frame []byte, last bool) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.writeLocked(frame, last)
}

// writeSeq writes an event's frame; seq, when not 0, is the event's seq: a mark ping will
// ask the client whether it read it.
func (c *conn) writeSeq(frame []byte, seq uint64) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.writeLocked(frame, false) {
		return false
	}
	if seq != 0 {
		c.lastSeq = seq
		if !c.markQueued && c.markOut == 0 {
			c.markQueued = true
			c.l.queueMark(c)
		}
	}
	return true
}

// writeLocked writes frame (see write). c.mu is held.
func (c *conn) writeLocked(frame []byte, last bool) bool {
	if c.closed || c.shut || c.noSend {
		return false
	}
	if last {
		c.noSend = true
	}
	if c.tls != nil {
		// crypto/tls encrypts and hands the records to writeRawLocked (loopConn.Write).
		if _, err := c.tls.Write(frame); err != nil {
			c.brokenLocked() // a no-op if writeRawLocked shut it already
			return false
		}
		return true
	}
	return c.sendLocked(frame, true, c.l.srv.cfg.SendQueueBytes) == nil
}

// sendLocked writes p to the socket, or queues what it cannot take now (or all of it, if
// batch and the owning loop is mid-batch: the loop writes everything queued for this peer in
// one syscall when the batch ends). Past limit queued bytes, or when the memory budget
// refuses, the connection is shut down as slow. It returns errSlow then, the write's error
// if the socket failed, nil otherwise. c.mu is held.
func (c *conn) sendLocked(p []byte, batch bool, limit int) error {
	st := c.l.srv.stats
	if len(c.out) == 0 && !c.dirty {
		if batch && c.l.deferFlush(c) {
			c.dirty = true
		} else {
			n, err := writeFD(c.fd, p)
			if n > 0 {
				st.BytesOut.Add(uint64(n))
			}
			if err == nil && n == len(p) {
				if !c.noteWrittenLocked(n) {
					return c.slowLocked()
				}
				return nil
			}
			if err != nil && !errors.Is(err, unix.EAGAIN) {
				c.brokenLocked()
				return err
			}
			p = p[max(n, 0):]
		}
	}
	if len(c.out)+len(p) > limit {
		return c.slowLocked()
	}
	if c.out == nil {
		c.out = getOutBuf(len(p))
	}
	c.out = append(c.out, p...)
	if !c.chargeOutLocked() {
		return c.slowLocked()
	}
	if !c.dirty && !c.outArmed {
		c.outArmed = true
		c.l.modify(c.fd, true)
	}
	return nil
}

// slowLocked drops the connection as a slow reader. c.mu is held.
func (c *conn) slowLocked() error {
	c.l.srv.stats.SendQueueDrops.Add(1)
	c.shutLocked("slow")
	return errSlow
}

// outPool recycles send queues, so an idle connection holds none.
var outPool = sync.Pool{New: func() any { b := make([]byte, 0, 8192); return &b }}

func getOutBuf(n int) []byte {
	if n > 8192 {
		return make([]byte, 0, n)
	}
	return (*outPool.Get().(*[]byte))[:0]
}

func putOutBuf(b []byte) {
	if cap(b) <= 64<<10 {
		b = b[:0]
		outPool.Put(&b)
	}
}

// brokenLocked shuts the socket down after a write failed (EPIPE, ECONNRESET): the
// connection was lost without a goodbye, so its presence may be resumed. c.mu is held.
func (c *conn) brokenLocked() {
	if !c.shut && !c.closed {
		c.broken = true
	}
	c.shutLocked("closed")
}

// shutLocked shuts the socket down so the owning loop sees EOF and closes it. c.mu is held.
func (c *conn) shutLocked(reason string) {
	if c.shut || c.closed {
		return
	}
	c.shut = true
	c.reason = reason
	c.out = nil
	c.chargeOutLocked()
	_ = unix.Shutdown(c.fd, unix.SHUT_RDWR)
}

// flush writes queued bytes: at the end of the owning loop's batch, or when the socket
// becomes writable again.
func (c *conn) flush() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.dirty = false
	if c.closed || len(c.out) == 0 {
		return
	}
	n, err := writeFD(c.fd, c.out)
	if n > 0 {
		c.l.srv.stats.BytesOut.Add(uint64(n))
		// Keep the buffer's start so it goes back to the pool whole; a partial write (a full
		// socket) moves the rest to the front, which is rare.
		c.out = c.out[:copy(c.out, c.out[n:])]
	}
	if err != nil && !errors.Is(err, unix.EAGAIN) {
		c.brokenLocked()
		return
	}
	if len(c.out) == 0 {
		putOutBuf(c.out)
		c.out = nil
		// It was backed up: what the kernel still holds is charged in place of the queue.
		c.checkKernelLocked()
		if c.outArmed {
			c.outArmed = false
			c.l.modify(c.fd, false)
		}
		if c.noSend {
			_ = unix.Shutdown(c.fd, unix.SHUT_WR)
		}
		return
	}
	if !c.chargeOutLocked() { // backed up: the kernel's buffer is full too
		_ = c.slowLocked()
		return
	}
	if !c.outArmed {
		c.outArmed = true
		c.l.modify(c.fd, true)
	}
}

func writeFD(fd int, b []byte) (int, error) {
	for {
		n, err := unix.Write(fd, b)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		return n, err
	}
}

// process parses and handles the complete frames at the start of data and returns how many
// bytes it consumed. It runs on the owning loop.
func (c *conn) process(data []byte, now time.Time) int {
	maxLen := uint64(c.l.srv.cfg.MaxFrameBytes)
	off := 0
	for c.state == stateOpen {
		h, err := parseHeader(data[off:])
		if err != nil {
			break // incomplete
		}
		switch {
		case h.rsv != 0:
			c.closeWith(hub.CloseProtocolError, "reserved bits set", "kicked", now)
			return len(data)
		case !h.masked:
			c.closeWith(hub.CloseProtocolError, "client frames must be masked", "kicked", now)
			return len(data)
		case h.opcode >= opClose && (!h.fin || h.length > 125):
			c.closeWith(hub.CloseProtocolError, "bad control frame", "kicked", now)
			return len(data)
		case h.length > maxLen:
			c.closeWith(hub.CloseMessageTooBig, "frame too big", "kicked", now)
			return len(data)
		}
		end := off + h.size + int(h.length)
		if end > len(data) {
			break
		}
		payload := data[off+h.size : end]
		unmask(payload, h.mask)
		off = end
		c.frame(h, payload, now)
	}
	if c.state != stateOpen {
		return len(data)
	}
	return off
}

// frame handles one complete frame.
func (c *conn) frame(h header, p []byte, now time.Time) {
	switch h.opcode {
	case opText, opBinary:
		if c.fragging {
			c.closeWith(hub.CloseProtocolError, "new message inside a fragmented one", "kicked", now)
			return
		}
		if h.fin {
			c.message(h.opcode, p, now)
			return
		}
		c.fragging, c.fragOp, c.fragSince = true, h.opcode, now.UnixNano()
		c.fragDrop = !c.allowFrame(now)
		if !c.fragDrop {
			c.frag = append(c.frag[:0], p...)
		}
	case opContinuation:
		if !c.fragging {
			c.closeWith(hub.CloseProtocolError, "continuation without a message", "kicked", now)
			return
		}
		if !h.fin && !c.allowFrame(now) {
			c.fragDrop = true // a fragment over the rate limit drops its whole message
		}
		if c.state != stateOpen {
			return
		}
		if c.fragDrop {
			if h.fin {
				c.frag, c.fragging, c.fragDrop = nil, false, false
			}
			return
		}
		if len(c.frag)+len(p) > c.l.srv.cfg.MaxFrameBytes {
			c.closeWith(hub.CloseMessageTooBig, "message too big", "kicked", now)
			return
		}
		c.frag = append(c.frag, p...)
		if h.fin {
			msg := c.frag
			c.frag, c.fragging = nil, false
			c.message(c.fragOp, msg, now)
		}
	case opClose:
		code, ok := parseClose(p)
		if !ok {
			c.closeWith(hub.CloseProtocolError, "bad close frame", "closed", now)
			return
		}
		var reply []byte
		if code != 1005 {
			reply = closePayload(int(code), "")
		}
		c.sendControl(opClose, reply, true)
		c.l.closeConn(c, "closed")
	case opPing:
		if c.allowFrame(now) {
			c.sendControl(opPong, p, false)
		}
	case opPong:
		if c.allowFrame(now) && c.sess != nil && len(p) > 0 {
			c.pong(p, now)
		}
	default:
		c.closeWith(hub.CloseProtocolError, "unknown opcode", "kicked", now)
	}
}

// allowFrame charges a frame that is not a whole message (a ping, a pong, a fragment before
// the last: the message itself is charged when it is handled) to the connection's rate limit,
// so a flood of cheap frames costs what a flood of messages does. Over the limit the frame is
// dropped (a native client also gets the rate-limited error frame), and a connection over it
// too often is closed with 1008. It reports whether the frame may be handled.
func (c *conn) allowFrame(now time.Time) bool {
	var ok bool
	var err error
	if c.ext == nil {
		ok, err = c.sess.Allow(now)
	} else {
		if c.lim == nil {
			c.lim = c.l.srv.hub.NewRateLimiter(now)
		}
		ok, err = c.lim.Allow(now)
	}
	if err != nil {
		var ce *hub.CloseError
		if errors.As(err, &ce) {
			c.closeWith(ce.Code, ce.Reason, ce.LeaveReason, now)
		} else {
			c.closeWith(hub.CloseInternalError, "internal error", "closed", now)
		}
		return false
	}
	if !ok {
		c.l.srv.stats.FramesRateLimited.Add(1)
	}
	return ok
}

// message handles one complete data message.
func (c *conn) message(op byte, p []byte, now time.Time) {
	if op == opBinary && c.ext == nil {
		c.sess.RejectBinary()
		return
	}
	if op == opText && !utf8.Valid(p) {
		c.closeWith(hub.CloseInvalidPayload, "text is not valid UTF-8", "kicked", now)
		return
	}
	c.l.srv.stats.BytesIn.Add(uint64(len(p)))
	if testHookMessage != nil {
		testHookMessage(p)
	}
	var err error
	switch {
	case c.ext == nil:
		err = c.sess.HandleFrame(p, now)
	case op == opBinary:
		err = c.ext.Binary(p, now)
	default:
		err = c.ext.Text(p, now)
	}
	if err != nil {
		var ce *hub.CloseError
		if errors.As(err, &ce) {
			c.closeWith(ce.Code, ce.Reason, ce.LeaveReason, now)
			return
		}
		c.closeWith(hub.CloseInternalError, "internal error", "closed", now)
	}
}

// closeWith starts a server-initiated close: a close frame, then the write side shut so the
// client sees the end; the loop closes the socket at EOF or after the close timeout. The peer
// leaves its room at once.
func (c *conn) closeWith(code int, reason, leaveReason string, now time.Time) {
	if c.state != stateOpen {
		return
	}
	c.state = stateClosing
	c.closingSince = now.UnixNano()
	c.in, c.frag = nil, nil
	c.sendControl(opClose, closePayload(code, reason), true)
	c.mu.Lock()
	if !c.closed && len(c.out) == 0 {
		_ = unix.Shutdown(c.fd, unix.SHUT_WR)
	}
	c.mu.Unlock()
	c.leave(leaveReason)
}

// leave takes the connection's peer out of the hub, or tells an adopted connection's handler
// that the connection is gone (once). Loop goroutine only.
func (c *conn) leave(reason string) {
	if c.ext == nil {
		c.sess.End(reason, false)
		return
	}
	if !c.extDone {
		c.extDone = true
		c.ext.Closed(reason)
	}
}
