package main

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/net/ipv4"
)

// sink counts distinct sequence numbers of the datagrams it reads and gives a window slot
// back for each. On the peer's UDP socket it reads in batches (recvmmsg), so the client's own
// CPU per datagram stays small beside the server's.
type sink struct {
	conn   net.PacketConn
	window chan struct{}
	seen   []bool

	got  atomic.Int64
	last atomic.Int64 // unix nanos of the last new datagram
	wg   sync.WaitGroup
}

// newSink reads conn: the peer's socket (batch) or the client's relay.
func newSink(conn net.PacketConn, count, window int, batch bool) *sink {
	s := &sink{conn: conn, window: make(chan struct{}, window), seen: make([]bool, count)}
	for range window {
		s.window <- struct{}{}
	}
	s.wg.Add(1)
	if batch {
		go s.readBatches(conn.(*net.UDPConn)) //nolint:forcetypeassert // the peer's socket
	} else {
		go s.read()
	}
	return s
}

func (s *sink) readBatches(c *net.UDPConn) {
	defer s.wg.Done()
	pc := ipv4.NewPacketConn(c)
	msgs := make([]ipv4.Message, 64)
	for i := range msgs {
		msgs[i].Buffers = [][]byte{make([]byte, 2048)}
	}
	for {
		n, err := pc.ReadBatch(msgs, 0)
		if err != nil {
			return // closed
		}
		now := time.Now().UnixNano()
		for _, m := range msgs[:n] {
			s.count(m.Buffers[0][:m.N], now)
		}
	}
}

func (s *sink) read() {
	defer s.wg.Done()
	buf := make([]byte, 2048)
	for {
		n, _, err := s.conn.ReadFrom(buf)
		if err != nil {
			return // closed
		}
		s.count(buf[:n], time.Now().UnixNano())
	}
}

func (s *sink) count(b []byte, now int64) {
	if len(b) < 8 {
		return
	}
	seq := binary.BigEndian.Uint64(b)
	if seq >= uint64(len(s.seen)) || s.seen[seq] {
		return
	}
	s.seen[seq] = true
	s.got.Add(1)
	s.last.Store(now)
	select {
	case s.window <- struct{}{}:
	default:
	}
}

// wait returns the datagrams received and when the last arrived, once all count have or none
// has for 500 ms (the rest are lost).
func (s *sink) wait(ctx context.Context, count int) (int, time.Time) {
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	lastGot, since := s.got.Load(), time.Now()
	for {
		got := s.got.Load()
		if got >= int64(count) || time.Since(since) > 500*time.Millisecond {
			return int(got), time.Unix(0, s.last.Load())
		}
		if got != lastGot {
			lastGot, since = got, time.Now()
		}
		select {
		case <-ctx.Done():
			return int(s.got.Load()), time.Unix(0, s.last.Load())
		case <-tick.C:
		}
	}
}

// close closes what the sink reads and waits for its reader.
func (s *sink) close() {
	_ = s.conn.Close()
	s.wg.Wait()
}

// cpuTime returns the user+system CPU time of process pid so far (0 for pid 0), from
// /proc/PID/stat in clock ticks (USER_HZ, 100 on Linux).
func cpuTime(pid int) (time.Duration, error) {
	if pid <= 0 {
		return 0, nil
	}
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, fmt.Errorf("server CPU time: %w", err)
	}
	// The command name (field 2) may hold spaces: count fields after its closing parenthesis.
	i := strings.LastIndexByte(string(b), ')')
	if i < 0 {
		return 0, errors.New("server CPU time: unreadable /proc stat")
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return 0, errors.New("server CPU time: short /proc stat")
	}
	// Fields 14 and 15 of stat (utime, stime) are 12 and 13 after the name's.
	ut, err1 := strconv.ParseInt(f[11], 10, 64)
	st, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, errors.New("server CPU time: unreadable utime/stime")
	}
	return time.Duration(ut+st) * 10 * time.Millisecond, nil
}
