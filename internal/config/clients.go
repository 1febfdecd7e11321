package config

import (
	"flag"
	"fmt"
	"time"

	"github.com/switchboard-rtc/switchboard/internal/clientaddr"
)

// ClientLimits are the limits the server puts on each client (docs/limits.md). A client is
// an IPv4 address or an IPv6 /64 (ClientPrefixV4, ClientPrefixV6). Config embeds it, so its
// keys sit at the top level of the YAML file.
type ClientLimits struct {
	// ClientPrefixV4 and ClientPrefixV6 are the prefix lengths client addresses are
	// aggregated to for every per-client limit: a host usually has one IPv4 address but a
	// whole IPv6 /64 to pick addresses from.
	ClientPrefixV4 int `yaml:"client-prefix-v4"`
	ClientPrefixV6 int `yaml:"client-prefix-v6"`
	// SIOSessionsPerClient caps the Engine.IO sessions a client holds open at once.
	SIOSessionsPerClient int `yaml:"sio-sessions-per-client"`
	// ConnsPerClient caps the WebSocket connections (on /ws and Socket.IO's) a client holds
	// open at once.
	ConnsPerClient int `yaml:"conns-per-client"`
	// HTTPConnsPerClient caps the HTTP connections (not upgraded to a WebSocket) a client
	// holds open on the main listener; its further connections are answered 429.
	HTTPConnsPerClient int `yaml:"http-conns-per-client"`
	// TURNTCPPerClient caps a client's TCP connections to the TURN port.
	TURNTCPPerClient int `yaml:"turn-tcp-per-client"`
	// TURNAllocateTimeout closes a TCP connection to the TURN port that has not allocated
	// (nor bound a relayed TCP connection) this long after connecting.
	TURNAllocateTimeout time.Duration `yaml:"turn-allocate-timeout"`
}

// DefaultClientLimits returns the built-in per-client limits.
func DefaultClientLimits() ClientLimits {
	return ClientLimits{
		ClientPrefixV4:       clientaddr.DefaultV4,
		ClientPrefixV6:       clientaddr.DefaultV6,
		SIOSessionsPerClient: 64,
		ConnsPerClient:       256,
		HTTPConnsPerClient:   256,
		TURNTCPPerClient:     32,
		TURNAllocateTimeout:  10 * time.Second,
	}
}

// Clients returns the aggregation of client addresses the per-client limits count under.
func (l *ClientLimits) Clients() clientaddr.Aggregator {
	return clientaddr.Aggregator{V4: l.ClientPrefixV4, V6: l.ClientPrefixV6}
}

func (l *ClientLimits) flags(fs *flag.FlagSet) {
	fs.IntVar(&l.ClientPrefixV4, "client-prefix-v4", l.ClientPrefixV4, "IPv4 prefix length that makes one client for per-client limits (32: each address)")
	fs.IntVar(&l.ClientPrefixV6, "client-prefix-v6", l.ClientPrefixV6, "IPv6 prefix length that makes one client for per-client limits (64: the block one subscriber gets)")
	fs.IntVar(&l.SIOSessionsPerClient, "sio-sessions-per-client", l.SIOSessionsPerClient, "Engine.IO sessions one client may hold open; more handshakes get 429")
	fs.IntVar(&l.ConnsPerClient, "conns-per-client", l.ConnsPerClient, "WebSocket connections (/ws and Socket.IO) one client may hold open; more upgrades get 429")
	fs.IntVar(&l.HTTPConnsPerClient, "http-conns-per-client", l.HTTPConnsPerClient, "HTTP connections (not WebSockets) one client may hold open; requests on more get 429 before any body is read")
	fs.IntVar(&l.TURNTCPPerClient, "turn-tcp-per-client", l.TURNTCPPerClient, "TCP connections to the TURN port per client, at most turn-max-allocations")
	fs.DurationVar(&l.TURNAllocateTimeout, "turn-allocate-timeout", l.TURNAllocateTimeout, "close a TCP connection to the TURN port that has not allocated this long after connecting")
}

func (l *ClientLimits) validate() []error {
	var errs []error
	if l.ClientPrefixV4 < 1 || l.ClientPrefixV4 > 32 {
		errs = append(errs, fmt.Errorf("client-prefix-v4 %d: want 1 to 32", l.ClientPrefixV4))
	}
	if l.ClientPrefixV6 < 1 || l.ClientPrefixV6 > 128 {
		errs = append(errs, fmt.Errorf("client-prefix-v6 %d: want 1 to 128", l.ClientPrefixV6))
	}
	if l.SIOSessionsPerClient < 1 {
		errs = append(errs, fmt.Errorf("sio-sessions-per-client %d: must be at least 1", l.SIOSessionsPerClient))
	}
	if l.ConnsPerClient < 1 {
		errs = append(errs, fmt.Errorf("conns-per-client %d: must be at least 1", l.ConnsPerClient))
	}
	if l.HTTPConnsPerClient < 1 {
		errs = append(errs, fmt.Errorf("http-conns-per-client %d: must be at least 1", l.HTTPConnsPerClient))
	}
	if l.TURNTCPPerClient < 1 {
		errs = append(errs, fmt.Errorf("turn-tcp-per-client %d: must be at least 1", l.TURNTCPPerClient))
	}
	if l.TURNAllocateTimeout <= 0 {
		errs = append(errs, fmt.Errorf("turn-allocate-timeout %v: must be positive", l.TURNAllocateTimeout))
	}
	return errs
}
