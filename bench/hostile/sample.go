package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"time"
)

// The sampler: the server's resident memory and open descriptors every --interval, with the
// CPU time the server and the whole machine have used so far, as
// `UNIX_MS RSS_KIB FDS SERVER_CPU_MS MACHINE_BUSY_MS` lines, until SIGTERM or the server exits.

func runSample(ctx context.Context, args []string, stderr io.Writer) error {
	fs := flag.NewFlagSet("sample", flag.ContinueOnError)
	fs.SetOutput(stderr)
	pid := fs.Int("pid", 0, "the server's process id")
	interval := fs.Duration("interval", 200*time.Millisecond, "time between samples")
	out := fs.String("out", "samples.log", "where the samples go")
	if err := fs.Parse(args); err != nil {
		return errUsage
	}
	if *pid <= 0 {
		return errors.New("--pid is required")
	}
	f, err := os.Create(*out)
	if err != nil {
		return fmt.Errorf("--out: %w", err)
	}
	w := bufio.NewWriter(f)
	t := time.NewTicker(*interval)
	defer t.Stop()
	var sampleErr error
	for n := 0; ; n++ {
		rss, err := procRSS(*pid)
		if err != nil {
			sampleErr = err
			break
		}
		fds, err := countFDs(*pid)
		if err != nil {
			sampleErr = err
			break
		}
		cpu, err := procCPU(*pid)
		if err != nil {
			sampleErr = err
			break
		}
		fmt.Fprintf(w, "%d %d %d %d %d\n", unixMS(time.Now()), rss, fds, cpu.Milliseconds(), machineBusy().Milliseconds())
		if n%5 == 0 {
			_ = w.Flush()
		}
		select {
		case <-ctx.Done():
		case <-t.C:
			continue
		}
		break
	}
	if err := w.Flush(); err != nil {
		return fmt.Errorf("write %s: %w", *out, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("write %s: %w", *out, err)
	}
	if sampleErr != nil && ctx.Err() == nil {
		return fmt.Errorf("the server (pid %d) is gone: %w", *pid, sampleErr)
	}
	return nil
}

// procRSS returns VmRSS of pid in KiB.
func procRSS(pid int) (int64, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0, fmt.Errorf("read status: %w", err)
	}
	return parseStatusKB(b, "VmRSS:")
}

// parseStatusKB returns the value in KiB of the /proc/PID/status line that starts with key.
func parseStatusKB(b []byte, key string) (int64, error) {
	for line := range bytes.Lines(b) {
		rest, ok := bytes.CutPrefix(line, []byte(key))
		if !ok {
			continue
		}
		f := bytes.Fields(rest)
		if len(f) == 0 {
			return 0, fmt.Errorf("empty %s line", key)
		}
		if len(f) > 1 && string(f[1]) != "kB" {
			return 0, fmt.Errorf("%s in %q, want kB", key, f[1])
		}
		v, err := strconv.ParseInt(string(f[0]), 10, 64)
		if err != nil {
			return 0, fmt.Errorf("%s: %w", key, err)
		}
		return v, nil
	}
	return 0, fmt.Errorf("no %s line", key)
}

// countFDs returns how many descriptors pid holds open.
func countFDs(pid int) (int, error) {
	d, err := os.Open("/proc/" + strconv.Itoa(pid) + "/fd")
	if err != nil {
		return 0, fmt.Errorf("open fd dir: %w", err)
	}
	defer func() { _ = d.Close() }()
	n := 0
	for {
		names, err := d.Readdirnames(4096)
		n += len(names)
		if errors.Is(err, io.EOF) {
			return n, nil
		}
		if err != nil {
			return n, fmt.Errorf("read fd dir: %w", err)
		}
	}
}

// clockTicks is USER_HZ, the unit of /proc's CPU times (100 on every Linux Go supports).
const clockTicks = 100

// procCPU is the user+system CPU time pid has used.
func procCPU(pid int) (time.Duration, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, fmt.Errorf("read stat: %w", err)
	}
	return parseStatCPU(b)
}

// parseStatCPU returns utime+stime from /proc/PID/stat, counting fields after the command
// name's closing parenthesis (the name may hold spaces).
func parseStatCPU(b []byte) (time.Duration, error) {
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, errors.New("stat: no ')' after the command name")
	}
	f := bytes.Fields(b[i+1:])
	const utime, stime = 14 - 3, 15 - 3 // fields 14 and 15; the first after ')' is field 3
	if len(f) <= stime {
		return 0, fmt.Errorf("stat: %d fields after the command name", len(f))
	}
	u, err1 := strconv.ParseInt(string(f[utime]), 10, 64)
	s, err2 := strconv.ParseInt(string(f[stime]), 10, 64)
	if err := errors.Join(err1, err2); err != nil {
		return 0, fmt.Errorf("stat: %w", err)
	}
	return time.Duration(u+s) * time.Second / clockTicks, nil
}

// machineBusy is the CPU time all CPUs have spent running processes (user, nice, system)
// or stolen by the hypervisor, 0 if /proc/stat cannot be read. Interrupt work is left out:
// on loopback the kernel moves the attack's and the server's bytes in softirqs, which is
// the attack's cost, not other work's.
func machineBusy() time.Duration {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0
	}
	d, _ := parseBusy(b)
	return d
}

// parseBusy sums user, nice, system and steal of /proc/stat's cpu line.
func parseBusy(b []byte) (time.Duration, error) {
	line, _, _ := bytes.Cut(b, []byte("\n"))
	f := bytes.Fields(line)
	if len(f) < 9 || string(f[0]) != "cpu" {
		return 0, fmt.Errorf("/proc/stat: first line %q", line)
	}
	var ticks int64
	for _, i := range []int{1, 2, 3, 8} {
		v, err := strconv.ParseInt(string(f[i]), 10, 64)
		if err != nil {
			return 0, fmt.Errorf("/proc/stat field %d: %w", i, err)
		}
		ticks += v
	}
	return time.Duration(ticks) * time.Second / clockTicks, nil
}
