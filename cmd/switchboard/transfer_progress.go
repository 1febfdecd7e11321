package main

import (
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/switchboard-rtc/switchboard/internal/transfer"
)

// progressPrinter shows transfer progress on stderr: a bar redrawn in place on a terminal,
// plain lines (every second, every 10 % and at the end of each file) otherwise. A sender's
// bar shows the bytes the receiver confirmed (transfer.Progress), not those queued. It is called
// only from the goroutine running the transfer.
type progressPrinter struct {
	w       io.Writer
	verb    string
	tty     bool
	open    bool // a bar line is drawn and not yet ended
	last    time.Time
	lastPct int
	file    int
}

func newProgressPrinter(w io.Writer, verb string) *progressPrinter {
	return &progressPrinter{w: w, verb: verb, tty: isTerminal(w)}
}

// isTerminal reports whether w is a terminal (a character device: /dev/null counts too,
// which does no harm).
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

func (pp *progressPrinter) update(p transfer.Progress) {
	pct := 100
	if p.Size > 0 {
		pct = int(p.Bytes * 100 / p.Size)
	}
	name := p.Name
	if p.Files > 1 {
		name = fmt.Sprintf("[%d/%d] %s", p.File, p.Files, p.Name)
	}
	stats := fmt.Sprintf("%s / %s", humanBytes(p.Bytes), humanBytes(p.Size))
	if p.Rate > 0 {
		stats += fmt.Sprintf("  %s/s", humanBytes(int64(p.Rate)))
	}
	if p.ETA >= 0 && !p.Done {
		stats += "  ETA " + humanDuration(p.ETA)
	}
	if !p.ReceiverAcks && !p.Done && p.Sent > p.Bytes {
		// A receiver that confirms only whole files (protocol v1): the bar stays at what it
		// confirmed, and this tells that the bytes are moving.
		stats += fmt.Sprintf("  (%s sent, not confirmed yet)", humanBytes(p.Sent))
	}
	if pp.tty {
		const width = 24
		fill := pct * width / 100
		bar := strings.Repeat("=", fill) + strings.Repeat(" ", width-fill)
		fmt.Fprintf(pp.w, "\r\033[K%s %s [%s] %3d%%  %s", pp.verb, name, bar, pct, stats)
		pp.open = true
		if p.Done {
			pp.finish()
		}
		return
	}
	now := time.Now()
	if p.File != pp.file {
		pp.file, pp.lastPct, pp.last = p.File, -1, time.Time{}
	}
	if !p.Done && now.Sub(pp.last) < time.Second && pct/10 == pp.lastPct/10 {
		return
	}
	pp.last, pp.lastPct = now, pct
	state := fmt.Sprintf("%d%%", pct)
	if p.Done {
		state = "done"
	}
	fmt.Fprintf(pp.w, "%s %s: %s  %s\n", pp.verb, name, state, stats)
}

// finish ends a bar line in progress, so that other output starts on a line of its own.
func (pp *progressPrinter) finish() {
	if pp.open {
		fmt.Fprintln(pp.w)
		pp.open = false
	}
}

// humanBytes formats n bytes with a binary unit.
func humanBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	v, i := float64(n), -1
	for v >= unit && i < 4 {
		v /= unit
		i++
	}
	return fmt.Sprintf("%.1f %ciB", v, "KMGTP"[i])
}

// humanDuration formats an ETA: 1h02m, 3m05s, 12s.
func humanDuration(d time.Duration) string {
	d = d.Round(time.Second)
	switch {
	case d >= time.Hour:
		return fmt.Sprintf("%dh%02dm", int(d.Hours()), int(d.Minutes())%60)
	case d >= time.Minute:
		return fmt.Sprintf("%dm%02ds", int(d.Minutes()), int(d.Seconds())%60)
	}
	return fmt.Sprintf("%ds", int(d.Seconds()))
}
