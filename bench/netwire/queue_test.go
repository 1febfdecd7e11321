package main

import (
	"encoding/binary"
	"math"
	"testing"
	"time"
)

var t0 = time.Date(2026, 12, 6, 0, 0, 0, 0, time.UTC)

func frame(i int) []byte {
	b := make([]byte, 8)
	binary.BigEndian.PutUint64(b, uint64(i))
	return b
}

func idOf(b []byte) int { return int(binary.BigEndian.Uint64(b)) }

// Without jitter every frame leaves exactly delay after it came, in arrival order, and not
// a nanosecond sooner.
func TestDelayKeepsOrder(t *testing.T) {
	const delay = 100 * time.Millisecond
	s := newShaper(Impairment{Delay: delay}, 0, 1)
	const n = 1000
	for i := range n {
		if !s.admit(t0.Add(time.Duration(i)*time.Microsecond), frame(i)) {
			t.Fatalf("frame %d dropped with no loss set", i)
		}
	}
	if got := s.due(t0.Add(delay-time.Nanosecond), nil); len(got) != 0 {
		t.Fatalf("%d frames released before their delay", len(got))
	}
	at, ok := s.next()
	if !ok || !at.Equal(t0.Add(delay)) {
		t.Fatalf("next release %v %v, want %v", at, ok, t0.Add(delay))
	}
	// Half-way: exactly the frames that came in the first half.
	got := s.due(t0.Add(delay+(n/2-1)*time.Microsecond), nil)
	if len(got) != n/2 {
		t.Fatalf("released %d frames half-way, want %d", len(got), n/2)
	}
	got = s.due(t0.Add(time.Hour), got)
	if len(got) != n {
		t.Fatalf("released %d frames in all, want %d", len(got), n)
	}
	for i, f := range got {
		if idOf(f) != i {
			t.Fatalf("position %d holds frame %d: order not kept", i, idOf(f))
		}
	}
	if _, ok := s.next(); ok {
		t.Fatal("queue not empty after releasing everything")
	}
	if s.stats.In != n || s.stats.Out != n || s.stats.Lost != 0 {
		t.Fatalf("stats %+v", s.stats)
	}
}

// Jitter larger than the spacing of frames reorders them; every frame still leaves within
// delay ± jitter of its arrival, and the release times come out non-decreasing.
func TestJitterReorders(t *testing.T) {
	const (
		delay  = 100 * time.Millisecond
		jitter = 10 * time.Millisecond
		gap    = 100 * time.Microsecond // 100 frames per jitter window
		n      = 5000
	)
	s := newShaper(Impairment{Delay: delay, Jitter: jitter}, 0, 7)
	for i := range n {
		s.admit(t0.Add(time.Duration(i)*gap), frame(i))
	}
	// Release step by step, 1 ms at a time, checking each frame's window.
	var out []int
	last := time.Time{}
	var buf [][]byte
	for now := t0; len(out) < n; now = now.Add(time.Millisecond) {
		if now.After(t0.Add(time.Duration(n)*gap + delay + jitter + time.Second)) {
			t.Fatalf("only %d of %d frames released", len(out), n)
		}
		if at, ok := s.next(); ok && at.Before(last) {
			t.Fatalf("release times went backwards: %v after %v", at, last)
		} else if ok {
			last = at
		}
		buf = s.due(now, buf[:0])
		for _, f := range buf {
			id := idOf(f)
			arrived := t0.Add(time.Duration(id) * gap)
			earliest := arrived.Add(delay - jitter)
			latest := arrived.Add(delay + jitter + time.Millisecond) // + the 1 ms step
			if now.Before(earliest) || now.After(latest) {
				t.Fatalf("frame %d (arrived %v) released at %v, outside [%v, %v]", id, arrived, now, earliest, latest)
			}
			out = append(out, id)
		}
	}
	inversions := 0
	for i := 1; i < len(out); i++ {
		if out[i] < out[i-1] {
			inversions++
		}
	}
	// With ±10 ms on 0.1 ms spacing nearly every neighbour pair is out of order; require a
	// clear share, a loose bound so the test cannot flake.
	if inversions < n/10 {
		t.Fatalf("only %d of %d neighbours out of order: jitter does not reorder", inversions, n)
	}
	seen := make(map[int]bool, n)
	for _, id := range out {
		if seen[id] {
			t.Fatalf("frame %d released twice", id)
		}
		seen[id] = true
	}
}

// Loss drops about the share asked for, independently per direction seed, and never a frame
// that was queued.
func TestLossRate(t *testing.T) {
	for _, p := range []float64{0, 0.02, 0.10, 1} {
		const n = 100000
		s := newShaper(Impairment{Delay: time.Millisecond, Loss: p}, 0, 42)
		queued := 0
		for i := range n {
			if s.admit(t0, frame(i)) {
				queued++
			}
		}
		lost := n - queued
		if uint64(lost) != s.stats.Lost {
			t.Fatalf("p=%v: %d refused but %d counted lost", p, lost, s.stats.Lost)
		}
		// Binomial: 6 standard deviations either side (a fixed seed; the bound only guards
		// against a wrong formula, not bad luck).
		sd := math.Sqrt(n * p * (1 - p))
		if d := math.Abs(float64(lost) - n*p); d > 6*sd+0.5 {
			t.Fatalf("p=%v: lost %d of %d, expected %.0f ± %.0f", p, lost, n, n*p, 6*sd)
		}
		if got := len(s.due(t0.Add(time.Second), nil)); got != queued {
			t.Fatalf("p=%v: released %d, queued %d", p, got, queued)
		}
	}
}

// A full queue drops what comes next and counts it apart from loss.
func TestLimitOverflow(t *testing.T) {
	s := newShaper(Impairment{Delay: time.Second}, 10, 1)
	for i := range 15 {
		s.admit(t0, frame(i))
	}
	if s.stats.Overflow != 5 || s.stats.Lost != 0 || len(s.q) != 10 {
		t.Fatalf("stats %+v, held %d; want 5 overflow, 10 held", s.stats, len(s.q))
	}
	got := s.due(t0.Add(time.Second), nil)
	for i, f := range got {
		if idOf(f) != i {
			t.Fatalf("kept frame %d at %d: the first 10 should stay", idOf(f), i)
		}
	}
}

// Jitter larger than the delay never schedules a frame before its arrival.
func TestJitterNotBeforeArrival(t *testing.T) {
	s := newShaper(Impairment{Delay: time.Millisecond, Jitter: 50 * time.Millisecond}, 0, 3)
	for i := range 1000 {
		s.admit(t0, frame(i))
	}
	if at, _ := s.next(); at.Before(t0) {
		t.Fatalf("a frame is scheduled at %v, before its arrival %v", at, t0)
	}
}
