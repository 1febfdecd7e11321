// Package fdlimit keeps a reserve of file descriptors below the process limit (RLIMIT_NOFILE)
// so that a flood of connections cannot take the last ones: the server refuses new WebSocket
// upgrades once it is within the reserve, holds off accepting (then sheds) just short of the
// limit, and turns the accept errors it still gets into one log line per interval
// (docs/limits.md).
//
// Counting open descriptors by reading /proc/self/fd costs about a microsecond per
// descriptor (9.5 ms at 10,000), too dear per connection. A Gauge is told of the
// descriptors that come and go fast — connections, through Note — and reads the directory
// only to learn the rest (listeners, event loops, TURN sockets, files): every MaxAge, or
// every MinAge while near the limit.
package fdlimit

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
)

const (
	// MaxAge is how old the count of untracked descriptors may get.
	MaxAge = 2 * time.Second
	// MinAge is how often that count may be refreshed while the process is near its limit.
	MinAge = 250 * time.Millisecond
)

// Limit returns the process's descriptor limit (the soft RLIMIT_NOFILE, which the Go
// runtime raises to the hard one at start).
func Limit() (int, error) {
	var rl unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &rl); err != nil {
		return 0, fmt.Errorf("fdlimit: getrlimit: %w", err)
	}
	if rl.Cur > 1<<30 {
		return 1 << 30, nil
	}
	return int(rl.Cur), nil
}

// Gauge estimates how many descriptors the process has open. Its methods are safe for
// concurrent use. Close it to release the descriptor it reads /proc/self/fd with.
type Gauge struct {
	limit   int
	reserve int

	mu  sync.Mutex // one reader of the directory at a time; guards dir
	dir int        // /proc/self/fd, kept open so a count never needs a free descriptor

	tracked atomic.Int64 // descriptors noted (opened minus closed)
	base    atomic.Int64 // open descriptors not tracked, at the last read
	at      atomic.Int64 // unix nanoseconds of the last read
}

// New returns a Gauge for a process limited to limit descriptors that keeps reserve of them
// for requests that need no descriptor of their own beyond their connection (health checks,
// metrics, the API).
func New(limit, reserve int) (*Gauge, error) {
	if limit <= 0 || reserve < 0 {
		return nil, fmt.Errorf("fdlimit: limit %d, reserve %d", limit, reserve)
	}
	dir, err := unix.Open("/proc/self/fd", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("fdlimit: %w", &os.PathError{Op: "open", Path: "/proc/self/fd", Err: err})
	}
	g := &Gauge{limit: limit, reserve: reserve, dir: dir}
	if err := g.refresh(time.Now()); err != nil {
		_ = unix.Close(dir)
		return nil, err
	}
	return g, nil
}

// Close releases the Gauge's descriptor.
func (g *Gauge) Close() error {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.dir < 0 {
		return nil
	}
	err := unix.Close(g.dir)
	g.dir = -1
	return err
}

// Limit is the process's descriptor limit the Gauge was made with.
func (g *Gauge) Limit() int { return g.limit }

// Reserve is the number of descriptors kept back from WebSocket upgrades.
func (g *Gauge) Reserve() int { return g.reserve }

// Note counts n descriptors opened (n > 0: an accepted connection) or closed (n < 0). Every
// descriptor noted open must be noted closed.
func (g *Gauge) Note(n int) { g.tracked.Add(int64(n)) }

// Open returns the estimated number of open descriptors: those noted, plus the others as
// /proc/self/fd last showed them, read again when that is older than MaxAge, or MinAge once
// within twice the reserve (or 16) of the limit.
func (g *Gauge) Open() int {
	est := g.estimate()
	now := time.Now()
	age := time.Duration(now.UnixNano() - g.at.Load())
	near := est >= g.limit-max(2*g.reserve, 16)
	if age >= MaxAge || near && age >= MinAge {
		if g.mu.TryLock() { // someone else is reading: their count will do
			if time.Duration(now.UnixNano()-g.at.Load()) >= MinAge {
				_ = g.refreshLocked(now)
			}
			g.mu.Unlock()
			est = g.estimate()
		}
	}
	return est
}

// Full reports whether the process is within the reserve of its limit: new connections that
// would keep a descriptor (a WebSocket) must be refused.
func (g *Gauge) Full() bool { return g.Open() >= g.limit-g.reserve }

// Exhausted reports whether the process is within a few descriptors of its limit (a quarter
// of the reserve, at least 4): even a short request cannot be served, and new connections
// are closed as soon as they are accepted, so the process itself never runs out.
func (g *Gauge) Exhausted() bool { return g.Open() >= g.limit-g.floor() }

func (g *Gauge) floor() int { return max(g.reserve/4, 4) }

func (g *Gauge) estimate() int { return int(g.base.Load() + g.tracked.Load()) }

func (g *Gauge) refresh(now time.Time) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.refreshLocked(now)
}

// refreshLocked counts the entries of /proc/self/fd; what was not noted is the base. Notes
// that land while it reads are taken at their lowest: an estimate that errs high.
func (g *Gauge) refreshLocked(now time.Time) error {
	if g.dir < 0 {
		return errors.New("fdlimit: gauge closed")
	}
	t0 := g.tracked.Load()
	n, err := countDir(g.dir)
	if err != nil {
		return err
	}
	g.base.Store(int64(n) - min(t0, g.tracked.Load()))
	g.at.Store(now.UnixNano())
	return nil
}

var bufPool = sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}

// countDir counts the descriptors listed in the /proc/self/fd directory dir, its own
// included (it is open), without "." and "..".
func countDir(dir int) (int, error) {
	if _, err := unix.Seek(dir, 0, 0); err != nil {
		return 0, fmt.Errorf("fdlimit: seek /proc/self/fd: %w", err)
	}
	bp := bufPool.Get().(*[]byte)
	defer bufPool.Put(bp)
	buf := *bp
	n := 0
	for {
		m, err := unix.Getdents(dir, buf)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return 0, fmt.Errorf("fdlimit: read /proc/self/fd: %w", err)
		}
		if m <= 0 {
			return n - 2, nil // "." and ".."
		}
		// Each linux_dirent64 starts with ino (8), off (8), reclen (2).
		for off := 0; off+18 <= m; {
			reclen := int(binary.NativeEndian.Uint16(buf[off+16:]))
			if reclen == 0 {
				break
			}
			n++
			off += reclen
		}
	}
}
