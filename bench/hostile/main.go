// Command hostile is the attack client behind bench/hostile.sh: it plays the hostile clients of
// issue 12 against a running `switchboard serve` on loopback, one attack at a time, beside a
// canary pair of legitimate peers, and prints what the server did. It is kept out of the
// switchboard binary (like bench/natsd): nobody should ship an attack tool in a server.
//
//	hostile canary   --url ws://127.0.0.1:8080/ws --out canary.log   # until SIGTERM
//	hostile sample   --pid PID --out samples.log                      # until SIGTERM
//	hostile attack   N --server http://127.0.0.1:8080 --turn 127.0.0.1:3478 [--size S --addrs A ...]
//	hostile newcomer --server http://127.0.0.1:8080 --src 127.0.0.201
//	hostile report   --canary canary.log --samples samples.log --results results.txt
//
// Source addresses from 127.0.0.0/8 stand for distinct clients: the attacker's first address
// is 127.0.0.10 (--first-addr), the canary's 127.0.0.2 and 127.0.0.3, the newcomer's given by
// --newcomer-addr. Each attack prints one RESULT line (key=value, see docs/benchmarks.md) that
// `hostile report` turns into the table.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	if err != nil && !errors.Is(err, errUsage) {
		fmt.Fprintln(os.Stderr, "hostile:", err)
	}
	if err != nil {
		os.Exit(1)
	}
}

// errUsage is returned after the usage text has been printed.
var errUsage = errors.New("usage")

const usage = `usage: hostile canary|sample|attack|newcomer|report|flood-child [flags]
  hostile attack N --help   lists an attack's flags; N is 1-8 (docs/benchmarks.md, "Hostile clients")
`

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return errUsage
	}
	switch args[0] {
	case "canary":
		return runCanary(ctx, args[1:], stdout, stderr)
	case "sample":
		return runSample(ctx, args[1:], stderr)
	case "attack":
		return runAttack(ctx, args[1:], stdout, stderr)
	case "newcomer":
		return runNewcomer(ctx, args[1:], stdout, stderr)
	case "report":
		return runReport(args[1:], stdout, stderr)
	case "flood-child":
		return runFloodChild(ctx, args[1:], stdout, stderr)
	case "-h", "--help", "help":
		fmt.Fprint(stdout, usage)
		return nil
	}
	fmt.Fprint(stderr, usage)
	return fmt.Errorf("unknown command %q", args[0])
}
