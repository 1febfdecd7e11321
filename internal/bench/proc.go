package bench

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"syscall"
	"time"
)

// clockTicks is USER_HZ, the unit of utime and stime in /proc/PID/stat. The
// kernel exports it as 100 on every Linux architecture Go supports
// (`getconf CLK_TCK`).
const clockTicks = 100

// parseProcStatCPU returns utime+stime from the contents of /proc/PID/stat.
// The command name (field 2) may contain spaces and parentheses, so fields are
// counted from the last ')'.
func parseProcStatCPU(b []byte) (time.Duration, error) {
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, errors.New("no ')' after the command name")
	}
	// After ") " come fields 3 (state), 4, ... utime is field 14, stime field 15.
	fields := bytes.Fields(b[i+1:])
	const utimeIdx, stimeIdx = 14 - 3, 15 - 3
	if len(fields) <= stimeIdx {
		return 0, fmt.Errorf("only %d fields after the command name", len(fields))
	}
	utime, err := strconv.ParseUint(string(fields[utimeIdx]), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("utime: %w", err)
	}
	stime, err := strconv.ParseUint(string(fields[stimeIdx]), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("stime: %w", err)
	}
	return time.Duration(utime+stime) * (time.Second / clockTicks), nil
}

// parseProcStatusRSS returns VmRSS in KiB from the contents of /proc/PID/status.
func parseProcStatusRSS(b []byte) (int64, error) {
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		line := sc.Bytes()
		rest, ok := bytes.CutPrefix(line, []byte("VmRSS:"))
		if !ok {
			continue
		}
		f := bytes.Fields(rest)
		if len(f) < 1 {
			return 0, errors.New("empty VmRSS line")
		}
		if len(f) > 1 && string(f[1]) != "kB" {
			return 0, fmt.Errorf("VmRSS unit %q, want kB", f[1])
		}
		kb, err := strconv.ParseInt(string(f[0]), 10, 64)
		if err != nil {
			return 0, fmt.Errorf("VmRSS: %w", err)
		}
		return kb, nil
	}
	if err := sc.Err(); err != nil {
		return 0, fmt.Errorf("scan status: %w", err)
	}
	return 0, errors.New("no VmRSS line (kernel thread or zombie?)")
}

// procCPU returns the user+system CPU time process pid has used so far.
func procCPU(pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, fmt.Errorf("read stat of pid %d: %w", pid, err)
	}
	d, err := parseProcStatCPU(b)
	if err != nil {
		return 0, fmt.Errorf("parse /proc/%d/stat: %w", pid, err)
	}
	return d, nil
}

// procRSS returns the resident set size of process pid in KiB.
func procRSS(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, fmt.Errorf("read status of pid %d: %w", pid, err)
	}
	kb, err := parseProcStatusRSS(b)
	if err != nil {
		return 0, fmt.Errorf("parse /proc/%d/status: %w", pid, err)
	}
	return kb, nil
}

// selfCPU returns the CPU time (user+system) this process has used so far.
func selfCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// raiseNoFile raises the soft RLIMIT_NOFILE to the hard limit and returns the
// resulting soft limit.
func raiseNoFile() (uint64, error) {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return 0, fmt.Errorf("getrlimit NOFILE: %w", err)
	}
	if lim.Cur < lim.Max {
		lim.Cur = lim.Max
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
			return 0, fmt.Errorf("setrlimit NOFILE to %d: %w", lim.Max, err)
		}
	}
	return lim.Cur, nil
}

// serverProbe samples a server process's CPU time and RSS. A zero pid means
// no process is watched and every sample is reported as unavailable.
type serverProbe struct {
	pid int
}

// cpu returns the server's CPU time so far, or ok=false without a pid or on error.
func (p serverProbe) cpu() (d time.Duration, ok bool, err error) {
	if p.pid == 0 {
		return 0, false, nil
	}
	d, err = procCPU(p.pid)
	return d, err == nil, err
}

// rss returns the server's RSS in KiB, or ok=false without a pid or on error.
func (p serverProbe) rss() (kb int64, ok bool, err error) {
	if p.pid == 0 {
		return 0, false, nil
	}
	kb, err = procRSS(p.pid)
	return kb, err == nil, err
}

// parseProcStatBusy returns the CPU time all CPUs spent busy (user, nice,
// system, irq, softirq, steal; not idle or iowait) from the contents of
// /proc/stat.
func parseProcStatBusy(b []byte) (time.Duration, error) {
	line, _, _ := bytes.Cut(b, []byte("\n"))
	f := bytes.Fields(line)
	if len(f) < 9 || string(f[0]) != "cpu" {
		return 0, fmt.Errorf("unexpected first line %q", line)
	}
	var ticks uint64
	for _, i := range []int{1, 2, 3, 6, 7, 8} { // user nice system (idle iowait) irq softirq steal
		v, err := strconv.ParseUint(string(f[i]), 10, 64)
		if err != nil {
			return 0, fmt.Errorf("field %d: %w", i, err)
		}
		ticks += v
	}
	return time.Duration(ticks) * (time.Second / clockTicks), nil
}

// machineBusy returns the busy CPU time of the whole machine so far, or 0 if
// /proc/stat cannot be read.
func machineBusy() time.Duration {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0
	}
	d, err := parseProcStatBusy(b)
	if err != nil {
		return 0
	}
	return d
}

// cpuSample is the CPU time used so far by the server, this process and the
// whole machine.
type cpuSample struct {
	server   time.Duration
	serverOK bool
	self     time.Duration
	machine  time.Duration
}

func (p serverProbe) sample() (cpuSample, error) {
	s := cpuSample{self: selfCPU(), machine: machineBusy()}
	var err error
	s.server, s.serverOK, err = p.cpu()
	return s, err
}

// cpuWindow is the CPU time used between two samples.
type cpuWindow struct {
	server, self, other time.Duration
	serverOK            bool
}

func diffCPU(a, b cpuSample) cpuWindow {
	w := cpuWindow{self: b.self - a.self, serverOK: a.serverOK && b.serverOK}
	if w.serverOK {
		w.server = b.server - a.server
	}
	// Everything else the machine did: other processes, and the kernel's
	// work not charged to the server or the load tool (mostly softirq).
	w.other = max(b.machine-a.machine-w.self-w.server, 0)
	return w
}

// pct returns d as a percentage of one core over window.
func pct(d, window time.Duration) float64 {
	if window <= 0 {
		return 0
	}
	return 100 * d.Seconds() / window.Seconds()
}

// printCPU prints the window's CPU use: the server's (per unit of work when
// n > 0), the load tool's and everything else's, so that a run disturbed by
// other processes on the machine shows.
func printCPU(w io.Writer, pid int, c cpuWindow, window time.Duration, n int64, unit string) {
	if c.serverOK {
		per := 0.0
		if n > 0 {
			per = float64(c.server.Nanoseconds()) / 1e3 / float64(n)
		}
		fmt.Fprintf(w, "server pid %d: CPU %.2fs in the %.2fs window (%.0f%% of one core) = %.2f µs per %s\n",
			pid, c.server.Seconds(), window.Seconds(), pct(c.server, window), per, unit)
	}
	fmt.Fprintf(w, "load tool: CPU %.2fs (%.0f%% of one core); everything else on the machine: %.0f%% of one core\n",
		c.self.Seconds(), pct(c.self, window), pct(c.other, window))
}

// addTo adds cpu_s, the per-unit key, load_cpu_pct and other_cpu_pct to r.
func (c cpuWindow) addTo(r *resultLine, window time.Duration, n int64, perKey string) {
	r.optFloat("cpu_s", c.server.Seconds(), c.serverOK, 2)
	per := 0.0
	if n > 0 {
		per = float64(c.server.Nanoseconds()) / 1e3 / float64(n)
	}
	r.optFloat(perKey, per, c.serverOK && n > 0, 2)
	r.float("load_cpu_pct", pct(c.self, window), 0)
	r.float("other_cpu_pct", pct(c.other, window), 0)
}
