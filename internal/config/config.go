package config

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"sort"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/switchboard-rtc/switchboard/internal/resume"
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
	ResumeGrace time.Duration `yaml:"resume-grace"`
	// ResumeSecret signs resume tokens (comma list for rotation: the first signs, any
	// verifies; each ≥ 32 bytes); empty: on a cluster node the cluster's shared secret
	// (JetStream KV) when NATS has JetStream, else a random secret per process, so a restart
	// (or another node) cannot take presences back. ResumeTokenTTL is how long a token is
	// good for.
	ResumeSecret   string        `yaml:"resume-secret"`
	ResumeTokenTTL time.Duration `yaml:"resume-token-ttl"`
	// ResumeHoldEvents and ResumeHoldBytes bound each presence's outbox (events kept until
	// read, for a resume).
	ResumeHoldEvents int `yaml:"resume-hold-events"`
	ResumeHoldBytes  int `yaml:"resume-hold-bytes"`
	// StateFile, when set, is where a graceful restart (SIGTERM) writes the rooms, members
	// and resume secret, read back at the next start (a single node: a cluster node does not
	// use it, the other nodes take its presences over).
	StateFile      string   `yaml:"state-file"`
	AllowedOrigins []string `yaml:"allowed-origins"`
	EventLoops     int      `yaml:"event-loops"`

	// ICEServers are handed to peers in their welcome. The flag and variable take a comma
	// list of URLs without credentials; the YAML key takes RTCIceServer objects.
	ICEServers []protocol.ICEServer `yaml:"ice-servers"`

	// NATS, when set, makes the node one of a cluster sharing rooms over that NATS server
	// (docs/cluster.md); empty keeps rooms in this process.
	NATS            string        `yaml:"nats"`
	NATSHeartbeat   time.Duration `yaml:"nats-heartbeat"`
	NATSNodeTimeout time.Duration `yaml:"nats-node-timeout"`
	// The embedded STUN/TURN server (docs/turn.md). Each welcome carries its URLs with
	// credentials minted for that peer, after ICEServers.
	TURN       bool   `yaml:"turn"`
	TURNListen string `yaml:"turn-listen"`
	// TURNTLSListen is where TURN over TLS (turns: URLs) listens with the HTTPS certificate:
	// empty shares the HTTPS port (turntls.go), "off" turns it off.
	TURNTLSListen      string        `yaml:"turn-tls-listen"`
	TURNPublicIP       string        `yaml:"turn-public-ip"`
	TURNMinPort        int           `yaml:"turn-min-port"`
	TURNMaxPort        int           `yaml:"turn-max-port"`
	TURNRealm          string        `yaml:"turn-realm"`
	TURNSecret         string        `yaml:"turn-secret"`
	TURNTTL            time.Duration `yaml:"turn-ttl"`
	TURNGrace          time.Duration `yaml:"turn-grace"`
	TURNAllowPeers     []string      `yaml:"turn-allow-peer"`
	TURNUserQuota      int           `yaml:"turn-user-quota"`
	TURNMaxAllocations int           `yaml:"turn-max-allocations"`
	TURNIPQuota        int           `yaml:"turn-ip-quota"`
	// APIKeys are KEY_ID:SECRET pairs (docs/auth.md). With any, every join needs an access
	// token signed by one of them and the server API (/api/v1/) is on; without, the server is
	// open.
	APIKeys []string `yaml:"api-keys"`
	// WebhookURLs receive room-started, room-finished, peer-joined and peer-left as signed
	// JSON POSTs (docs/webhooks.md).
	WebhookURLs []string `yaml:"webhook-url"`
	// WebhookKey is the id of the API key whose secret signs webhooks (default: the first).
	WebhookKey string `yaml:"webhook-key"`
	// WebhookSecret, when set, signs webhooks instead of an API key: a receiver holding it
	// cannot mint access tokens.
	WebhookSecret  string        `yaml:"webhook-secret"`
	WebhookTimeout time.Duration `yaml:"webhook-timeout"`
	WebhookQueue   int           `yaml:"webhook-queue"`
	// TURNURLs are an external server's URLs (coturn with use-auth-secret and the same
	// TURNSecret) handed out with credentials minted per peer, beside or instead of ours.
	TURNURLs []string `yaml:"turn-urls"`
	// Edges (edges.go, docs/limits.md): the public URL that pins Origin and Host, and where
	// /metrics is served.
	PublicURL     string `yaml:"public-url"`
	MetricsListen string `yaml:"metrics-listen"`
	MetricsPublic bool   `yaml:"metrics-public"`
	// FDReserve is how many file descriptors below the process limit new WebSocket
	// connections are refused at (503), kept for probes, metrics and the API.
	FDReserve int `yaml:"fd-reserve"`
	// Timeouts for every step a client takes (docs/limits.md).
	Timeouts `yaml:",inline"`
	// Per-client limits and how clients are told apart (clients.go, docs/limits.md).
	ClientLimits `yaml:",inline"`
	// Memory: the memory budget and the kernel send buffer (memory.go, docs/limits.md).
	Memory `yaml:",inline"`
	// TLS: HTTPS and WSS on the main listener (tls.go).
	TLS `yaml:",inline"`
	// Per-client rates and the trusted proxies (proxies.go, docs/limits.md).
	ClientRates `yaml:",inline"`
}

// Default returns the built-in defaults.
func Default() Config {
	return Config{
		Listen:           ":8080",
		LogFormat:        "text",
		LogLevel:         "info",
		ShutdownTimeout:  10 * time.Second,
		MaxFrameBytes:    64 << 10,
		MaxMetaBytes:     1024,
		MaxPeers:         50,
		RateLimit:        200,
		RateBurst:        400,
		SendQueueBytes:   1 << 20,
		PingInterval:     10 * time.Second,
		PeerTimeout:      30 * time.Second,
		ResumeGrace:      15 * time.Second,
		ResumeTokenTTL:   time.Hour,
		ResumeHoldEvents: 256,
		ResumeHoldBytes:  256 << 10,
		NATSHeartbeat:    time.Second,
		WebhookTimeout:   5 * time.Second,
		WebhookQueue:     10000,
		NATSNodeTimeout:  10 * time.Second,

		TURN:               true,
		TURNListen:         ":3478",
		TURNMinPort:        49152,
		TURNMaxPort:        65535,
		TURNRealm:          "switchboard",
		TURNTTL:            10 * time.Minute,
		TURNGrace:          12 * time.Hour,
		TURNUserQuota:      100,
		TURNMaxAllocations: 4096,
		TURNIPQuota:        64,
		Timeouts:           DefaultTimeouts(),
		ClientLimits:       DefaultClientLimits(),
		Memory:             DefaultMemory(),
		ClientRates:        DefaultClientRates(),
		TLS:                TLS{ACME: DefaultACME()},
		FDReserve:          64,
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
	if c.ResumeTokenTTL < time.Second || c.ResumeTokenTTL < c.ResumeGrace {
		errs = append(errs, fmt.Errorf("resume-token-ttl %v must be at least 1s and at least resume-grace %v", c.ResumeTokenTTL, c.ResumeGrace))
	}
	if _, err := resume.ParseSecrets(c.ResumeSecret); err != nil {
		errs = append(errs, fmt.Errorf("resume-secret: %w", err))
	}
	if c.ResumeHoldEvents < 1 || c.ResumeHoldBytes < 1024 {
		errs = append(errs, fmt.Errorf("resume-hold-events %d / resume-hold-bytes %d: need at least 1 event and 1024 bytes", c.ResumeHoldEvents, c.ResumeHoldBytes))
	}
	if c.PeerTimeout <= c.PingInterval {
		errs = append(errs, fmt.Errorf("peer-timeout %v must exceed ping-interval %v", c.PeerTimeout, c.PingInterval))
	}
	if c.NATS != "" && (c.NATSHeartbeat <= 0 || c.NATSNodeTimeout <= 2*c.NATSHeartbeat) {
		errs = append(errs, fmt.Errorf("nats-node-timeout %v must exceed twice nats-heartbeat %v (positive)", c.NATSNodeTimeout, c.NATSHeartbeat))
	}
	errs = append(errs, c.validateTURN()...)
	errs = append(errs, c.validateAccess()...)
	errs = append(errs, c.validateEdges()...)
	errs = append(errs, c.Timeouts.validate()...)
	errs = append(errs, c.ClientLimits.validate()...)
	errs = append(errs, c.Memory.validate()...)
	errs = append(errs, c.TLS.validate()...)
	errs = append(errs, c.ClientRates.validate()...)
	return errors.Join(errs...)
}

// MaxTURNTTL caps turn-ttl.
const MaxTURNTTL = 24 * time.Hour

func (c *Config) validateTURN() []error {
	var errs []error
	for _, u := range c.TURNURLs {
		if err := checkICEURL(u); err != nil {
			errs = append(errs, fmt.Errorf("turn-urls: %w", err))
		}
	}
	if len(c.TURNURLs) > 0 && c.TURNSecret == "" {
		errs = append(errs, errors.New("turn-urls: needs turn-secret, the secret the external server shares"))
	}
	if len(c.TURNURLs) > 0 && (c.TURNTTL < time.Second || c.TURNTTL > MaxTURNTTL) {
		errs = append(errs, fmt.Errorf("turn-ttl %v: want 1s to %v", c.TURNTTL, MaxTURNTTL))
	}
	if !c.TURN {
		return errs
	}
	if _, _, err := net.SplitHostPort(c.TURNListen); err != nil {
		errs = append(errs, fmt.Errorf("turn-listen %q: want host:port: %w", c.TURNListen, err))
	}
	errs = append(errs, c.validateTURNTLS()...)
	if c.TURNPublicIP != "" {
		if _, err := netip.ParseAddr(c.TURNPublicIP); err != nil {
			errs = append(errs, fmt.Errorf("turn-public-ip %q: %w", c.TURNPublicIP, err))
		}
	}
	if _, err := c.TURNAllowPrefixes(); err != nil {
		errs = append(errs, err)
	}
	ports := c.TURNMaxPort - c.TURNMinPort + 1
	switch {
	case c.TURNMinPort < 1 || c.TURNMaxPort > 65535 || ports < 1:
		errs = append(errs, fmt.Errorf("turn-min-port %d / turn-max-port %d: want 1 <= min <= max <= 65535", c.TURNMinPort, c.TURNMaxPort))
	case c.TURNMaxAllocations < 1 || c.TURNMaxAllocations > ports:
		errs = append(errs, fmt.Errorf("turn-max-allocations %d: want 1 to the %d relay ports", c.TURNMaxAllocations, ports))
	case c.TURNUserQuota < 1 || c.TURNIPQuota < 1:
		// Both are capped at turn-max-allocations when the server starts.
		errs = append(errs, fmt.Errorf("turn-user-quota %d / turn-ip-quota %d: must be at least 1", c.TURNUserQuota, c.TURNIPQuota))
	}
	if c.TURNTTL < time.Second || c.TURNTTL > MaxTURNTTL {
		errs = append(errs, fmt.Errorf("turn-ttl %v: want 1s to %v", c.TURNTTL, MaxTURNTTL))
	}
	if c.TURNGrace < 0 {
		errs = append(errs, fmt.Errorf("turn-grace %v: must not be negative", c.TURNGrace))
	}
	if c.TURNRealm == "" {
		errs = append(errs, errors.New("turn-realm: must not be empty"))
	}
	return errs
}

// TURNAllowPrefixes parses turn-allow-peer: CIDRs, or single addresses.
func (c *Config) TURNAllowPrefixes() ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, s := range c.TURNAllowPeers {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			a, aerr := netip.ParseAddr(s)
			if aerr != nil {
				return nil, fmt.Errorf("turn-allow-peer %q: want a CIDR like 127.0.0.0/8: %w", s, err)
			}
			p = netip.PrefixFrom(a, a.BitLen())
		}
		out = append(out, p)
	}
	return out, nil
}

// appendValue is a list flag that may be repeated; each use takes a comma list. Load resets
// it before each source, so flags replace the environment, which replaces the file.
type appendValue struct{ p *[]string }

func (v appendValue) String() string { return listValue(v).String() }

func (v appendValue) Set(s string) error {
	var more []string
	if err := (listValue{&more}).Set(s); err != nil {
		return err
	}
	*v.p = append(*v.p, more...)
	return nil
}

func (v appendValue) reset() { *v.p = nil }

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
	fs.StringVar(&c.ResumeSecret, "resume-secret", c.ResumeSecret, "secret signing resume tokens, ≥ 32 bytes (comma list to rotate: the first signs, any verifies); empty: the cluster's shared one with --nats and JetStream, else random per process, so restarts (and other nodes) cannot resume")
	fs.DurationVar(&c.ResumeTokenTTL, "resume-token-ttl", c.ResumeTokenTTL, "how long a resume token is good for; connected clients get a fresh one at half of it")
	fs.IntVar(&c.ResumeHoldEvents, "resume-hold-events", c.ResumeHoldEvents, "events kept per peer until its client has read them, for a resume")
	fs.IntVar(&c.ResumeHoldBytes, "resume-hold-bytes", c.ResumeHoldBytes, "bytes of events kept per peer until its client has read them, for a resume")
	fs.StringVar(&c.StateFile, "state-file", c.StateFile, "on SIGTERM write rooms, members and the resume secret here (0600) and restore them at the next start (single node: not used with --nats)")
	fs.IntVar(&c.EventLoops, "event-loops", c.EventLoops, "WebSocket event loops (0: half the CPUs, at least 1)")
	fs.Var(listValue{&c.AllowedOrigins}, "allowed-origins", "browser origins allowed besides the server's own (comma list: https://app.example.com, https://*.example.com, or a host pattern like *.example.com for any scheme; * for any)")
	fs.Var(iceValue{&c.ICEServers}, "ice-servers", "STUN/TURN URLs handed to peers (comma list)")
	fs.StringVar(&c.NATS, "nats", c.NATS, "NATS URL (e.g. nats://127.0.0.1:4222): share rooms with the other nodes on it; empty: single node")
	fs.DurationVar(&c.NATSHeartbeat, "nats-heartbeat", c.NATSHeartbeat, "cluster: how often a node tells the others it is alive")
	fs.DurationVar(&c.NATSNodeTimeout, "nats-node-timeout", c.NATSNodeTimeout, "cluster: a node silent this long is dropped and its peers reported peer-left")
	fs.BoolVar(&c.TURN, "turn", c.TURN, "run the embedded STUN/TURN server and hand peers credentials for it (docs/turn.md)")
	fs.StringVar(&c.TURNListen, "turn-listen", c.TURNListen, "STUN/TURN listen address, UDP and TCP (port 0: any free port)")
	fs.StringVar(&c.TURNTLSListen, "turn-tls-listen", c.TURNTLSListen, "with TLS on, where TURN over TLS (turns: URLs) listens: empty shares the HTTPS port (STUN told from HTTP after the handshake), host:port a port of its own, off none")
	fs.StringVar(&c.TURNPublicIP, "turn-public-ip", c.TURNPublicIP, "address peers reach TURN at, in URLs and relay candidates (empty: the listen host, else the first non-loopback IPv4 address)")
	fs.IntVar(&c.TURNMinPort, "turn-min-port", c.TURNMinPort, "lowest relay port")
	fs.IntVar(&c.TURNMaxPort, "turn-max-port", c.TURNMaxPort, "highest relay port")
	fs.StringVar(&c.TURNRealm, "turn-realm", c.TURNRealm, "TURN realm")
	fs.StringVar(&c.TURNSecret, "turn-secret", c.TURNSecret, "TURN REST shared secret (coturn static-auth-secret); empty: random per process")
	fs.DurationVar(&c.TURNTTL, "turn-ttl", c.TURNTTL, "lifetime of minted TURN credentials for new allocations (max 24h)")
	fs.DurationVar(&c.TURNGrace, "turn-grace", c.TURNGrace, "how long past expiry an existing allocation may keep refreshing")
	fs.Var(appendValue{&c.TURNAllowPeers}, "turn-allow-peer", "peer CIDR the relay may use although not public (repeatable or comma list), e.g. 127.0.0.0/8")
	fs.IntVar(&c.TURNUserQuota, "turn-user-quota", c.TURNUserQuota, "live TURN allocations per peer (at most turn-max-allocations)")
	fs.IntVar(&c.TURNMaxAllocations, "turn-max-allocations", c.TURNMaxAllocations, "live TURN allocations in all")
	fs.IntVar(&c.TURNIPQuota, "turn-ip-quota", c.TURNIPQuota, "live TURN allocations per client (an IPv4 address or IPv6 /64, see client-prefix-v4/-v6), at most turn-max-allocations; users behind one carrier-grade NAT share it")
	fs.Var(listValue{&c.APIKeys}, "api-keys", "API keys KEY_ID:SECRET (comma list; 'switchboard key new' makes one): every join then needs an access token signed by one, and /api/v1/ is on (docs/auth.md)")
	fs.Var(appendValue{&c.WebhookURLs}, "webhook-url", "URL that receives room and peer events as signed JSON POSTs (repeatable or comma list; needs api-keys; docs/webhooks.md)")
	fs.StringVar(&c.WebhookKey, "webhook-key", c.WebhookKey, "id of the API key whose secret signs webhooks (empty: the first)")
	fs.StringVar(&c.WebhookSecret, "webhook-secret", c.WebhookSecret, "a secret (32+ characters) that signs webhooks instead of an API key, so receivers cannot mint access tokens")
	fs.DurationVar(&c.WebhookTimeout, "webhook-timeout", c.WebhookTimeout, "how long a webhook receiver may take to answer before the POST is retried")
	fs.IntVar(&c.WebhookQueue, "webhook-queue", c.WebhookQueue, "webhook events waiting per URL; past it the oldest are dropped (and counted)")
	fs.Var(listValue{&c.TURNURLs}, "turn-urls", "external STUN/TURN URLs (coturn use-auth-secret with the same --turn-secret) handed out with minted credentials (comma list)")
	edgeFlags(fs, c)
	c.Timeouts.flags(fs)
	c.ClientLimits.flags(fs)
	c.Memory.flags(fs)
	c.TLS.flags(fs)
	c.ClientRates.flags(fs)
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
			resetList(f.Value)
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
		resetList(fs.Lookup(name).Value)
		if e := fs.Lookup(name).Value.Set(v); e != nil {
			return cfg, fmt.Errorf("--%s: %w", name, e)
		}
	}
	return cfg, cfg.Validate()
}

// resetList empties a repeatable list flag before a source sets it.
func resetList(v flag.Value) {
	if a, ok := v.(appendValue); ok {
		a.reset()
	}
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
