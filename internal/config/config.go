package config

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sort"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/switchboard-rtc/switchboard/protocol"
)

// EnvPrefix prefixes every environment variable.
const EnvPrefix = "SWITCHBOARD_"

// Config is the configuration of `switchboard serve`.
type Config struct {
	Listen          string        `yaml:"listen"`
	LogFormat       string        `yaml:"log-format"`
	LogLevel        string        `yaml:"log-level"`
	ShutdownTimeout time.Duration `yaml:"shutdown-timeout"`

	MaxFrameBytes  int     `yaml:"max-frame-bytes"`
	MaxMetaBytes   int     `yaml:"max-meta-bytes"`
	MaxPeers       int     `yaml:"max-peers"`
	RateLimit      float64 `yaml:"rate-limit"`
	RateBurst      float64 `yaml:"rate-burst"`
	SendQueueBytes int     `yaml:"send-queue-bytes"`

	PingInterval time.Duration `yaml:"ping-interval"`
	PeerTimeout  time.Duration `yaml:"peer-timeout"`
	// ResumeGrace is how long a peer whose connection was lost keeps its place for a
	// reconnecting client to resume it; 0 disables resumption.
	ResumeGrace    time.Duration `yaml:"resume-grace"`
	AllowedOrigins []string      `yaml:"allowed-origins"`
	EventLoops     int           `yaml:"event-loops"`

	// ICEServers are handed to peers in their welcome. The flag and variable take a comma
	// list of URLs without credentials; the YAML key takes RTCIceServer objects.
	ICEServers []protocol.ICEServer `yaml:"ice-servers"`

	// NATS, when set, makes the node one of a cluster sharing rooms over that NATS server
	// (docs/cluster.md); empty keeps rooms in this process.
	NATS            string        `yaml:"nats"`
	NATSHeartbeat   time.Duration `yaml:"nats-heartbeat"`
	NATSNodeTimeout time.Duration `yaml:"nats-node-timeout"`
}

// Default returns the built-in defaults.
func Default() Config {
	return Config{
		Listen:          ":8080",
		LogFormat:       "text",
		LogLevel:        "info",
		ShutdownTimeout: 10 * time.Second,
		MaxFrameBytes:   64 << 10,
		MaxMetaBytes:    1024,
		MaxPeers:        50,
		RateLimit:       200,
		RateBurst:       400,
		SendQueueBytes:  1 << 20,
		PingInterval:    10 * time.Second,
		PeerTimeout:     30 * time.Second,
		ResumeGrace:     15 * time.Second,
		NATSHeartbeat:   time.Second,
		NATSNodeTimeout: 10 * time.Second,
	}
}

// Validate checks values that the components would otherwise reject later with less context.
func (c *Config) Validate() error {
	var errs []error
	if c.LogFormat != "text" && c.LogFormat != "json" {
		errs = append(errs, fmt.Errorf("log-format %q: want text or json", c.LogFormat))
	}
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(c.LogLevel)); err != nil {
		errs = append(errs, fmt.Errorf("log-level %q: want debug, info, warn or error", c.LogLevel))
	}
	if c.MaxFrameBytes < 128 || c.MaxMetaBytes < 0 || c.SendQueueBytes < c.MaxFrameBytes {
		errs = append(errs, fmt.Errorf("max-frame-bytes %d (min 128), max-meta-bytes %d (min 0), send-queue-bytes %d (min max-frame-bytes)",
			c.MaxFrameBytes, c.MaxMetaBytes, c.SendQueueBytes))
	}
	for _, s := range c.ICEServers {
		if len(s.URLs) == 0 {
			errs = append(errs, errors.New("ice-servers: an entry has no urls"))
		}
		for _, u := range s.URLs {
			if err := checkICEURL(u); err != nil {
				errs = append(errs, fmt.Errorf("ice-servers: %w", err))
			}
		}
	}
	if c.EventLoops < 0 {
		errs = append(errs, fmt.Errorf("event-loops %d: must be 0 (half the CPUs) or more", c.EventLoops))
	}
	if c.ShutdownTimeout <= 0 {
		errs = append(errs, fmt.Errorf("shutdown-timeout %v: must be positive", c.ShutdownTimeout))
	}
	if c.MaxPeers < 2 {
		errs = append(errs, fmt.Errorf("max-peers %d: a room needs at least 2", c.MaxPeers))
	}
	if c.RateLimit <= 0 || c.RateBurst < 1 {
		errs = append(errs, fmt.Errorf("rate-limit %v / rate-burst %v: must be positive", c.RateLimit, c.RateBurst))
	}
	if c.ResumeGrace < 0 || c.ResumeGrace > 10*time.Minute {
		errs = append(errs, fmt.Errorf("resume-grace %v must be between 0 (off) and 10m", c.ResumeGrace))
	}
	if c.PeerTimeout <= c.PingInterval {
		errs = append(errs, fmt.Errorf("peer-timeout %v must exceed ping-interval %v", c.PeerTimeout, c.PingInterval))
	}
	if c.NATS != "" && (c.NATSHeartbeat <= 0 || c.NATSNodeTimeout <= 2*c.NATSHeartbeat) {
		errs = append(errs, fmt.Errorf("nats-node-timeout %v must exceed twice nats-heartbeat %v (positive)", c.NATSNodeTimeout, c.NATSHeartbeat))
	}
	return errors.Join(errs...)
}

// listValue is a comma-separated list flag; each Set replaces the list.
type listValue struct{ p *[]string }

func (v listValue) String() string {
	if v.p == nil {
		return ""
	}
	return strings.Join(*v.p, ",")
}

func (v listValue) Set(s string) error {
	*v.p = nil
	for _, part := range strings.Split(s, ",") {
		if part = strings.TrimSpace(part); part != "" {
			*v.p = append(*v.p, part)
		}
	}
	return nil
}

// iceValue sets ICE servers from a comma list of URLs.
type iceValue struct{ p *[]protocol.ICEServer }

func (v iceValue) String() string {
	if v.p == nil {
		return ""
	}
	var urls []string
	for _, s := range *v.p {
		urls = append(urls, s.URLs...)
	}
	return strings.Join(urls, ",")
}

func (v iceValue) Set(s string) error {
	var urls []string
	if err := (listValue{&urls}).Set(s); err != nil {
		return err
	}
	*v.p = nil
	for _, u := range urls {
		if err := checkICEURL(u); err != nil {
			return err
		}
		*v.p = append(*v.p, protocol.ICEServer{URLs: []string{u}})
	}
	return nil
}

func checkICEURL(u string) error {
	for _, scheme := range []string{"stun:", "stuns:", "turn:", "turns:"} {
		if strings.HasPrefix(u, scheme) && len(u) > len(scheme) {
			return nil
		}
	}
	return fmt.Errorf("ICE server URL %q: want stun:, stuns:, turn: or turns:", u)
}

// FlagSet returns the serve flags bound to c, plus the --config flag bound to configPath.
func FlagSet(c *Config, configPath *string) *flag.FlagSet {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.StringVar(configPath, "config", "", "YAML config file (keys are the flag names)")
	fs.StringVar(&c.Listen, "listen", c.Listen, "HTTP listen address")
	fs.StringVar(&c.LogFormat, "log-format", c.LogFormat, "log format: text or json")
	fs.StringVar(&c.LogLevel, "log-level", c.LogLevel, "log level: debug, info, warn or error")
	fs.DurationVar(&c.ShutdownTimeout, "shutdown-timeout", c.ShutdownTimeout, "how long SIGTERM waits for peers to leave")
	fs.IntVar(&c.MaxFrameBytes, "max-frame-bytes", c.MaxFrameBytes, "largest WebSocket message accepted (bigger: close 1009)")
	fs.IntVar(&c.MaxMetaBytes, "max-meta-bytes", c.MaxMetaBytes, "largest peer metadata object accepted in a join")
	fs.IntVar(&c.MaxPeers, "max-peers", c.MaxPeers, "peers per room")
	fs.Float64Var(&c.RateLimit, "rate-limit", c.RateLimit, "messages per second a connection may send, sustained")
	fs.Float64Var(&c.RateBurst, "rate-burst", c.RateBurst, "messages a connection may send in a burst")
	fs.IntVar(&c.SendQueueBytes, "send-queue-bytes", c.SendQueueBytes, "bytes queued for a slow peer before it is dropped")
	fs.DurationVar(&c.PingInterval, "ping-interval", c.PingInterval, "ping a peer that has been quiet this long")
	fs.DurationVar(&c.PeerTimeout, "peer-timeout", c.PeerTimeout, "drop a peer silent this long")
	fs.DurationVar(&c.ResumeGrace, "resume-grace", c.ResumeGrace, "keep a lost connection's peer this long for the client to resume it (0: off)")
	fs.IntVar(&c.EventLoops, "event-loops", c.EventLoops, "WebSocket event loops (0: half the CPUs, at least 1)")
	fs.Var(listValue{&c.AllowedOrigins}, "allowed-origins", "browser origins allowed besides the server's own (comma list; patterns like *.example.com; * for any)")
	fs.Var(iceValue{&c.ICEServers}, "ice-servers", "STUN/TURN URLs handed to peers (comma list)")
	fs.StringVar(&c.NATS, "nats", c.NATS, "NATS URL (e.g. nats://127.0.0.1:4222): share rooms with the other nodes on it; empty: single node")
	fs.DurationVar(&c.NATSHeartbeat, "nats-heartbeat", c.NATSHeartbeat, "cluster: how often a node tells the others it is alive")
	fs.DurationVar(&c.NATSNodeTimeout, "nats-node-timeout", c.NATSNodeTimeout, "cluster: a node silent this long is dropped and its peers reported peer-left")
	return fs
}

// EnvName returns the environment variable for a flag name.
func EnvName(flagName string) string {
	return EnvPrefix + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

// Load parses args and builds the configuration: defaults, then the YAML file, then the
// environment (looked up with getenv), then the flags given in args.
func Load(args []string, getenv func(string) (string, bool), usageOut io.Writer) (Config, error) {
	cfg := Default()
	var configPath string
	fs := FlagSet(&cfg, &configPath)
	fs.SetOutput(usageOut)
	fs.Usage = func() { Usage(usageOut, fs) }
	if err := fs.Parse(args); err != nil {
		return cfg, err
	}
	if fs.NArg() > 0 {
		return cfg, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	given := map[string]string{}
	fs.Visit(func(f *flag.Flag) { given[f.Name] = f.Value.String() })

	// Start again from the defaults and apply the sources in order of precedence.
	cfg = Default()
	if p, ok := given["config"]; ok {
		configPath = p
	} else if v, ok := getenv(EnvName("config")); ok {
		configPath = v
	}
	if configPath != "" {
		if err := loadYAML(configPath, &cfg); err != nil {
			return cfg, err
		}
	}
	var err error
	fs.VisitAll(func(f *flag.Flag) {
		if f.Name == "config" || err != nil {
			return
		}
		if v, ok := getenv(EnvName(f.Name)); ok {
			if e := f.Value.Set(v); e != nil {
				err = fmt.Errorf("%s=%q: %w", EnvName(f.Name), v, e)
			}
		}
	})
	if err != nil {
		return cfg, err
	}
	for name, v := range given {
		if name == "config" {
			continue
		}
		if e := fs.Lookup(name).Value.Set(v); e != nil {
			return cfg, fmt.Errorf("--%s: %w", name, e)
		}
	}
	return cfg, cfg.Validate()
}

func loadYAML(path string, cfg *Config) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("config: %w", err)
	}
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(cfg); err != nil && !errors.Is(err, io.EOF) {
		return fmt.Errorf("config %s: %w", path, err)
	}
	return nil
}

// Usage prints the serve help: every flag with its default and environment variable.
func Usage(w io.Writer, fs *flag.FlagSet) {
	fmt.Fprintf(w, `Usage: switchboard serve [flags]

Runs the signaling server: GET /ws (native WebSocket protocol, docs/protocol.md), /healthz,
/readyz, /metrics (Prometheus) and /.

Every option can also be set in a YAML file (--config, keys are the flag names) or in the
environment (SWITCHBOARD_ + the flag name in capitals with _ for -). Flags win over the
environment, which wins over the file.

Flags:
`)
	var names []string
	fs.VisitAll(func(f *flag.Flag) { names = append(names, f.Name) })
	sort.Strings(names)
	for _, n := range names {
		f := fs.Lookup(n)
		def := f.DefValue
		if def == "" {
			def = `""`
		}
		fmt.Fprintf(w, "  --%s\n      %s (default %s; env %s)\n", n, f.Usage, def, EnvName(n))
	}
}
