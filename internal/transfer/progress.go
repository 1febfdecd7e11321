package transfer

import "time"

// DefaultProgressInterval is how often the Progress hook is called during a file, at most.
const DefaultProgressInterval = 100 * time.Millisecond

// Progress is a snapshot of a transfer, passed to a Progress hook. The hook is called when a
// file starts (Bytes 0), at most every progress interval while it moves, and when it is
// complete (Done), always on the goroutine that runs Send or Run.
type Progress struct {
	Name  string // the current file
	File  int    // its 1-based position
	Files int    // the number of files; 0 when unknown (receiver)

	Bytes int64 // bytes of the current file so far (sent, or received and written)
	Size  int64 // the current file's size

	TotalBytes int64 // bytes of all files so far
	TotalSize  int64 // size of all files; 0 when unknown (receiver)

	Elapsed time.Duration // since the first file started
	Rate    float64       // recent rate in bytes per second; 0 until known
	// ETA is the time left for the whole transfer, or for the current file when the total
	// is unknown; -1 until known.
	ETA time.Duration

	// Done: the file is complete (sender: all its bytes sent; receiver: verified and in
	// place).
	Done bool
}

// rateWindow is how far back the rate looks.
const rateWindow = 3 * time.Second

type sample struct {
	t time.Time
	n int64
}

// meter throttles progress reports and computes the rate over a sliding window.
type meter struct {
	hook     func(Progress)
	interval time.Duration
	start    time.Time
	last     time.Time
	samples  []sample // oldest first, within rateWindow of the newest
}

func newMeter(hook func(Progress), interval time.Duration) *meter {
	if interval <= 0 {
		interval = DefaultProgressInterval
	}
	return &meter{hook: hook, interval: interval}
}

// report calls the hook with p, filling in the timing fields. Unless force, it does nothing
// when the last report was less than an interval ago.
func (m *meter) report(p Progress, force bool) {
	if m.hook == nil {
		return
	}
	now := time.Now()
	if m.start.IsZero() {
		m.start = now
	}
	if !force && now.Sub(m.last) < m.interval {
		return
	}
	m.last = now
	m.samples = append(m.samples, sample{now, p.TotalBytes})
	i := 0
	for i < len(m.samples)-2 && now.Sub(m.samples[i+1].t) >= rateWindow {
		i++
	}
	m.samples = append(m.samples[:0], m.samples[i:]...)

	p.Elapsed = now.Sub(m.start)
	p.ETA = -1
	first := m.samples[0]
	if dt := now.Sub(first.t); dt >= 200*time.Millisecond {
		p.Rate = float64(p.TotalBytes-first.n) / dt.Seconds()
	}
	left := p.Size - p.Bytes
	if p.TotalSize > 0 {
		left = p.TotalSize - p.TotalBytes
	}
	switch {
	case left <= 0:
		p.ETA = 0
	case p.Rate > 0:
		p.ETA = time.Duration(float64(left) / p.Rate * float64(time.Second))
	}
	m.hook(p)
}
