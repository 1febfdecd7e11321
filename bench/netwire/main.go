// Command netwire is the measuring instrument of the impaired-network bench
// (bench/networks.sh, issue 15). This kernel has no netem, so the impairment is done in user
// space:
//
//	netwire wire --a vethMA --b vethMB --delay 100ms --jitter 10ms --loss 0.02 --seed 1
//
// forwards every Ethernet frame between two interfaces (raw AF_PACKET sockets, run inside
// the namespace that holds both), each direction through a delay queue: a frame read at t is
// written at t + delay + a jitter uniform in ±jitter (so frames reorder, as netem's do), or
// dropped with probability loss. It prints each direction's counts when stopped (SIGINT or
// SIGTERM).
//
//	netwire tcp-serve --listen 10.77.0.1:5201 --bytes 20971520 --cc cubic
//	netwire tcp-get --connect 10.77.0.1:5201 --bytes 20971520 --timeout 180s
//
// are the anchor: a plain TCP transfer of the same size over the same wire. tcp-serve sends
// --bytes to each connection (with the congestion control --cc, read back and printed);
// tcp-get times from the start of its connect to the last byte and prints MiB/s, or how
// much it had when --timeout ran out.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:])
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "netwire:", err)
		os.Exit(1)
	}
}

const usage = `usage: netwire wire|tcp-serve|tcp-get|quic-serve|quic-get [flags] (netwire CMD -h for the flags)`

func run(ctx context.Context, args []string) error {
	if len(args) == 0 {
		return errors.New(usage)
	}
	fs := flag.NewFlagSet("netwire "+args[0], flag.ContinueOnError)
	switch args[0] {
	case "wire":
		a := fs.String("a", "", "first interface")
		b := fs.String("b", "", "second interface")
		delay := fs.Duration("delay", 0, "one-way delay, each direction")
		jitter := fs.Duration("jitter", 0, "per-frame jitter, uniform in ±jitter (reorders)")
		loss := fs.Float64("loss", 0, "independent loss probability per frame, 0..1")
		limit := fs.Int("limit", 100000, "frames held per direction at most (more are dropped and counted)")
		seed := fs.Uint64("seed", 1, "random seed (direction b->a uses seed+1)")
		if err := fs.Parse(args[1:]); err != nil {
			return err
		}
		if *a == "" || *b == "" {
			return errors.New("wire: --a and --b are required")
		}
		if *delay < 0 || *jitter < 0 || *loss < 0 || *loss > 1 {
			return errors.New("wire: delay and jitter must be >= 0, loss in 0..1")
		}
		imp := Impairment{Delay: *delay, Jitter: *jitter, Loss: *loss}
		fmt.Fprintf(os.Stderr, "netwire: %s <-> %s: delay %s, jitter ±%s, loss %.2f %%, limit %d, seed %d\n",
			*a, *b, imp.Delay, imp.Jitter, 100*imp.Loss, *limit, *seed)
		return runWire(ctx, *a, *b, imp, *limit, *seed, os.Stderr)
	case "tcp-serve":
		listen := fs.String("listen", "", "address to listen on")
		n := fs.Int64("bytes", 20<<20, "bytes to send to each connection")
		cc := fs.String("cc", "", "TCP congestion control of the sending socket (empty: the route's or the system's)")
		if err := fs.Parse(args[1:]); err != nil {
			return err
		}
		return tcpServe(ctx, *listen, *n, *cc)
	case "tcp-get":
		addr := fs.String("connect", "", "address to connect to")
		n := fs.Int64("bytes", 20<<20, "bytes expected")
		timeout := fs.Duration("timeout", 180*time.Second, "give up after this long, printing how much arrived")
		if err := fs.Parse(args[1:]); err != nil {
			return err
		}
		return tcpGet(ctx, *addr, *n, *timeout)
	case "quic-serve":
		listen := fs.String("listen", "", "UDP address to listen on")
		n := fs.Int64("bytes", 20<<20, "bytes to send to each connection")
		if err := fs.Parse(args[1:]); err != nil {
			return err
		}
		return quicServe(ctx, *listen, *n)
	case "quic-get":
		addr := fs.String("connect", "", "UDP address to dial")
		n := fs.Int64("bytes", 20<<20, "bytes expected")
		timeout := fs.Duration("timeout", 180*time.Second, "give up after this long, printing how much arrived")
		if err := fs.Parse(args[1:]); err != nil {
			return err
		}
		return quicGet(ctx, *addr, *n, *timeout)
	}
	return errors.New(usage)
}
