package wsserver

import (
	"encoding/binary"
	"errors"
	"fmt"
	"runtime/debug"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/switchboard-rtc/switchboard/internal/hub"
	"github.com/switchboard-rtc/switchboard/internal/stats"
)

// loop is one epoll event loop. Its goroutine owns the connections registered with it: it alone
// reads them and closes their sockets.
type loop struct {
	srv    *Server
	epfd   int
	wakefd int
	buf    []byte // read buffer: a whole frame plus a read's worth

	mu    sync.Mutex // guards conns, tasks, stop
	conns map[int]*conn
	tasks []func(now time.Time)
	stop  bool

	fmu      sync.Mutex // guards batching and dirty; taken after a conn's mu, never before
	batching bool       // the loop is handling a batch of events and will flush at its end
	dirty    []*conn    // connections with frames queued during this batch
	markList []*conn    // connections due a mark ping at the next beat (marks.go)

	done chan struct{}
}

func newLoop(srv *Server) (*loop, error) {
	epfd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("wsserver: epoll_create: %w", err)
	}
	wakefd, err := unix.Eventfd(0, unix.EFD_NONBLOCK|unix.EFD_CLOEXEC)
	if err != nil {
		unix.Close(epfd)
		return nil, fmt.Errorf("wsserver: eventfd: %w", err)
	}
	ev := unix.EpollEvent{Events: unix.EPOLLIN, Fd: int32(wakefd)}
	if err := unix.EpollCtl(epfd, unix.EPOLL_CTL_ADD, wakefd, &ev); err != nil {
		unix.Close(epfd)
		unix.Close(wakefd)
		return nil, fmt.Errorf("wsserver: epoll_ctl: %w", err)
	}
	return &loop{
		srv:    srv,
		epfd:   epfd,
		wakefd: wakefd,
		buf:    make([]byte, srv.cfg.MaxFrameBytes+maxHeaderLen+32<<10),
		conns:  make(map[int]*conn),
		done:   make(chan struct{}),
	}, nil
}

const (
	evRead  = unix.EPOLLIN | unix.EPOLLRDHUP
	evWrite = unix.EPOLLOUT
)

// add registers c with the loop and starts watching its socket.
func (l *loop) add(c *conn) error {
	l.mu.Lock()
	if l.stop {
		l.mu.Unlock()
		return ErrClosed
	}
	l.conns[c.fd] = c
	l.mu.Unlock()
	ev := unix.EpollEvent{Events: evRead, Fd: int32(c.fd)}
	if err := unix.EpollCtl(l.epfd, unix.EPOLL_CTL_ADD, c.fd, &ev); err != nil {
		l.mu.Lock()
		delete(l.conns, c.fd)
		l.mu.Unlock()
		return fmt.Errorf("wsserver: epoll_ctl add: %w", err)
	}
	return nil
}

// modify turns write interest on or off. Any goroutine may call it with c.mu held.
func (l *loop) modify(fd int, write bool) {
	ev := unix.EpollEvent{Events: evRead, Fd: int32(fd)}
	if write {
		ev.Events |= evWrite
	}
	_ = unix.EpollCtl(l.epfd, unix.EPOLL_CTL_MOD, fd, &ev)
}

// deferFlush puts c on the list of connections to flush when the current batch ends, if the
// loop is in a batch. The caller holds c.mu.
func (l *loop) deferFlush(c *conn) bool {
	l.fmu.Lock()
	defer l.fmu.Unlock()
	if !l.batching {
		return false
	}
	l.dirty = append(l.dirty, c)
	return true
}

// flushDirty ends the batch and writes what it queued, one syscall per connection.
func (l *loop) flushDirty() {
	l.fmu.Lock()
	dirty := l.dirty
	l.dirty = nil
	l.batching = false
	l.fmu.Unlock()
	for _, c := range dirty {
		c.flush()
	}
	clear(dirty)
	if cap(dirty) <= 1024 {
		l.fmu.Lock()
		if l.dirty == nil {
			l.dirty = dirty[:0]
		}
		l.fmu.Unlock()
	}
}

// post runs f on the loop's goroutine.
func (l *loop) post(f func(now time.Time)) {
	l.mu.Lock()
	l.tasks = append(l.tasks, f)
	l.mu.Unlock()
	l.wake()
}

func (l *loop) wake() {
	var one [8]byte
	binary.NativeEndian.PutUint64(one[:], 1)
	_, _ = unix.Write(l.wakefd, one[:])
}

// shutdown asks the loop to close every connection and exit.
func (l *loop) shutdown() {
	l.mu.Lock()
	l.stop = true
	l.mu.Unlock()
	l.wake()
}

func (l *loop) run() {
	defer close(l.done)
	defer unix.Close(l.wakefd)
	defer unix.Close(l.epfd)
	events := make([]unix.EpollEvent, 128)
	tick := l.srv.tickInterval()
	nextTick := time.Now().Add(tick)
	nextMark := time.Now().Add(markInterval)
	for {
		next := nextTick
		if nextMark.Before(next) {
			next = nextMark
		}
		wait := int(time.Until(next) / time.Millisecond)
		if wait < 0 {
			wait = 0
		}
		n, err := unix.EpollWait(l.epfd, events, wait)
		if err != nil && !errors.Is(err, unix.EINTR) {
			l.srv.log.Error("epoll_wait failed; closing this loop's connections", "err", err)
			l.closeAll("shutdown")
			return
		}
		now := time.Now()
		if n > 0 {
			l.fmu.Lock()
			l.batching = true
			l.fmu.Unlock()
		}
		for i := 0; i < n; i++ {
			if i > 0 && time.Since(now) > l.srv.cfg.BatchSlice {
				// A batch of heavy events (big broadcasts fanned out to many peers) would keep
				// the frames relayed in it unwritten until it ends, and every other connection
				// waiting: stop here. The events left are level-triggered and come back on the
				// next wait, behind those that were not served.
				l.srv.stats.LoopSlices.Add(1)
				break
			}
			ev := events[i]
			fd := int(ev.Fd)
			if fd == l.wakefd {
				var b [8]byte
				_, _ = unix.Read(l.wakefd, b[:])
				if l.runTasks(now) {
					l.flushDirty()
					l.closeAll("shutdown")
					return
				}
				continue
			}
			l.mu.Lock()
			c := l.conns[fd]
			l.mu.Unlock()
			if c != nil {
				l.handle(c, ev.Events, now)
			}
		}
		if n > 0 {
			l.flushDirty()
		}
		if !now.Before(nextMark) {
			l.marks(now)
			nextMark = now.Add(markInterval)
		}
		if !now.Before(nextTick) {
			l.tick(now)
			nextTick = now.Add(tick)
		}
	}
}

// runTasks runs posted tasks and reports whether the loop must stop.
func (l *loop) runTasks(now time.Time) bool {
	l.mu.Lock()
	tasks, stop := l.tasks, l.stop
	l.tasks = nil
	l.mu.Unlock()
	for _, f := range tasks {
		f(now)
	}
	return stop
}

// handle processes one epoll event for c; a panic closes c alone.
func (l *loop) handle(c *conn, events uint32, now time.Time) {
	defer func() {
		if r := recover(); r != nil {
			l.srv.stats.Panics.Add(1)
			var peer any
			if c.sess != nil {
				peer = c.sess.Peer()
			}
			l.srv.log.Error("panic handling connection; closing it", "panic", r, "peer", peer, "stack", string(debug.Stack()))
			l.closeConn(c, "closed")
		}
	}()
	if events&evWrite != 0 {
		c.flush()
	}
	if events&(unix.EPOLLIN|unix.EPOLLRDHUP|unix.EPOLLHUP|unix.EPOLLERR) != 0 {
		l.read(c, now)
		if c.inCharged != int64(cap(c.in)+cap(c.frag)) && c.state == stateOpen {
			c.chargeIn(now)
		}
	}
}

func (l *loop) read(c *conn, now time.Time) {
	if c.tls != nil {
		l.readTLS(c, now)
		return
	}
	if len(c.in) > 0 {
		l.readPartial(c, now)
		return
	}
	n, err := unix.Read(c.fd, l.buf)
	switch {
	case errors.Is(err, unix.EAGAIN) || errors.Is(err, unix.EINTR):
		return
	case err != nil || n == 0:
		l.loseConn(c, "closed")
		return
	}
	c.lastRead = now.UnixNano()
	if c.state != stateOpen {
		return // closing: discard until EOF
	}
	data := l.buf[:n]
	used := c.process(data, now)
	if rest := data[used:]; len(rest) > 0 && c.state == stateOpen {
		// Carry the partial frame in a buffer of its own, sized for what arrived (not for what
		// its header announces): readPartial grows it as more comes.
		c.in = append(make([]byte, 0, min(max(2*len(rest), minPartial), len(l.buf))), rest...)
		c.inSince = c.lastRead
	}
}

// minPartial is the least free room a partial frame's buffer offers a read.
const minPartial = 512

// readPartial reads the rest of c's partial frame straight into c.in, after the bytes already
// there: the buffer doubles when it runs short, so a frame dripped in N pieces costs O(size)
// copying, not O(N × size). Complete frames are handled in place; what is left of a next frame
// moves to the front.
func (l *loop) readPartial(c *conn, now time.Time) {
	if cap(c.in)-len(c.in) < minPartial {
		grown := make([]byte, len(c.in), min(max(2*cap(c.in), len(c.in)+minPartial), len(l.buf)))
		copy(grown, c.in)
		c.in = grown
	}
	pending := len(c.in)
	n, err := unix.Read(c.fd, c.in[pending:cap(c.in)])
	switch {
	case errors.Is(err, unix.EAGAIN) || errors.Is(err, unix.EINTR):
		return
	case err != nil || n == 0:
		l.loseConn(c, "closed")
		return
	}
	c.lastRead = now.UnixNano()
	if c.state != stateOpen {
		c.in = nil
		return
	}
	data := c.in[:pending+n]
	used := c.process(data, now)
	rest := data[used:]
	switch {
	case c.state != stateOpen || len(rest) == 0:
		c.in = nil
	case used == 0:
		c.in = data // the same frame, still incomplete
	case cap(data) > 4*minPartial && cap(data) > 4*len(rest):
		// A frame ended and a small piece of the next one follows: give the big buffer back.
		c.in = append(make([]byte, 0, max(2*len(rest), minPartial)), rest...)
		c.inSince = c.lastRead
	default:
		c.in = data[:copy(data, rest)]
		c.inSince = c.lastRead
	}
}

// closeConn closes c's socket and removes its peer from the hub. Loop goroutine only.
func (l *loop) closeConn(c *conn, reason string) {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return
	}
	if c.shut {
		reason = c.reason
	}
	if len(c.out) > 0 && !c.shut {
		// Last words (a close frame, say) still queued: one non-blocking try before the socket goes.
		_, _ = writeFD(c.fd, c.out)
	}
	c.closed = true
	c.out = nil
	c.releaseAccounts()
	// Frames after a close frame in the same read are not handled, and no partial frame is
	// carried (nor charged to the released accounts).
	c.state = stateClosed
	// Forget the fd before closing it: once closed, the kernel may hand the same number to a
	// new connection, whose entry must not be deleted.
	l.mu.Lock()
	if l.conns[c.fd] == c {
		delete(l.conns, c.fd)
	}
	l.mu.Unlock()
	_ = unix.Close(c.fd)
	c.mu.Unlock()
	c.in, c.frag = nil, nil
	lost := (c.lost && !c.shut) || c.broken
	switch lh, ok := c.ext.(LossHandler); {
	case c.ext == nil:
		c.sess.End(reason, lost)
	case ok && lost && !c.extDone:
		c.extDone = true
		lh.Lost(reason)
	default:
		c.leave(reason)
	}
	l.srv.connClosed(c)
}

// loseConn closes c after its connection was lost without a goodbye (EOF without a close
// frame, a read error, missed pings): its presence may be resumed. Loop goroutine only.
func (l *loop) loseConn(c *conn, reason string) {
	c.lost = true
	l.closeConn(c, reason)
}

func (l *loop) snapshot() []*conn {
	l.mu.Lock()
	defer l.mu.Unlock()
	cs := make([]*conn, 0, len(l.conns))
	for _, c := range l.conns {
		cs = append(cs, c)
	}
	return cs
}

func (l *loop) closeAll(reason string) {
	for _, c := range l.snapshot() {
		l.closeConn(c, reason)
	}
}

// tick pings quiet peers, drops silent ones and ends stalled closing handshakes.
func (l *loop) tick(now time.Time) {
	cfg := &l.srv.cfg
	t := now.UnixNano()
	ping := int64(cfg.PingInterval)
	for _, c := range l.snapshot() {
		c.recheckKernel() // a kernel buffer charged when last looked at may have drained
		switch {
		case c.state == stateClosing:
			if t-c.closingSince > int64(cfg.CloseTimeout) {
				l.closeConn(c, "closed")
			}
		case t-c.lastRead > int64(cfg.PeerTimeout):
			l.loseConn(c, "timeout")
		case (len(c.in) > 0 && t-c.inSince > int64(cfg.FrameTimeout)) ||
			(c.fragging && t-c.fragSince > int64(cfg.FrameTimeout)):
			// A frame or fragmented message left unfinished: the client holds a buffer here.
			l.srv.stats.Timeouts[stats.TimeoutFrame].Add(1)
			c.closeWith(hub.ClosePolicyViolation, "frame not finished in time", "timeout", now)
		case c.ext != nil:
			// Adopted protocols ping in their own messages, on a fixed beat whatever the
			// client sends (Engine.IO clients time out when pings stop coming).
			if t-c.lastPing >= ping {
				c.lastPing = t
				c.ext.Ping(now)
			}
		case t-c.lastRead >= ping && t-c.lastPing >= ping:
			c.lastPing = t
			c.sendControl(opPing, nil, false)
		}
	}
}
