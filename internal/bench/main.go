package bench

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/switchboard-rtc/switchboard/internal/auth"
)

// ErrUsage is returned (wrapped) for bad arguments; the usage has already been
// printed to stderr.
var ErrUsage = errors.New("bench: usage")

const usageText = `usage: switchboard bench <mode> [flags]

modes:
  signal    pairs of clients relay offer/answer/ICE candidates (closed loop or paced)
  idle      hold many idle connections and measure the server's memory per connection
  connect   open and close connections as fast as possible (--api-key KEY_ID:SECRET: each
            join carries an access token, for a server started with that key)
  setup     Go peer SDK: time from join to data channel open, beside a bare Pion pair
            ("bench connect" in the SDK issue; connect above is the server's handshakes)
  throughput
            Go peer SDK: data channel MB/s on loopback, beside Pion's flow-control
            example and loopback TCP
  resume    clients join, then come back when their node goes away (restart, drain): time
            to every presence resumed, and every peer-left heard (bench/resume.sh)
  soak      clients message each other for a long time while their connections are cut,
            they churn and their servers restart: lost, duplicated, resumed (bench/soak.sh)

common flags (signal, idle, connect; setup and throughput have their own):
  --proto native|socketio   protocol (default native)
  --url URL                 server URL (native ` + defaultNativeURL + `,
                            socketio ` + defaultSocketIOURL + `)
  --pid PID                 server process to sample CPU time and RSS from /proc
  --source-ips K            spread connections over 127.0.0.1..127.0.0.K (default 8)
  --concurrency N           parallel connection setups / connect workers (default 50)
  --dial-timeout D          bound on one connection's TCP+WebSocket+protocol handshake (default 10s)
  --ca FILE                 wss:// URLs: trust the certificates in this PEM file (a test CA, or
                            the server's own self-signed certificate) instead of the system's
  --insecure                wss:// URLs: do not check the server's certificate at all

Run "switchboard bench <mode> --help" for the mode's flags.
`

// options holds every mode's settings.
type options struct {
	mode        string
	proto       protoKind
	url         string
	url2        string // signal: callers connect here (a second cluster node) when set
	pid         int
	sourceIPs   int
	concurrency int
	dialTimeout time.Duration
	trust       tlsTrust // wss:// URLs: --ca, --insecure

	// signal and connect
	duration, warmup time.Duration

	// connect: join with access tokens signed by this key (nil: no tokens)
	apiKey *auth.Key

	// signal
	pairs    int
	rate     float64
	sdpBytes int
	grace    time.Duration

	// idle
	conns          int
	settle         time.Duration
	roomSize       int
	connectTimeout time.Duration
}

// Main runs `switchboard bench <mode> [flags]`; args excludes "bench". It
// prints human-readable figures and a final RESULT line to stdout, and
// diagnostics to stderr.
func Main(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if err := run(ctx, args, stdout, stderr); err != nil && !errors.Is(err, flag.ErrHelp) {
		return err // -h printed the mode's usage: not an error
	}
	return nil
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		fmt.Fprint(stderr, usageText)
		if len(args) == 0 {
			return fmt.Errorf("%w: missing mode", ErrUsage)
		}
		return nil
	}
	switch args[0] { // the peer SDK modes have their own flags
	case "setup":
		return runSetup(ctx, args[1:], stdout, stderr)
	case "throughput":
		return runThroughput(ctx, args[1:], stdout, stderr)
	case "resume":
		return runResume(ctx, args[1:], stdout, stderr)
	case "soak":
		return runSoak(ctx, args[1:], stdout, stderr)
	}
	opts, err := parseOptions(args, stderr)
	if err != nil {
		return err
	}
	switch opts.mode {
	case "signal":
		return runSignal(ctx, opts, stdout, stderr)
	case "idle":
		return runIdle(ctx, opts, stdout, stderr)
	case "connect":
		return runConnect(ctx, opts, stdout, stderr)
	}
	return fmt.Errorf("%w: unknown mode %q", ErrUsage, opts.mode)
}

// parseOptions parses a mode and its flags.
func parseOptions(args []string, stderr io.Writer) (*options, error) {
	o := &options{mode: args[0]}
	switch o.mode {
	case "signal", "idle", "connect":
	default:
		fmt.Fprint(stderr, usageText)
		return nil, fmt.Errorf("%w: unknown mode %q", ErrUsage, o.mode)
	}
	fs := flag.NewFlagSet("switchboard bench "+o.mode, flag.ContinueOnError)
	fs.SetOutput(stderr)
	proto := fs.String("proto", "native", "protocol: native or socketio")
	fs.StringVar(&o.url, "url", "", "server URL (default depends on --proto)")
	fs.IntVar(&o.pid, "pid", 0, "server process id to sample CPU time and RSS from /proc (0: none)")
	fs.IntVar(&o.sourceIPs, "source-ips", 8, "spread connections over source addresses 127.0.0.1..127.0.0.K (loopback URLs only)")
	fs.IntVar(&o.concurrency, "concurrency", 50, "parallel connection setups (signal, idle) or connect workers (connect)")
	fs.DurationVar(&o.dialTimeout, "dial-timeout", 10*time.Second, "bound on one connection's TCP, WebSocket and protocol handshake")
	caFile := fs.String("ca", "", "wss:// URLs: trust the certificates in this PEM file instead of the system's roots")
	fs.BoolVar(&o.trust.insecure, "insecure", false, "wss:// URLs: do not check the server's certificate (benchmarks only)")
	switch o.mode {
	case "signal":
		fs.IntVar(&o.pairs, "pairs", 500, "number of caller/callee pairs")
		fs.StringVar(&o.url2, "url2", "", "callers connect to this server URL (another node of the same cluster), callees to --url: every relay crosses nodes")
		fs.Float64Var(&o.rate, "rate", 0, "total relayed messages/s across all pairs (0: closed loop)")
		fs.DurationVar(&o.duration, "duration", 10*time.Second, "measured window")
		fs.DurationVar(&o.warmup, "warmup", 2*time.Second, "load before the measured window")
		fs.IntVar(&o.sdpBytes, "sdp-bytes", defaultSDPBytes, "target size of the generated offer and answer SDP (honoured from about 2800 to 5300)")
		fs.DurationVar(&o.grace, "grace", 5*time.Second, "after the window, how long in-flight rounds may take to finish")
	case "idle":
		fs.IntVar(&o.conns, "conns", 10000, "connections to hold open")
		fs.DurationVar(&o.settle, "settle", 5*time.Second, "wait after the last connection before sampling RSS")
		fs.IntVar(&o.roomSize, "room-size", 1, "native: peers per room (1: each connection in its own room, 2: pairs)")
		fs.DurationVar(&o.connectTimeout, "connect-timeout", 2*time.Minute, "bound on opening all connections")
	case "connect":
		fs.DurationVar(&o.duration, "duration", 10*time.Second, "measured window")
		fs.DurationVar(&o.warmup, "warmup", 2*time.Second, "load before the measured window")
		fs.Func("api-key", "native: join with access tokens signed by this KEY_ID:SECRET (the server's --api-keys), one per worker, minted before the run", func(v string) error {
			k, err := auth.ParseKey(v)
			if err != nil {
				return err
			}
			o.apiKey = &k
			return nil
		})
	}
	if err := fs.Parse(args[1:]); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrUsage, err)
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("%w: unexpected argument %q", ErrUsage, fs.Arg(0))
	}
	var err error
	if o.proto, err = parseProto(*proto); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrUsage, err)
	}
	if *caFile != "" {
		if o.trust.insecure {
			return nil, fmt.Errorf("%w: --ca and --insecure: pick one", ErrUsage)
		}
		if o.trust.roots, err = loadCA(*caFile); err != nil {
			return nil, fmt.Errorf("%w: %w", ErrUsage, err)
		}
	}
	if o.url == "" {
		o.url = defaultNativeURL
		if o.proto == protoSocketIO {
			o.url = defaultSocketIOURL
		}
	}
	if err := o.validate(); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrUsage, err)
	}
	return o, nil
}

func (o *options) validate() error {
	switch {
	case o.pid < 0:
		return errors.New("--pid must be >= 0")
	case o.concurrency < 1:
		return errors.New("--concurrency must be >= 1")
	case o.dialTimeout <= 0:
		return errors.New("--dial-timeout must be > 0")
	case o.warmup < 0:
		return errors.New("--warmup must be >= 0")
	}
	switch o.mode {
	case "signal":
		switch {
		case o.pairs < 1:
			return errors.New("--pairs must be >= 1")
		case o.rate < 0:
			return errors.New("--rate must be >= 0")
		case o.duration <= 0:
			return errors.New("--duration must be > 0")
		case o.sdpBytes < 500 || o.sdpBytes > 60000:
			return errors.New("--sdp-bytes must be in 500..60000")
		}
	case "idle":
		switch {
		case o.conns < 1:
			return errors.New("--conns must be >= 1")
		case o.roomSize < 1 || o.roomSize > 2:
			return errors.New("--room-size must be 1 or 2")
		case o.settle < 0:
			return errors.New("--settle must be >= 0")
		}
	case "connect":
		if o.duration <= 0 {
			return errors.New("--duration must be > 0")
		}
		if o.apiKey != nil && o.proto != protoNative {
			return errors.New("--api-key: tokens are for the native protocol only")
		}
	}
	return nil
}

// newRunID returns a short random tag that makes room names unique per run.
func newRunID() string {
	var b [4]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// resultLine builds the machine-readable summary: "RESULT k=v k=v ...".
type resultLine struct {
	b strings.Builder
}

func newResultLine(mode string, p protoKind) *resultLine {
	r := &resultLine{}
	r.b.WriteString("RESULT mode=" + mode + " proto=" + p.String())
	return r
}

func (r *resultLine) str(k, v string) { r.b.WriteString(" " + k + "=" + v) }

func (r *resultLine) int(k string, v int64) { r.str(k, strconv.FormatInt(v, 10)) }

func (r *resultLine) float(k string, v float64, prec int) {
	r.str(k, strconv.FormatFloat(v, 'f', prec, 64))
}

// optFloat writes v, or NA when it is not available.
func (r *resultLine) optFloat(k string, v float64, ok bool, prec int) {
	if !ok {
		r.str(k, "NA")
		return
	}
	r.float(k, v, prec)
}

func (r *resultLine) String() string { return r.b.String() }

// sleepCtx waits d or until ctx is done.
func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("interrupted: %w", context.Cause(ctx))
	}
}
