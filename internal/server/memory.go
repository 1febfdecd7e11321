package server

import (
	"context"
	"log/slog"
	"net"
	"os"
	"strconv"
	"strings"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/switchboard-rtc/switchboard/internal/config"
	"github.com/switchboard-rtc/switchboard/internal/membudget"
	"github.com/switchboard-rtc/switchboard/internal/metrics"
	"github.com/switchboard-rtc/switchboard/internal/stats"
)

// budgetRunner owns the memory budget's reclaimer goroutine.
type budgetRunner struct {
	b      *membudget.Budget
	cancel context.CancelFunc
	done   chan struct{}
}

// startBudget makes the process's memory budget (--memory-budget) and starts its reclaimer.
func startBudget(cfg config.Config, log *slog.Logger) *budgetRunner {
	b := membudget.New(cfg.Budget())
	ctx, cancel := context.WithCancel(context.Background())
	r := &budgetRunner{b: b, cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(r.done)
		b.Run(ctx)
	}()
	log.Debug("memory budget", "bytes", b.Limit(), "socket_send_buffer", int64(cfg.SocketSendBuffer))
	return r
}

// stop ends the reclaimer and waits for it.
func (r *budgetRunner) stop() {
	if r == nil {
		return
	}
	r.cancel()
	<-r.done
}

// collectors are the metrics beside the stats: the memory budget's, TURN's and TLS's.
func (s *Server) collectors(st *stats.Stats) []prometheus.Collector {
	cs := []prometheus.Collector{metrics.Memory(s.budget.b), metrics.ResumeLedger(s.hub.ResumeTokens())}
	return append(append(cs, s.turnMetrics(st)...), s.tls.collectors()...)
}

// kernelSendBuffer is what a client socket's kernel send buffer holds when full: twice
// SO_SNDBUF (the kernel doubles what it is given), or with autotuning the most it may grow to
// (the third field of net.ipv4.tcp_wmem).
func kernelSendBuffer(cfg config.Config) int64 {
	if cfg.SocketSendBuffer > 0 {
		return 2 * int64(cfg.SocketSendBuffer)
	}
	if b, err := os.ReadFile("/proc/sys/net/ipv4/tcp_wmem"); err == nil {
		if f := strings.Fields(string(b)); len(f) == 3 {
			if n, err := strconv.ParseInt(f[2], 10, 64); err == nil && n > 0 {
				return n
			}
		}
	}
	return 4 << 20
}

// sendBufferListener sets SO_SNDBUF on every connection it accepts, so that a client that does
// not read cannot make the kernel hold megabytes for it (autotuning grows a loopback socket's
// buffer to ~4 MB).
type sendBufferListener struct {
	net.Listener
	size int
}

func withSendBuffer(ln net.Listener, size config.ByteSize) net.Listener {
	if size <= 0 {
		return ln
	}
	return sendBufferListener{ln, int(size)}
}

func (l sendBufferListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	if tcp, ok := c.(*net.TCPConn); ok {
		_ = tcp.SetWriteBuffer(l.size)
	}
	return c, nil
}
