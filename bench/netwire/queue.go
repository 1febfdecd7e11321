package main

import (
	"container/heap"
	"math/rand/v2"
	"time"
)

// Impairment is what the wire does to each packet of one direction: it holds it for Delay
// plus a jitter drawn uniformly in [-Jitter, +Jitter] (so packets reorder when the jitter
// exceeds their spacing, as netem's do), and drops it with probability Loss, independently.
type Impairment struct {
	Delay  time.Duration
	Jitter time.Duration
	Loss   float64 // 0..1
}

// Stats counts what one direction of the wire did.
type Stats struct {
	In       uint64 // frames read
	Lost     uint64 // dropped by the loss draw
	Overflow uint64 // dropped because the queue held Limit frames
	Out      uint64 // frames released to the writer
}

// shaper decides the fate of each frame of one direction and keeps the frames in flight in
// release-time order. It is not safe for concurrent use; the wire guards it with a mutex.
// Time is passed in, so tests drive it without a clock.
type shaper struct {
	imp   Impairment
	limit int // frames in flight at most; more are dropped (netem's "limit")
	rng   *rand.Rand
	q     releaseHeap
	seq   uint64
	stats Stats
}

func newShaper(imp Impairment, limit int, seed uint64) *shaper {
	return &shaper{imp: imp, limit: limit, rng: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))}
}

// admit takes a frame read at now: drops it (loss or a full queue) or queues it for release
// at now + Delay + jitter (never before now). It reports whether the frame was queued.
func (s *shaper) admit(now time.Time, frame []byte) bool {
	s.stats.In++
	if s.imp.Loss > 0 && s.rng.Float64() < s.imp.Loss {
		s.stats.Lost++
		return false
	}
	if s.limit > 0 && len(s.q) >= s.limit {
		s.stats.Overflow++
		return false
	}
	d := s.imp.Delay
	if j := s.imp.Jitter; j > 0 {
		d += time.Duration(s.rng.Int64N(2*int64(j)+1)) - j
	}
	if d < 0 {
		d = 0
	}
	s.seq++
	heap.Push(&s.q, held{at: now.Add(d), seq: s.seq, frame: frame})
	return true
}

// due appends to dst the frames whose release time is at or before now, earliest first, and
// removes them from the queue.
func (s *shaper) due(now time.Time, dst [][]byte) [][]byte {
	for len(s.q) > 0 && !s.q[0].at.After(now) {
		h := heap.Pop(&s.q).(held)
		dst = append(dst, h.frame)
		s.stats.Out++
	}
	return dst
}

// next returns the release time of the earliest frame held, if any.
func (s *shaper) next() (time.Time, bool) {
	if len(s.q) == 0 {
		return time.Time{}, false
	}
	return s.q[0].at, true
}

// held is a frame waiting for its release time; seq keeps frames of equal time in arrival
// order.
type held struct {
	at    time.Time
	seq   uint64
	frame []byte
}

// releaseHeap is a min-heap of held frames by release time, then arrival.
type releaseHeap []held

func (h releaseHeap) Len() int { return len(h) }
func (h releaseHeap) Less(i, j int) bool {
	if h[i].at.Equal(h[j].at) {
		return h[i].seq < h[j].seq
	}
	return h[i].at.Before(h[j].at)
}
func (h releaseHeap) Swap(i, j int) { h[i], h[j] = h[j], h[i] }
func (h *releaseHeap) Push(x any)   { *h = append(*h, x.(held)) }
func (h *releaseHeap) Pop() any {
	old := *h
	n := len(old)
	x := old[n-1]
	old[n-1] = held{}
	*h = old[:n-1]
	return x
}
