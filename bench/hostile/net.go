package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// addrRange returns n addresses of 127.0.0.0/8 from first on, skipping those whose last
// octet is 0 or 255 (network and broadcast look-alikes). Each stands for one client.
func addrRange(first netip.Addr, n int) ([]netip.Addr, error) {
	if !first.Is4() || first.As4()[0] != 127 {
		return nil, fmt.Errorf("first address %s is not in 127.0.0.0/8", first)
	}
	if n < 1 {
		return nil, fmt.Errorf("need at least one address, not %d", n)
	}
	out := make([]netip.Addr, 0, n)
	for a := first; len(out) < n; a = a.Next() {
		b := a.As4()
		if b[0] != 127 {
			return nil, fmt.Errorf("%d addresses from %s run out of 127.0.0.0/8", n, first)
		}
		if b[3] == 0 || b[3] == 255 {
			continue
		}
		out = append(out, a)
	}
	return out, nil
}

// clientsFor is how many clients it takes to hold size of something when each may hold
// perClient: the number of source addresses an attacker spreads over to stay under a
// per-client cap.
func clientsFor(size, perClient int) int {
	if perClient < 1 {
		return 1
	}
	return max(1, (size+perClient-1)/perClient)
}

// tcpDialer dials from src. The source port is picked at connect time, not bind time
// (IP_BIND_ADDRESS_NO_PORT), so tens of thousands of connections from one address to
// several server ports do not run out of ports; rcvbuf > 0 sets SO_RCVBUF before connecting
// (a small receive buffer makes a non-reading client cheap).
func tcpDialer(src netip.Addr, timeout time.Duration, rcvbuf int) *net.Dialer {
	return &net.Dialer{
		LocalAddr: &net.TCPAddr{IP: src.AsSlice()},
		Timeout:   timeout,
		KeepAlive: -1,
		Control: func(_, _ string, c syscall.RawConn) error {
			var serr error
			err := c.Control(func(fd uintptr) {
				serr = unix.SetsockoptInt(int(fd), unix.IPPROTO_IP, unix.IP_BIND_ADDRESS_NO_PORT, 1)
				if serr == nil && rcvbuf > 0 {
					serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUF, rcvbuf)
				}
			})
			if err != nil {
				return fmt.Errorf("socket options: %w", err)
			}
			if serr != nil {
				return fmt.Errorf("socket options: %w", serr)
			}
			return nil
		},
	}
}

// tally counts outcomes by name from many goroutines.
type tally struct {
	mu sync.Mutex
	m  map[string]int64
}

func newTally() *tally { return &tally{m: map[string]int64{}} }

func (t *tally) add(key string, n int64) {
	t.mu.Lock()
	t.m[key] += n
	t.mu.Unlock()
}

func (t *tally) get(key string) int64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.m[key]
}

// String is "a:1,b:2" sorted by name, "-" when empty: a RESULT value.
func (t *tally) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return formatCounts(t.m)
}

func formatCounts(m map[string]int64) string {
	keys := make([]string, 0, len(m))
	for k, v := range m {
		if v != 0 {
			keys = append(keys, k)
		}
	}
	if len(keys) == 0 {
		return "-"
	}
	slices.Sort(keys)
	var b strings.Builder
	for i, k := range keys {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(k + ":" + strconv.FormatInt(m[k], 10))
	}
	return b.String()
}

// errKey names an error for a tally: a short, space-free class.
func errKey(err error) string {
	var ne net.Error
	switch {
	case err == nil:
		return "ok"
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &ne) && ne.Timeout():
		return "timeout"
	case errors.Is(err, syscall.ECONNREFUSED):
		return "conn-refused"
	case errors.Is(err, syscall.ECONNRESET):
		return "reset"
	case errors.Is(err, syscall.EPIPE):
		return "broken-pipe"
	case errors.Is(err, syscall.EADDRNOTAVAIL):
		return "no-source-port"
	case errors.Is(err, syscall.EMFILE):
		return "attacker-emfile"
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return "eof"
	}
	var se *statusError
	if errors.As(err, &se) {
		return strconv.Itoa(se.code)
	}
	return "error"
}

// statusError is an HTTP answer other than the one wanted.
type statusError struct {
	code int
	body string
}

func (e *statusError) Error() string {
	if e.body == "" {
		return fmt.Sprintf("HTTP %d", e.code)
	}
	return fmt.Sprintf("HTTP %d: %s", e.code, e.body)
}

// resultLine builds a RESULT line: key=value pairs, values without spaces.
type resultLine struct{ b strings.Builder }

func newResult(attack int, name string) *resultLine {
	r := &resultLine{}
	r.b.WriteString("RESULT")
	r.add("attack", strconv.Itoa(attack))
	r.add("name", name)
	return r
}

func (r *resultLine) add(k, v string) {
	v = strings.Map(func(c rune) rune {
		if c == ' ' || c == '\t' || c == '\n' || c == '=' {
			return '_'
		}
		return c
	}, v)
	if v == "" {
		v = "-"
	}
	r.b.WriteString(" " + k + "=" + v)
}

func (r *resultLine) int(k string, v int64) { r.add(k, strconv.FormatInt(v, 10)) }

func (r *resultLine) String() string { return r.b.String() }

// parseKV parses the key=value fields of a RESULT line (the first field is skipped).
func parseKV(line string) map[string]string {
	f := strings.Fields(line)
	m := make(map[string]string, len(f))
	for _, kv := range f[min(1, len(f)):] {
		k, v, ok := strings.Cut(kv, "=")
		if ok {
			m[k] = v
		}
	}
	return m
}

// unixMS is t in Unix milliseconds, the time base of every log the tool writes.
func unixMS(t time.Time) int64 { return t.UnixMilli() }

// sleepCtx waits d or until ctx is done.
func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("interrupted: %w", context.Cause(ctx))
	}
}
