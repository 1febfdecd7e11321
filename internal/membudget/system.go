package membudget

import (
	"bufio"
	"bytes"
	"os"
	"strconv"
	"strings"
)

// SystemMemory returns the memory this process may use: the machine's (MemTotal) or its
// cgroup's limit (v2 memory.max, v1 memory.limit_in_bytes), whichever is smaller; 0 if
// neither can be read.
func SystemMemory() int64 {
	total := memTotal("/proc/meminfo")
	for _, f := range []string{"/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"} {
		if n := readLimit(f); n > 0 && (total == 0 || n < total) {
			total = n
		}
	}
	return total
}

// DefaultLimit is the budget when none is configured: half of SystemMemory — the other half
// is the process's own (runtime, garbage not yet collected, per-connection state) and the
// kernel's socket memory — or 1 GiB if the memory cannot be read.
func DefaultLimit() int64 {
	if m := SystemMemory(); m > 0 {
		return m / 2
	}
	return 1 << 30
}

func memTotal(path string) int64 {
	f, err := os.Open(path)
	if err != nil {
		return 0
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		rest, ok := strings.CutPrefix(s.Text(), "MemTotal:")
		if !ok {
			continue
		}
		fields := strings.Fields(rest)
		if len(fields) == 0 {
			return 0
		}
		kb, err := strconv.ParseInt(fields[0], 10, 64)
		if err != nil || kb <= 0 {
			return 0
		}
		return kb << 10
	}
	return 0
}

// readLimit reads a cgroup limit file: a byte count, or "max" (none, 0).
func readLimit(path string) int64 {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0
	}
	n, err := strconv.ParseInt(string(bytes.TrimSpace(b)), 10, 64)
	if err != nil || n <= 0 || n >= 1<<60 { // v1 says "no limit" with a huge number
		return 0
	}
	return n
}
