package wsserver

import (
	"net/http"
	"strconv"
	"time"

	"golang.org/x/sys/unix"

	"github.com/switchboard-rtc/switchboard/internal/membudget"
)

// CloseTryAgainLater (1013) ends a connection whose partial frame the memory budget cannot hold.
const CloseTryAgainLater = 1013

// refuseMemory answers an upgrade 503 because the memory budget is nearly spent.
func (s *Server) refuseMemory(w http.ResponseWriter) {
	s.stats.HandshakesRefused.Add(1)
	s.stats.RefusedMemory.Add(1)
	w.Header().Set("Retry-After", strconv.Itoa(RetryAfter))
	w.Header().Set("Connection", "close")
	http.Error(w, "server out of memory for new connections", http.StatusServiceUnavailable)
}

// newAccounts opens c's memory accounts: its send queue (with its kernel send buffer while the
// queue is not empty) and its incomplete inbound frame. The reclaimer drops a connection as
// slow; the loop closes it and releases both.
func (s *Server) newAccounts(c *conn) {
	b := s.cfg.Budget
	c.outAcct = b.NewAccount(membudget.WSQueue, func() { c.CloseConn("slow") })
	c.inAcct = b.NewAccount(membudget.WSPartial, func() { c.CloseConn("slow") })
}

// chargeOutLocked brings the send queue's account to what the queue holds: its buffer and,
// while it is backed up (the socket could not take everything), the kernel's send buffer,
// full; otherwise what the kernel was last seen holding (noteWrittenLocked). It reports false when the budget refuses: the caller drops the connection as slow.
// c.mu is held.
func (c *conn) chargeOutLocked() bool {
	want := int64(cap(c.out))
	if len(c.out) > 0 && !c.dirty { // backed up, not merely waiting for the loop's batch to end
		want += c.l.srv.cfg.KernelSendBuffer
	} else {
		want += c.kernelQueued
	}
	if !c.outAcct.Add(want - c.outCharged) {
		if !c.noSend {
			return false
		}
		// A close frame is queued: it goes out whatever the budget says, so the client
		// hears why it is closed.
		c.outAcct.Force(want - c.outCharged)
	}
	c.outCharged = want
	return true
}

// chargeIn brings the inbound account to the partial frame and fragments c carries; over the
// budget the connection is closed 1013. Loop goroutine only.
func (c *conn) chargeIn(now time.Time) {
	want := int64(cap(c.in) + cap(c.frag))
	if want == c.inCharged {
		return
	}
	if !c.inAcct.Add(want - c.inCharged) {
		c.l.srv.stats.SendQueueDrops.Add(1)
		c.closeWith(CloseTryAgainLater, "server out of memory", "slow", now)
		want = int64(cap(c.in) + cap(c.frag)) // closeWith let them go
		c.inAcct.Add(want - c.inCharged)
	}
	c.inCharged = want
}

// releaseAccounts gives back everything c holds. Called once, as the loop closes c, with
// c.mu held.
func (c *conn) releaseAccounts() {
	c.outAcct.Release()
	c.inAcct.Release()
	c.outCharged, c.inCharged = 0, 0
}

// kernelCheckEvery is how many bytes a connection is written between looks at what its
// kernel send buffer still holds (SIOCOUTQ): one system call per 16 KiB sent, none for a
// connection that is sent little.
const kernelCheckEvery = 16 << 10

// noteWrittenLocked counts n bytes handed to the kernel; every kernelCheckEvery bytes it
// looks at how many the kernel still holds unsent and charges them, so that a client that
// does not read — but never makes the server queue, the kernel taking all it is sent — is
// charged for the kernel memory it pins. It reports false when the budget refuses. c.mu is
// held.
func (c *conn) noteWrittenLocked(n int) bool {
	if c.outAcct == nil || n <= 0 {
		return true
	}
	c.sinceCheck += n
	if c.sinceCheck < kernelCheckEvery {
		return true
	}
	return c.checkKernelLocked()
}

// checkKernelLocked reads what the kernel holds unsent for c and charges it (rounded down to
// 4 KiB, so a connection that drains is charged nothing). c.mu is held.
func (c *conn) checkKernelLocked() bool {
	c.sinceCheck = 0
	q := 0
	if !c.closed && !c.shut {
		if n, err := unix.IoctlGetInt(c.fd, unix.SIOCOUTQ); err == nil {
			q = n
		}
	}
	c.kernelQueued = int64(q) &^ 4095
	c.kernelCharged.Store(c.kernelQueued > 0)
	return c.chargeOutLocked()
}

// recheckKernel gives back the kernel charge of a connection whose kernel buffer drained
// since it was last looked at; the loop's tick calls it for connections charged any.
func (c *conn) recheckKernel() {
	if !c.kernelCharged.Load() {
		return // the common case: no lock taken on the tick
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.kernelQueued > 0 && !c.closed && !c.shut && len(c.out) == 0 {
		c.checkKernelLocked()
	}
}
