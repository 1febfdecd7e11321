package fdlimit

import (
	"errors"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

const (
	// LogInterval is how often a Listener logs the accept errors it swallowed.
	LogInterval = 10 * time.Second
	// MaxHold is how long a Listener holds off accepting while the process is exhausted,
	// before it takes a connection anyway (and closes it if still exhausted).
	MaxHold = 500 * time.Millisecond
)

// Listener wraps a net.Listener so that running out of descriptors neither spins nor floods
// the log, and so that the process keeps its last descriptors: while the Gauge says the
// process is exhausted, it stops accepting for up to MaxHold (new connections wait in the
// backlog), then closes connections as soon as they are accepted (counted by refused). EMFILE and ENFILE from accept are not returned (net/http would log each one):
// the Listener pauses — 5 ms, doubling to 250 ms while they last — and logs one line per
// LogInterval with how many there were. Every connection it returns is noted open on the
// Gauge: its owner must note it closed (Gauge.Note(-1)).
type Listener struct {
	net.Listener
	g       *Gauge
	log     *slog.Logger
	refused func() // counts a connection closed at accept

	done      chan struct{}
	closeOnce sync.Once

	mu       sync.Mutex // guards the error report below
	errs     int        // accept errors since the last line
	loggedAt time.Time

	shed atomic.Uint64
}

// NewListener wraps ln; g may be nil (no reserve: only the accept errors are handled). refused, if not nil, is called for every connection closed at
// accept because the process is out of descriptors.
func NewListener(ln net.Listener, g *Gauge, log *slog.Logger, refused func()) *Listener {
	if log == nil {
		log = slog.Default()
	}
	if refused == nil {
		refused = func() {}
	}
	return &Listener{Listener: ln, g: g, log: log, refused: refused, done: make(chan struct{})}
}

// Accept returns the next connection the process has a descriptor to spare for.
func (l *Listener) Accept() (net.Conn, error) {
	pause := time.Duration(0)
	for {
		if err := l.waitForRoom(); err != nil {
			return nil, err
		}
		c, err := l.Listener.Accept()
		if err != nil {
			if !outOfDescriptors(err) {
				return nil, err
			}
			l.report(time.Now())
			pause = min(max(2*pause, 5*time.Millisecond), 250*time.Millisecond)
			if !l.sleep(pause) {
				return nil, net.ErrClosed
			}
			continue
		}
		pause = 0
		if l.g == nil {
			return c, nil
		}
		l.g.Note(1)
		// Exhausted even without this one: the hold gave up (or others took the room).
		if l.g.Open()-1 >= l.g.Limit()-l.g.floor() {
			l.shed.Add(1) // counted before the client can see the close
			l.refused()
			_ = c.Close()
			l.g.Note(-1)
			continue
		}
		return c, nil
	}
}

// waitForRoom holds accepting while the process is exhausted — connections wait in the
// kernel's backlog, which costs no descriptor, until the requests being answered (most of
// them refused upgrades) free theirs — for at most MaxHold; then one connection is taken
// (and closed, if the process is still exhausted) so that a backlog of connections that
// never send a request still moves.
func (l *Listener) waitForRoom() error {
	if l.g == nil {
		return nil
	}
	step := time.Millisecond
	for waited := time.Duration(0); waited < MaxHold && l.g.Exhausted(); waited += step {
		if !l.sleep(step) {
			return net.ErrClosed
		}
		step = min(2*step, 20*time.Millisecond)
	}
	return nil
}

// sleep waits d, or reports false when the listener closes first.
func (l *Listener) sleep(d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-l.done:
		return false
	}
}

// Close closes the listener and ends a pause in Accept.
func (l *Listener) Close() error {
	l.closeOnce.Do(func() { close(l.done) })
	return l.Listener.Close()
}

// Shed returns how many connections were closed at accept.
func (l *Listener) Shed() uint64 { return l.shed.Load() }

func (l *Listener) report(now time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.errs++
	if now.Sub(l.loggedAt) < LogInterval {
		return
	}
	l.log.Warn("out of file descriptors: new connections wait in the backlog",
		"accept_errors", l.errs, "since", l.sinceText(now), "shed", l.shed.Load())
	l.errs = 0
	l.loggedAt = now
}

func (l *Listener) sinceText(now time.Time) string {
	if l.loggedAt.IsZero() {
		return "start"
	}
	return now.Sub(l.loggedAt).Round(time.Millisecond).String()
}

func outOfDescriptors(err error) bool {
	return errors.Is(err, syscall.EMFILE) || errors.Is(err, syscall.ENFILE)
}
