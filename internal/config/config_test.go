package config

import (
	"bytes"
	"errors"
	"flag"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/switchboard-rtc/switchboard/protocol"
)

// fakeEnv returns a getenv func over m.
func fakeEnv(m map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) {
		v, ok := m[k]
		return v, ok
	}
}

// writeYAML writes a config file into a fresh temporary directory and returns its path.
func writeYAML(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "switchboard.yaml")
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestLoadPrecedence(t *testing.T) {
	const fileYAML = `
listen: ":9001"
max-peers: 10
rate-limit: 50
ping-interval: 5s
peer-timeout: 20s
allowed-origins: ["https://file.example"]
ice-servers:
  - urls: ["turn:turn.example.org:3478"]
    username: u
    credential: c
`
	fromFile := func(c *Config) {
		c.Listen = ":9001"
		c.MaxPeers = 10
		c.RateLimit = 50
		c.PingInterval = 5 * time.Second
		c.PeerTimeout = 20 * time.Second
		c.AllowedOrigins = []string{"https://file.example"}
		c.ICEServers = []protocol.ICEServer{{URLs: []string{"turn:turn.example.org:3478"}, Username: "u", Credential: "c"}}
	}
	tests := []struct {
		name string
		yaml string // written to a temp file and passed with --config when set
		env  map[string]string
		args []string
		want func(c *Config)
	}{
		{name: "defaults", want: func(c *Config) {}},
		{name: "file", yaml: fileYAML, want: fromFile},
		{name: "empty file", yaml: "", want: func(c *Config) {}},
		{name: "file of comments", yaml: "# nothing set\n", want: func(c *Config) {}},
		{name: "env over defaults", env: map[string]string{
			"SWITCHBOARD_LISTEN": ":7000", "SWITCHBOARD_MAX_PEERS": "3", "SWITCHBOARD_LOG_FORMAT": "json",
			"SWITCHBOARD_SHUTDOWN_TIMEOUT": "1m", "SWITCHBOARD_RATE_BURST": "2.5",
			"SWITCHBOARD_ALLOWED_ORIGINS": "https://a.example, *.b.example,,",
			"SWITCHBOARD_ICE_SERVERS":     "stun:s.example:3478,turns:t.example",
		}, want: func(c *Config) {
			c.Listen = ":7000"
			c.MaxPeers = 3
			c.LogFormat = "json"
			c.ShutdownTimeout = time.Minute
			c.RateBurst = 2.5
			c.AllowedOrigins = []string{"https://a.example", "*.b.example"}
			c.ICEServers = []protocol.ICEServer{{URLs: []string{"stun:s.example:3478"}}, {URLs: []string{"turns:t.example"}}}
		}},
		{name: "env over file", yaml: fileYAML, env: map[string]string{
			"SWITCHBOARD_MAX_PEERS": "20", "SWITCHBOARD_ALLOWED_ORIGINS": "https://env.example",
			"SWITCHBOARD_ICE_SERVERS": "stun:env.example",
		}, want: func(c *Config) {
			fromFile(c)
			c.MaxPeers = 20
			c.AllowedOrigins = []string{"https://env.example"}
			c.ICEServers = []protocol.ICEServer{{URLs: []string{"stun:env.example"}}}
		}},
		{name: "flags over env over file", yaml: fileYAML,
			env:  map[string]string{"SWITCHBOARD_MAX_PEERS": "20", "SWITCHBOARD_LISTEN": ":7000", "SWITCHBOARD_RATE_LIMIT": "70"},
			args: []string{"--max-peers=30", "-rate-limit", "90.5", "--allowed-origins", "https://flag.example", "--peer-timeout=1m"},
			want: func(c *Config) {
				fromFile(c)
				c.MaxPeers = 30
				c.Listen = ":7000"
				c.RateLimit = 90.5
				c.AllowedOrigins = []string{"https://flag.example"}
				c.PeerTimeout = time.Minute
			}},
		{name: "flag equal to the default still beats env and file", yaml: fileYAML,
			env:  map[string]string{"SWITCHBOARD_MAX_PEERS": "20"},
			args: []string{"--max-peers=50", "--listen=:8080"},
			want: func(c *Config) {
				fromFile(c)
				c.MaxPeers = 50
				c.Listen = ":8080"
			}},
		{name: "flag list replaces env list", env: map[string]string{"SWITCHBOARD_ALLOWED_ORIGINS": "a,b"},
			args: []string{"--allowed-origins=c"},
			want: func(c *Config) { c.AllowedOrigins = []string{"c"} }},
		{name: "empty env list clears file list", yaml: fileYAML, env: map[string]string{"SWITCHBOARD_ALLOWED_ORIGINS": ""},
			want: func(c *Config) { fromFile(c); c.AllowedOrigins = nil }},
		{name: "flag ice servers replace file ones", yaml: fileYAML, args: []string{"--ice-servers=stun:a,stun:b"},
			want: func(c *Config) {
				fromFile(c)
				c.ICEServers = []protocol.ICEServer{{URLs: []string{"stun:a"}}, {URLs: []string{"stun:b"}}}
			}},
		{name: "last flag wins", args: []string{"--max-peers=5", "--max-peers=6"}, want: func(c *Config) { c.MaxPeers = 6 }},
		{name: "turn-allow-peer repeats; flags replace env, env replaces file", yaml: "turn-allow-peer: [\"10.0.0.0/8\"]\n",
			env:  map[string]string{"SWITCHBOARD_TURN_ALLOW_PEER": "192.168.0.0/16"},
			args: []string{"--turn-allow-peer=127.0.0.0/8", "--turn-allow-peer", "::1/128,172.16.0.0/12"},
			want: func(c *Config) { c.TURNAllowPeers = []string{"127.0.0.0/8", "::1/128", "172.16.0.0/12"} }},
		{name: "turn-allow-peer from env over file", yaml: "turn-allow-peer: [\"10.0.0.0/8\"]\n",
			env:  map[string]string{"SWITCHBOARD_TURN_ALLOW_PEER": "192.168.0.0/16,127.0.0.1"},
			want: func(c *Config) { c.TURNAllowPeers = []string{"192.168.0.0/16", "127.0.0.1"} }},
		{name: "turn settings from every source", yaml: "turn-secret: file-secret\nturn-ttl: 5m\n",
			env:  map[string]string{"SWITCHBOARD_TURN_PUBLIC_IP": "198.51.100.7", "SWITCHBOARD_TURN": "false"},
			args: []string{"--turn-listen=127.0.0.1:0", "--turn=true"},
			want: func(c *Config) {
				c.TURNSecret, c.TURNTTL, c.TURNPublicIP, c.TURNListen = "file-secret", 5*time.Minute, "198.51.100.7", "127.0.0.1:0"
			}},
		{name: "cluster from file and flag", yaml: "nats: nats://10.0.0.1:4222\nnats-node-timeout: 5s\n",
			args: []string{"--nats-heartbeat=500ms"},
			want: func(c *Config) {
				c.NATS = "nats://10.0.0.1:4222"
				c.NATSNodeTimeout = 5 * time.Second
				c.NATSHeartbeat = 500 * time.Millisecond
			}},
		{name: "durations from every source", yaml: "ping-interval: 2s\npeer-timeout: 1m\nshutdown-timeout: 3s\n",
			env:  map[string]string{"SWITCHBOARD_PEER_TIMEOUT": "90s"},
			args: []string{"--shutdown-timeout=4s"},
			want: func(c *Config) {
				c.PingInterval = 2 * time.Second
				c.PeerTimeout = 90 * time.Second
				c.ShutdownTimeout = 4 * time.Second
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			args := tt.args
			if tt.yaml != "" || strings.Contains(tt.name, "file") {
				args = append([]string{"--config", writeYAML(t, tt.yaml)}, args...)
			}
			var usage bytes.Buffer
			got, err := Load(args, fakeEnv(tt.env), &usage)
			if err != nil {
				t.Fatalf("Load(%q) error: %v", args, err)
			}
			want := Default()
			tt.want(&want)
			if !reflect.DeepEqual(got, want) {
				t.Errorf("Load(%q) =\n%+v\nwant\n%+v", args, got, want)
			}
			if usage.Len() != 0 {
				t.Errorf("Load wrote usage on success: %s", usage.String())
			}
		})
	}
}

func TestLoadConfigPathSources(t *testing.T) {
	fileA := writeYAML(t, "max-peers: 11\n")
	fileB := writeYAML(t, "max-peers: 12\n")
	missing := filepath.Join(t.TempDir(), "missing.yaml")

	got, err := Load(nil, fakeEnv(map[string]string{"SWITCHBOARD_CONFIG": fileA}), io.Discard)
	if err != nil || got.MaxPeers != 11 {
		t.Errorf("SWITCHBOARD_CONFIG: MaxPeers = %d, err %v; want 11", got.MaxPeers, err)
	}
	got, err = Load([]string{"--config=" + fileB}, fakeEnv(map[string]string{"SWITCHBOARD_CONFIG": fileA}), io.Discard)
	if err != nil || got.MaxPeers != 12 {
		t.Errorf("--config over SWITCHBOARD_CONFIG: MaxPeers = %d, err %v; want 12", got.MaxPeers, err)
	}
	got, err = Load([]string{"--config=" + fileB}, fakeEnv(map[string]string{"SWITCHBOARD_CONFIG": missing}), io.Discard)
	if err != nil || got.MaxPeers != 12 {
		t.Errorf("--config over a missing SWITCHBOARD_CONFIG: MaxPeers = %d, err %v; want 12", got.MaxPeers, err)
	}
	if _, err := Load([]string{"--config", missing}, fakeEnv(nil), io.Discard); err == nil || !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing --config file: err = %v, want a not-exist error", err)
	}
	if _, err := Load(nil, fakeEnv(map[string]string{"SWITCHBOARD_CONFIG": missing}), io.Discard); err == nil {
		t.Errorf("missing SWITCHBOARD_CONFIG file: err = nil")
	}
	// An empty path means no file.
	if got, err := Load([]string{"--config="}, fakeEnv(nil), io.Discard); err != nil || !reflect.DeepEqual(got, Default()) {
		t.Errorf("--config=\"\": %+v, %v", got, err)
	}
}

func TestLoadErrors(t *testing.T) {
	tests := []struct {
		name    string
		yaml    string // written to a temp file and passed with --config when set
		env     map[string]string
		args    []string
		wantErr string // substring of the error
	}{
		{name: "unknown yaml key", yaml: "listen: \":1\"\nmax_peers: 3\n", wantErr: "max_peers"},
		{name: "unknown nested yaml key", yaml: "ice-servers:\n  - urls: [\"stun:a\"]\n    password: x\n", wantErr: "password"},
		{name: "yaml wrong type", yaml: "max-peers: lots\n", wantErr: "lots"},
		{name: "yaml bad duration", yaml: "ping-interval: soon\n", wantErr: "config"},
		{name: "yaml syntax", yaml: "listen: [\n", wantErr: "config"},
		{name: "env bad int", env: map[string]string{"SWITCHBOARD_MAX_PEERS": "many"}, wantErr: "SWITCHBOARD_MAX_PEERS"},
		{name: "env bad duration", env: map[string]string{"SWITCHBOARD_PING_INTERVAL": "10"}, wantErr: "SWITCHBOARD_PING_INTERVAL"},
		{name: "env bad ice scheme", env: map[string]string{"SWITCHBOARD_ICE_SERVERS": "stun:ok,http://bad"}, wantErr: "SWITCHBOARD_ICE_SERVERS"},
		{name: "flag bad ice scheme", args: []string{"--ice-servers=https://stun.example"}, wantErr: "ice-servers"},
		{name: "flag ice url without scheme", args: []string{"--ice-servers=stun.example.org"}, wantErr: "ice-servers"},
		{name: "unknown flag", args: []string{"--max-peer=3"}, wantErr: "max-peer"},
		{name: "node timeout within two heartbeats", args: []string{"--nats=nats://127.0.0.1:4222", "--nats-heartbeat=2s", "--nats-node-timeout=3s"}, wantErr: "nats-node-timeout"},
		{name: "flag bad int", args: []string{"--max-peers=x"}, wantErr: "max-peers"},
		{name: "positional argument", args: []string{"extra"}, wantErr: "extra"},
		{name: "bad log-format flag", args: []string{"--log-format=xml"}, wantErr: "log-format"},
		{name: "bad log-format env", env: map[string]string{"SWITCHBOARD_LOG_FORMAT": "JSON"}, wantErr: "log-format"},
		{name: "bad log-format yaml", yaml: "log-format: logfmt\n", wantErr: "log-format"},
		{name: "peer-timeout equal to ping-interval", args: []string{"--ping-interval=10s", "--peer-timeout=10s"}, wantErr: "peer-timeout"},
		{name: "peer-timeout below ping-interval", env: map[string]string{"SWITCHBOARD_PING_INTERVAL": "1m"}, wantErr: "peer-timeout"},
		{name: "peer-timeout below ping-interval from yaml", yaml: "peer-timeout: 5s\n", wantErr: "peer-timeout"},
		{name: "max-peers 1", args: []string{"--max-peers=1"}, wantErr: "max-peers"},
		{name: "rate-limit 0", args: []string{"--rate-limit=0"}, wantErr: "rate-limit"},
		{name: "rate-burst below 1", args: []string{"--rate-burst=0.5"}, wantErr: "rate-burst"},
		{name: "shutdown-timeout 0", args: []string{"--shutdown-timeout=0s"}, wantErr: "shutdown-timeout"},
		{name: "turn-ttl over the cap", args: []string{"--turn-ttl=25h"}, wantErr: "turn-ttl"},
		{name: "turn-ttl 0", args: []string{"--turn-ttl=0s"}, wantErr: "turn-ttl"},
		{name: "turn-public-ip not an address", args: []string{"--turn-public-ip=turn.example.org"}, wantErr: "turn-public-ip"},
		{name: "turn-allow-peer not a CIDR", env: map[string]string{"SWITCHBOARD_TURN_ALLOW_PEER": "loopback"}, wantErr: "turn-allow-peer"},
		{name: "turn ports reversed", args: []string{"--turn-min-port=5000", "--turn-max-port=4000"}, wantErr: "turn-min-port"},
		{name: "turn user quota 0", args: []string{"--turn-user-quota=0"}, wantErr: "turn-user-quota"},
		{name: "turn cap above the port range", args: []string{"--turn-min-port=50000", "--turn-max-port=50009"}, wantErr: "turn-max-allocations"},
		{name: "turn ip quota 0", env: map[string]string{"SWITCHBOARD_TURN_IP_QUOTA": "0"}, wantErr: "turn-ip-quota"},
		{name: "turn-listen without port", yaml: "turn-listen: localhost\n", wantErr: "turn-listen"},
		{name: "turn-urls without secret", args: []string{"--turn-urls=turn:turn.example.org"}, wantErr: "turn-secret"},
		{name: "turn-urls bad scheme", args: []string{"--turn-secret=s", "--turn-urls=http://turn.example.org"}, wantErr: "turn-urls"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			args := tt.args
			if tt.yaml != "" {
				args = append([]string{"--config", writeYAML(t, tt.yaml)}, args...)
			}
			_, err := Load(args, fakeEnv(tt.env), io.Discard)
			if err == nil {
				t.Fatalf("Load(%q, env %v) = nil error, want one mentioning %q", args, tt.env, tt.wantErr)
			}
			if !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("Load error %q does not mention %q", err, tt.wantErr)
			}
		})
	}
}

// TestLoadReportsEveryValidationError checks that Validate reports all problems at once.
func TestLoadReportsEveryValidationError(t *testing.T) {
	_, err := Load([]string{"--log-format=xml", "--max-peers=0", "--peer-timeout=1s"}, fakeEnv(nil), io.Discard)
	if err == nil {
		t.Fatal("want an error")
	}
	for _, s := range []string{"log-format", "max-peers", "peer-timeout"} {
		if !strings.Contains(err.Error(), s) {
			t.Errorf("error %q does not mention %s", err, s)
		}
	}
}

// TestLoadRejectsBadICEServerURLFromYAML checks that the YAML file is held to the same ICE
// server URL rule as the flag and the environment (stun:, turn: or turns:).
func TestLoadRejectsBadICEServerURLFromYAML(t *testing.T) {
	for _, body := range []string{
		"ice-servers:\n  - urls: [\"http://stun.example.org\"]\n",
		"ice-servers:\n  - urls: [\"stun:ok.example\", \"ftp://bad\"]\n",
	} {
		p := writeYAML(t, body)
		if cfg, err := Load([]string{"--config", p}, fakeEnv(nil), io.Discard); err == nil {
			t.Errorf("Load with YAML %q = %+v, nil error; want ice-servers rejected", body, cfg.ICEServers)
		}
	}
}

func TestLoadHelp(t *testing.T) {
	var out bytes.Buffer
	_, err := Load([]string{"--help"}, fakeEnv(nil), &out)
	if !errors.Is(err, flag.ErrHelp) {
		t.Fatalf("Load(--help) error = %v, want flag.ErrHelp", err)
	}
	usage := out.String()
	if !strings.Contains(usage, "Usage: switchboard serve") {
		t.Errorf("usage has no synopsis:\n%s", usage)
	}
	var cfg Config
	var path string
	n := 0
	FlagSet(&cfg, &path).VisitAll(func(f *flag.Flag) {
		n++
		line := "--" + f.Name + "\n"
		i := strings.Index(usage, "  "+line)
		if i < 0 {
			t.Errorf("usage does not list --%s", f.Name)
			return
		}
		// The description line that follows names the env variable.
		rest := usage[i+2+len(line):]
		if j := strings.IndexByte(rest, '\n'); j >= 0 {
			rest = rest[:j]
		}
		if env := EnvName(f.Name); !strings.Contains(rest, "env "+env+")") {
			t.Errorf("usage line for --%s = %q, want it to name %s", f.Name, rest, env)
		}
		if !strings.Contains(rest, f.Usage) {
			t.Errorf("usage line for --%s = %q, want its description %q", f.Name, rest, f.Usage)
		}
	})
	// Timeouts, ClientLimits, ClientRates and Memory are embedded fields with a flag per field
	// of their own; + --config.
	if want := reflect.TypeOf(Config{}).NumField() - 5 + reflect.TypeOf(TLS{}).NumField() - 1 + reflect.TypeOf(ACME{}).NumField() + reflect.TypeOf(Timeouts{}).NumField() + reflect.TypeOf(ClientLimits{}).NumField() +
		reflect.TypeOf(ClientRates{}).NumField() + reflect.TypeOf(Memory{}).NumField() + 1; n != want {
		t.Errorf("FlagSet has %d flags, want %d", n, want)
	}
	// -h works too.
	out.Reset()
	if _, err := Load([]string{"-h"}, fakeEnv(nil), &out); !errors.Is(err, flag.ErrHelp) || out.Len() == 0 {
		t.Errorf("Load(-h) = %v with %d bytes of usage", err, out.Len())
	}
}

// TestEveryOptionHasAllSpellings checks the package's promise that every flag is also a YAML
// key of the same name (and so an environment variable via EnvName).
func TestEveryOptionHasAllSpellings(t *testing.T) {
	keys := map[string]bool{}
	var walk func(typ reflect.Type)
	walk = func(typ reflect.Type) {
		for i := 0; i < typ.NumField(); i++ {
			tag := typ.Field(i).Tag.Get("yaml")
			if tag == ",inline" { // an embedded group of keys (Timeouts)
				walk(typ.Field(i).Type)
				continue
			}
			keys[strings.Split(tag, ",")[0]] = true
		}
	}
	walk(reflect.TypeOf(Config{}))
	var cfg Config
	var path string
	flags := map[string]bool{}
	FlagSet(&cfg, &path).VisitAll(func(f *flag.Flag) {
		flags[f.Name] = true
		if f.Name != "config" && !keys[f.Name] {
			t.Errorf("flag --%s has no YAML key", f.Name)
		}
	})
	for k := range keys {
		if !flags[k] {
			t.Errorf("YAML key %s has no flag", k)
		}
	}
}

func TestEnvName(t *testing.T) {
	for in, want := range map[string]string{
		"max-peers":       "SWITCHBOARD_MAX_PEERS",
		"listen":          "SWITCHBOARD_LISTEN",
		"allowed-origins": "SWITCHBOARD_ALLOWED_ORIGINS",
		"config":          "SWITCHBOARD_CONFIG",
	} {
		if got := EnvName(in); got != want {
			t.Errorf("EnvName(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestDefaultIsValid(t *testing.T) {
	c := Default()
	if err := c.Validate(); err != nil {
		t.Errorf("Default().Validate() = %v", err)
	}
}

// The edge options load and are checked: public-url must be an http(s) origin, metrics-listen
// a host:port.
func TestEdgeOptions(t *testing.T) {
	cfg, err := Load([]string{"--public-url", "https://call.example.com", "--metrics-listen", "127.0.0.1:9090", "--metrics-public"},
		func(string) (string, bool) { return "", false }, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.PublicURL != "https://call.example.com" || cfg.MetricsListen != "127.0.0.1:9090" || !cfg.MetricsPublic {
		t.Fatalf("got %+v", cfg)
	}
	for _, args := range [][]string{
		{"--public-url", "call.example.com"},
		{"--public-url", "ftp://call.example.com"},
		{"--public-url", "https://user:pw@call.example.com"},
		{"--metrics-listen", "9090"},
	} {
		if _, err := Load(args, func(string) (string, bool) { return "", false }, io.Discard); err == nil {
			t.Errorf("%v accepted", args)
		} else if !strings.Contains(err.Error(), strings.TrimPrefix(args[0], "--")) {
			t.Errorf("%v: error %q does not name the option", args, err)
		}
	}
}
