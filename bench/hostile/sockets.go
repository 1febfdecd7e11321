package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"maps"
	"net/http"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Per-socket kernel memory outside the buffers, from this machine's /proc/slabinfo: a TCP
// socket is a tcp_sock (2,368 B), a socket inode (832 B), a file (192 B) and a dentry
// (192 B); a UDP socket a udp_sock (1,344 B) and the same three. Both sides of a loopback
// connection pay it, so it is counted for the server's sockets and the attacker's alike.
const (
	tcpSocketBytes = 3584
	udpSocketBytes = 2560
)

// sockSide is what one side of the connections to the server's ports holds in the kernel.
type sockSide struct {
	n   int   // sockets, TIME-WAIT and LISTEN not counted
	buf int64 // bytes of their buffers: receive, send queue, forward allocation, options, backlog
}

// kernelBytes is the side's kernel memory: buffers plus a socket's own structures each.
func (s sockSide) kernelBytes() int64 { return s.buf + int64(s.n)*tcpSocketBytes }

// parseSS sums the sockets of `ss -tmnHa` output: each socket's line, then its skmem line.
func parseSS(out []byte) sockSide {
	var s sockSide
	counted := false
	for line := range bytes.Lines(out) {
		if len(line) > 0 && line[0] != ' ' && line[0] != '\t' {
			f := bytes.Fields(line)
			counted = len(f) > 0 && string(f[0]) != "LISTEN" && string(f[0]) != "TIME-WAIT"
			if counted {
				s.n++
			}
			continue
		}
		if !counted {
			continue
		}
		_, mem, ok := bytes.Cut(line, []byte("skmem:("))
		if !ok {
			continue
		}
		mem, _, _ = bytes.Cut(mem, []byte(")"))
		for kv := range bytes.SplitSeq(mem, []byte(",")) {
			i := bytes.IndexFunc(kv, func(r rune) bool { return r >= '0' && r <= '9' })
			if i <= 0 {
				continue
			}
			switch string(kv[:i]) {
			case "r", "w", "f", "o", "bl":
				v, err := strconv.ParseInt(string(kv[i:]), 10, 64)
				if err == nil {
					s.buf += v
				}
			}
		}
	}
	return s
}

// sockSnapshot is both sides of every TCP connection to the server's ports at one moment.
type sockSnapshot struct {
	server, clients sockSide
}

// snapshotSockets asks ss for the sockets on ports (the server's side: local port in ports;
// the clients': remote port in ports). The clients are mostly the attacker: the canary and a
// newcomer add a handful.
func snapshotSockets(ctx context.Context, ports []int) (sockSnapshot, error) {
	var snap sockSnapshot
	if len(ports) == 0 {
		return snap, nil
	}
	filter := func(dir string) string {
		parts := make([]string, len(ports))
		for i, p := range ports {
			parts[i] = dir + " = :" + strconv.Itoa(p)
		}
		return "( " + strings.Join(parts, " or ") + " )"
	}
	for _, side := range []struct {
		dir string
		dst *sockSide
	}{{"sport", &snap.server}, {"dport", &snap.clients}} {
		cctx, cancel := context.WithTimeout(ctx, 20*time.Second)
		out, err := exec.CommandContext(cctx, "ss", "-tmnHa", filter(side.dir)).Output()
		cancel()
		if err != nil {
			return snap, fmt.Errorf("ss: %w", err)
		}
		*side.dst = parseSS(out)
	}
	return snap, nil
}

// metrics is one scrape of /metrics: "name{labels}" → value.
type metrics map[string]float64

// parseMetrics reads the Prometheus text format (comments skipped).
func parseMetrics(r io.Reader) (metrics, error) {
	m := metrics{}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if i < 0 {
			continue
		}
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			continue
		}
		m[strings.TrimSpace(line[:i])] = v
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read metrics: %w", err)
	}
	return m, nil
}

// scrapeMetrics fetches server's /metrics (the attacker's tool runs on loopback, which the
// server serves /metrics to).
func scrapeMetrics(ctx context.Context, server string) (metrics, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimRight(server, "/")+"/metrics", nil)
	if err != nil {
		return nil, fmt.Errorf("metrics request: %w", err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("scrape metrics: %w", err)
	}
	defer func() { _ = resp.Body.Close() }()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("scrape metrics: HTTP %d", resp.StatusCode)
	}
	return parseMetrics(resp.Body)
}

// counterDeltas is "name[label values]:+delta" for every switchboard counter (a _total
// series) that moved between a and b, sorted; "-" when none did.
func counterDeltas(a, b metrics) string {
	var out []string
	for _, k := range slices.Sorted(maps.Keys(b)) {
		name, _, _ := strings.Cut(k, "{")
		if !strings.HasSuffix(name, "_total") || !strings.HasPrefix(name, "switchboard_") {
			continue
		}
		if d := b[k] - a[k]; d != 0 {
			out = append(out, shortName(k)+":+"+strconv.FormatFloat(d, 'f', -1, 64))
		}
	}
	if len(out) == 0 {
		return "-"
	}
	return strings.Join(out, ",")
}

// shortName turns `switchboard_x_total{reason="a",b="c"}` into `x_total[a/c]`: no spaces,
// quotes or = signs, so it fits a RESULT value.
func shortName(series string) string {
	name, labels, ok := strings.Cut(strings.TrimPrefix(series, "switchboard_"), "{")
	if !ok {
		return name
	}
	var vals []string
	for kv := range strings.SplitSeq(strings.TrimSuffix(labels, "}"), ",") {
		_, v, _ := strings.Cut(kv, "=")
		vals = append(vals, strings.Trim(v, `"`))
	}
	return name + "[" + strings.Join(vals, "/") + "]"
}

// gauges is "name:value" for the gauges that say what the server holds, and any about
// memory, sorted.
func gauges(m metrics) string {
	keep := map[string]bool{
		"switchboard_connections": true, "switchboard_peers": true, "switchboard_rooms": true,
		"switchboard_socketio_sessions": true, "switchboard_turn_allocations": true,
		"switchboard_resumable_peers": true,
	}
	var out []string
	for _, k := range slices.Sorted(maps.Keys(m)) {
		name, _, _ := strings.Cut(k, "{")
		if strings.HasSuffix(name, "_total") || !strings.HasPrefix(name, "switchboard_") {
			continue
		}
		if keep[name] || strings.Contains(name, "memory") || strings.Contains(name, "budget") {
			out = append(out, shortName(k)+":"+strconv.FormatFloat(m[k], 'f', -1, 64))
		}
	}
	if len(out) == 0 {
		return "-"
	}
	return strings.Join(out, ",")
}
