// Command turnload is the client behind bench/turn-vs-coturn.sh (issue 18): it allocates a UDP
// relay on a TURN server with TURN REST credentials (the shared secret, as coturn's
// use-auth-secret and `switchboard serve --turn-secret` take them), sends datagrams through the
// relay to a UDP sink of its own, with at most --window in flight, and prints one RESULT line:
// datagrams delivered per second, Mbit/s, datagrams lost and, with --pid, the server process's
// CPU time per datagram (utime+stime from /proc/PID/stat over the run).
//
//	turnload --server 127.0.0.1:3478 --secret S [--count 200000 --size 1200 --window 256 --pid PID --tcp --reverse]
//
// The client is pion/turn's, so the relay path is the one a Go SDK peer takes: the first
// datagram waits for CreatePermission, the next go as Send indications while the ChannelBind
// is under way, the rest as ChannelData. The run starts right after the allocation, so what
// the server drops while the permission and the channel settle counts as lost. With
// --reverse the datagrams go the other way: the peer sends to the relayed address and the
// client reads them from the relay (after one datagram to the peer, for the permission).
package main

import (
	"context"
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/pion/logging"
	"github.com/pion/turn/v5"

	"github.com/switchboard-rtc/switchboard/internal/turnserver"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout)
	stop()
	if err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(os.Stderr, "turnload:", err)
		}
		os.Exit(1)
	}
}

type options struct {
	server, secret, user string
	count, size, window  int
	pid                  int
	tcp, reverse         bool
	timeout              time.Duration
}

func run(ctx context.Context, args []string, stdout io.Writer) error {
	var o options
	fs := flag.NewFlagSet("turnload", flag.ContinueOnError)
	fs.StringVar(&o.server, "server", "127.0.0.1:3478", "TURN server host:port")
	fs.StringVar(&o.secret, "secret", "", "TURN REST shared secret")
	fs.StringVar(&o.user, "user", "turnload", "user in the minted username")
	fs.IntVar(&o.count, "count", 200_000, "datagrams to send")
	fs.IntVar(&o.size, "size", 1200, "bytes per datagram (at least 8: a sequence number)")
	fs.IntVar(&o.window, "window", 256, "datagrams in flight at most")
	fs.IntVar(&o.pid, "pid", 0, "server process whose CPU time to report (0: none)")
	fs.BoolVar(&o.tcp, "tcp", false, "talk to the server over TCP (the relay is UDP either way)")
	fs.BoolVar(&o.reverse, "reverse", false, "relay from the peer to the client instead")
	fs.DurationVar(&o.timeout, "timeout", 2*time.Minute, "give up after this long")
	if err := fs.Parse(args); err != nil {
		return err //nolint:wrapcheck // flag's own message is printed already
	}
	switch {
	case o.secret == "":
		return errors.New("--secret is required")
	case o.size < 8 || o.size > 1400:
		return fmt.Errorf("--size %d: want 8 to 1400", o.size)
	case o.count < 1 || o.window < 1:
		return errors.New("--count and --window must be positive")
	}
	ctx, cancel := context.WithTimeout(ctx, o.timeout)
	defer cancel()
	res, err := load(ctx, o)
	if err != nil {
		return err
	}
	fmt.Fprintln(stdout, res)
	return nil
}

// result is one run's figures.
type result struct {
	sent, got int
	elapsed   time.Duration // first send to last datagram received
	cpu       time.Duration // server utime+stime over elapsed; -1 without --pid
	size      int
}

func (r result) String() string {
	rate := float64(r.got) / r.elapsed.Seconds()
	s := fmt.Sprintf("RESULT sent=%d got=%d lost=%d secs=%.3f dgrams_per_s=%.0f mbit_per_s=%.1f",
		r.sent, r.got, r.sent-r.got, r.elapsed.Seconds(), rate, rate*float64(r.size)*8/1e6)
	if r.cpu >= 0 && r.got > 0 {
		s += fmt.Sprintf(" cpu_s=%.2f cpu_us_per_dgram=%.2f", r.cpu.Seconds(), float64(r.cpu.Microseconds())/float64(r.got))
	}
	return s
}

func load(ctx context.Context, o options) (result, error) {
	conn, err := dialServer(ctx, o)
	if err != nil {
		return result{}, err
	}
	defer conn.Close()
	username, password := turnserver.Mint([]byte(o.secret), o.user, time.Now().Add(10*time.Minute))
	quiet := logging.NewDefaultLoggerFactory()
	quiet.Writer = io.Discard
	cl, err := turn.NewClient(&turn.ClientConfig{
		STUNServerAddr: o.server, TURNServerAddr: o.server,
		Username: username, Password: password,
		Conn: conn, LoggerFactory: quiet,
	})
	if err != nil {
		return result{}, fmt.Errorf("turn client: %w", err)
	}
	defer cl.Close()
	if err := cl.Listen(); err != nil {
		return result{}, fmt.Errorf("turn client: %w", err)
	}
	relay, err := cl.AllocateWithContext(ctx)
	if err != nil {
		return result{}, fmt.Errorf("allocate on %s: %w", o.server, err)
	}
	defer relay.Close()
	peer, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		return result{}, fmt.Errorf("peer socket: %w", err)
	}
	defer peer.Close()
	_ = peer.SetReadBuffer(8 << 20) // as much as the kernel grants: the peer must not be what drops
	if !o.reverse {
		sink := newSink(peer, o.count, o.window, true)
		defer sink.close()
		return send(ctx, o, func(p []byte) error {
			_, err := relay.WriteTo(p, peer.LocalAddr())
			return err //nolint:wrapcheck // wrapped by send
		}, sink)
	}
	if err := permit(ctx, relay, peer); err != nil {
		return result{}, err
	}
	sink := newSink(relay, o.count, o.window, false)
	defer sink.close()
	to := relay.LocalAddr().(*net.UDPAddr)
	return send(ctx, o, func(p []byte) error {
		_, err := peer.WriteToUDP(p, to)
		return err //nolint:wrapcheck // wrapped by send
	}, sink)
}

// permit sends a datagram through the relay to the peer and waits for it: the server then
// has the peer's permission, and the peer's datagrams reach the client.
func permit(ctx context.Context, relay net.PacketConn, peer *net.UDPConn) error {
	hello := []byte("permit")
	buf := make([]byte, 64)
	for i := 0; ctx.Err() == nil; i++ {
		if _, err := relay.WriteTo(hello, peer.LocalAddr()); err != nil {
			return fmt.Errorf("permission: %w", err)
		}
		_ = peer.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
		if n, _, err := peer.ReadFromUDP(buf); err == nil && string(buf[:n]) == string(hello) {
			_ = peer.SetReadDeadline(time.Time{})
			return nil
		}
		if i == 25 {
			break
		}
	}
	return errors.New("permission: nothing reached the peer through the relay")
}

func dialServer(ctx context.Context, o options) (net.PacketConn, error) {
	if o.tcp {
		var d net.Dialer
		c, err := d.DialContext(ctx, "tcp4", o.server)
		if err != nil {
			return nil, fmt.Errorf("connect to %s: %w", o.server, err)
		}
		return turn.NewSTUNConn(c), nil
	}
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		return nil, fmt.Errorf("udp socket: %w", err)
	}
	_ = c.SetReadBuffer(8 << 20) // the client must not be what drops (--reverse)
	return c, nil
}

// send sends o.count datagrams with write to the sink, at most o.window in flight; a
// datagram not delivered within 100 ms gives its slot up (it counts as lost unless it arrives
// later).
func send(ctx context.Context, o options, write func([]byte) error, s *sink) (result, error) {
	pkt := make([]byte, o.size)
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	cpu0, err := cpuTime(o.pid)
	if err != nil {
		return result{}, err
	}
	start := time.Now()
	for i := range o.count {
		select {
		case <-s.window:
		default:
			timer.Reset(100 * time.Millisecond)
			select {
			case <-s.window:
			case <-timer.C:
			case <-ctx.Done():
				return result{}, fmt.Errorf("after %d datagrams: %w", i, ctx.Err())
			}
			timer.Stop()
		}
		binary.BigEndian.PutUint64(pkt, uint64(i)) //nolint:gosec // i >= 0
		if err := write(pkt); err != nil {
			return result{}, fmt.Errorf("datagram %d: %w", i, err)
		}
	}
	got, last := s.wait(ctx, o.count)
	cpu1, err := cpuTime(o.pid)
	if err != nil {
		return result{}, err
	}
	cpu := time.Duration(-1)
	if o.pid > 0 {
		cpu = cpu1 - cpu0
	}
	if got == 0 {
		return result{}, fmt.Errorf("none of %d datagrams arrived", o.count)
	}
	return result{sent: o.count, got: got, elapsed: last.Sub(start), cpu: cpu, size: o.size}, nil
}
