package bench

import (
	"math"
	"slices"
	"time"
)

// latencySummary holds nearest-rank percentiles of a set of durations.
type latencySummary struct {
	N                  int
	P50, P90, P99, Max time.Duration
}

// percentile returns the nearest-rank p-th percentile (0 < p <= 100) of
// sorted, which must be in ascending order; 0 when sorted is empty.
func percentile(sorted []time.Duration, p float64) time.Duration {
	n := len(sorted)
	if n == 0 {
		return 0
	}
	rank := int(math.Ceil(p / 100 * float64(n)))
	rank = max(rank, 1)
	rank = min(rank, n)
	return sorted[rank-1]
}

// summarize sorts samples in place and returns their percentiles.
func summarize(samples []time.Duration) latencySummary {
	slices.Sort(samples)
	s := latencySummary{N: len(samples)}
	if s.N == 0 {
		return s
	}
	s.P50 = percentile(samples, 50)
	s.P90 = percentile(samples, 90)
	s.P99 = percentile(samples, 99)
	s.Max = samples[s.N-1]
	return s
}

// ms returns d in milliseconds as a float.
func ms(d time.Duration) float64 {
	return float64(d) / float64(time.Millisecond)
}
