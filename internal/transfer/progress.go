package transfer

import "time"

// DefaultProgressInterval is how often the Progress hook is called during a file, at most.
const DefaultProgressInterval = 100 * time.Millisecond

// Progress is a snapshot of a transfer, passed to a Progress hook, always on the goroutine
// that runs Send or Run.
//
// A receiver reports the file it is writing: when it starts (Bytes 0), at most every
// progress interval while it moves, and when it is verified and in place (Done).
//
// A sender reports what the receiver has confirmed, not what it has queued: the file the
// receiver is on (the first one not yet answered, which may be behind the one being sent),
// when it starts, at most every progress interval while bytes are sent or confirmed, and
// when the receiver has answered ok (Done). Bytes, TotalBytes, Rate and ETA count confirmed
// bytes only; Sent tells how far ahead the sender is. A receiver of protocol version 1
// without progress acknowledgements (ReceiverAcks false) confirms only whole files: Bytes
// stays 0 until the file is Done (docs/file-transfer.md, "Progress").
type Progress struct {
	Name  string // the current file
	File  int    // its 1-based position
	Files int    // the number of files; 0 when unknown (receiver)

	// Bytes of the current file so far: the receiver has written them (for a sender: the
	// receiver said so).
	Bytes int64
	Size  int64 // the current file's size
	// Sent (sender only) is the bytes of the current file handed to the data channel: queued,
	// in flight or confirmed. Bytes ≤ Sent ≤ Size.
	Sent int64
	// ReceiverAcks (sender only): the receiver has confirmed bytes as they arrive in this
	// transfer. False before its first acknowledgement and with a receiver that sends none.
	ReceiverAcks bool

	TotalBytes int64 // bytes of all files so far (a sender counts a refused file whole)
	TotalSize  int64 // size of all files; 0 when unknown (receiver)

	Elapsed time.Duration // since the first file started
	Rate    float64       // recent rate of TotalBytes in bytes per second; 0 until known
	// ETA is the time left for the whole transfer, or for the current file when the total
	// is unknown; -1 until known.
	ETA time.Duration

	// Done: the file is complete: verified and in place at the receiver (for a sender: the
	// receiver answered ok).
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
