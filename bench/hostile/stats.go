package main

import (
	"math"
	"slices"
	"time"
)

// latency is the nearest-rank percentiles of a set of durations.
type latency struct {
	n             int
	p50, p99, max time.Duration
}

// percentile is the nearest-rank p-th percentile of sorted (ascending); 0 when empty.
func percentile(sorted []time.Duration, p float64) time.Duration {
	n := len(sorted)
	if n == 0 {
		return 0
	}
	rank := min(max(int(math.Ceil(p/100*float64(n))), 1), n)
	return sorted[rank-1]
}

// summarize sorts a copy of samples and returns its percentiles.
func summarize(samples []time.Duration) latency {
	s := slices.Clone(samples)
	slices.Sort(s)
	l := latency{n: len(s)}
	if l.n > 0 {
		l.p50, l.p99, l.max = percentile(s, 50), percentile(s, 99), s[l.n-1]
	}
	return l
}

// ms is d in milliseconds.
func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
