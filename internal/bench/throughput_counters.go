package bench

import (
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"

	"github.com/pion/logging"
)

// pionCounters is a Pion LoggerFactory that discards every log but keeps the counters the
// benchmark reports: each SCTP association logs its T3 retransmission timeouts and fast
// retransmits (debug level) when it closes, and the ICE mux logs each packet it drops
// because the DTLS or SRTP reader fell behind.
type pionCounters struct {
	mu       sync.Mutex
	t3       map[string]uint64 // by association name: logged once per close path
	fastRtx  map[string]uint64
	muxDrops int64

	udpRcvbuf atomic.Int64 // SO_RCVBUF the kernel granted (bufferedNet), 0 if not set
}

func newPionCounters() *pionCounters {
	return &pionCounters{t3: map[string]uint64{}, fastRtx: map[string]uint64{}}
}

func (c *pionCounters) NewLogger(string) logging.LeveledLogger { return counterLogger{c} }

// totals returns the T3 timeouts, fast retransmits and mux drops of every association.
func (c *pionCounters) totals() (t3, fastRtx uint64, muxDrops int64) {
	if c == nil {
		return 0, 0, 0
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, v := range c.t3 {
		t3 += v
	}
	for _, v := range c.fastRtx {
		fastRtx += v
	}
	return t3, fastRtx, c.muxDrops
}

type counterLogger struct{ c *pionCounters }

func (l counterLogger) Debugf(format string, args ...any) {
	var m map[string]uint64
	switch {
	case strings.Contains(format, "stats nT3Timeouts"):
		m = l.c.t3
	case strings.Contains(format, "stats nFastRetrans"):
		m = l.c.fastRtx
	default:
		return
	}
	if len(args) != 2 {
		return
	}
	name, _ := args[0].(string)
	v, _ := args[1].(uint64)
	l.c.mu.Lock()
	m[name] = max(m[name], v)
	l.c.mu.Unlock()
}

func (l counterLogger) Infof(format string, _ ...any) {
	if strings.Contains(format, "buffer is full, dropping packet") {
		l.c.mu.Lock()
		l.c.muxDrops++
		l.c.mu.Unlock()
	}
}

func (counterLogger) Trace(string)          {}
func (counterLogger) Tracef(string, ...any) {}
func (counterLogger) Debug(string)          {}
func (counterLogger) Info(string)           {}
func (counterLogger) Warn(string)           {}
func (counterLogger) Warnf(string, ...any)  {}
func (counterLogger) Error(string)          {}
func (counterLogger) Errorf(string, ...any) {}

// recordRcvbuf keeps the receive buffer the kernel granted a socket (sdk.BufferedNet's hook).
func (c *pionCounters) recordRcvbuf(uc *net.UDPConn) {
	rc, err := uc.SyscallConn()
	if err != nil {
		return
	}
	_ = rc.Control(func(fd uintptr) {
		// Linux reports twice the size set (it counts its bookkeeping).
		if v, err := syscall.GetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF); err == nil {
			c.udpRcvbuf.Store(int64(v / 2))
		}
	})
}
