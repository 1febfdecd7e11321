package config

import (
	"errors"
	"flag"
	"fmt"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/switchboard-rtc/switchboard/internal/membudget"
)

// Memory is how much the server may hold for its clients (docs/limits.md "Memory"). Config
// embeds it, so its keys sit at the top level of the YAML file.
type Memory struct {
	// MemoryBudget bounds what clients make the server hold: send queues of both transports,
	// events held for parked presences, partial frames, backed-up kernel send buffers. 0
	// means half of the machine's (or the cgroup's) memory.
	MemoryBudget ByteSize `yaml:"memory-budget"`
	// SocketSendBuffer sets SO_SNDBUF on every client connection (the kernel doubles it); 0
	// leaves the kernel's autotuning, which lets one socket's buffer grow to megabytes.
	SocketSendBuffer ByteSize `yaml:"socket-send-buffer"`
}

// DefaultMemory returns the built-in memory settings.
func DefaultMemory() Memory {
	return Memory{SocketSendBuffer: 64 << 10}
}

// Budget returns the memory budget in bytes: MemoryBudget, or the default from the machine.
func (m *Memory) Budget() int64 {
	if m.MemoryBudget > 0 {
		return int64(m.MemoryBudget)
	}
	return membudget.DefaultLimit()
}

func (m *Memory) flags(fs *flag.FlagSet) {
	fs.Var(&m.MemoryBudget, "memory-budget", "bytes clients may make the server hold in all (queues, held events, partial frames, kernel send buffers), e.g. 2GiB; 0: half the machine's memory")
	fs.Var(&m.SocketSendBuffer, "socket-send-buffer", "SO_SNDBUF for client connections, e.g. 64KiB (the kernel doubles it); 0: kernel autotuning")
}

func (m *Memory) validate() []error {
	var errs []error
	if m.MemoryBudget != 0 && m.MemoryBudget < 1<<20 {
		errs = append(errs, fmt.Errorf("memory-budget %s: want at least 1MiB (or 0 for the default)", m.MemoryBudget))
	}
	if m.SocketSendBuffer != 0 && (m.SocketSendBuffer < 4<<10 || m.SocketSendBuffer > 64<<20) {
		errs = append(errs, fmt.Errorf("socket-send-buffer %s: want 4KiB to 64MiB (or 0 for the kernel's autotuning)", m.SocketSendBuffer))
	}
	return errs
}

// ByteSize is a size in bytes, written as a number with an optional unit: B, KB/KiB, MB/MiB,
// GB/GiB, TB/TiB (KB and KiB both mean 1024, as memory sizes usually do), or k, m, g, t.
type ByteSize int64

var errByteSize = errors.New("want a size such as 512MiB, 2GiB or 65536")

// ParseByteSize parses s as a ByteSize.
func ParseByteSize(s string) (ByteSize, error) {
	t := strings.TrimSpace(s)
	i := 0
	for i < len(t) && (t[i] >= '0' && t[i] <= '9' || t[i] == '.') {
		i++
	}
	num, unit := t[:i], strings.ToLower(strings.TrimSpace(t[i:]))
	if num == "" {
		return 0, fmt.Errorf("%q: %w", s, errByteSize)
	}
	shift := 0
	switch strings.TrimSuffix(strings.TrimSuffix(unit, "b"), "i") {
	case "":
	case "k":
		shift = 10
	case "m":
		shift = 20
	case "g":
		shift = 30
	case "t":
		shift = 40
	default:
		return 0, fmt.Errorf("%q: %w", s, errByteSize)
	}
	f, err := strconv.ParseFloat(num, 64)
	if err != nil || f < 0 {
		return 0, fmt.Errorf("%q: %w", s, errByteSize)
	}
	v := f * float64(int64(1)<<shift)
	if v >= 1<<62 {
		return 0, fmt.Errorf("%q: too big", s)
	}
	return ByteSize(v), nil
}

// String writes the size with the largest binary unit that divides it.
func (b ByteSize) String() string {
	units := []string{"TiB", "GiB", "MiB", "KiB"}
	for i, u := range units {
		shift := uint(40 - 10*i)
		if b != 0 && b%(1<<shift) == 0 {
			return strconv.FormatInt(int64(b>>shift), 10) + u
		}
	}
	return strconv.FormatInt(int64(b), 10)
}

// Set implements flag.Value.
func (b *ByteSize) Set(s string) error {
	v, err := ParseByteSize(s)
	if err != nil {
		return err
	}
	*b = v
	return nil
}

// UnmarshalYAML reads a size from a number or a string with a unit.
func (b *ByteSize) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode {
		return fmt.Errorf("line %d: %w", n.Line, errByteSize)
	}
	if err := b.Set(n.Value); err != nil {
		return fmt.Errorf("line %d: %w", n.Line, err)
	}
	return nil
}
