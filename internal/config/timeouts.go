package config

import (
	"flag"
	"fmt"
	"time"
)

// Timeouts bound how long a client may take at each step before the server gives up on it
// (docs/limits.md). Config embeds it, so its keys sit at the top level of the YAML file.
type Timeouts struct {
	// HeaderTimeout bounds the request line and headers of every HTTP request, the WebSocket
	// and Engine.IO handshakes included.
	HeaderTimeout time.Duration `yaml:"header-timeout"`
	// ReadTimeout bounds a request body, from the end of the headers to its last byte.
	// Requests without a body (WebSocket upgrades, long-polling GETs) are not affected.
	ReadTimeout time.Duration `yaml:"read-timeout"`
	// FrameTimeout bounds a WebSocket frame, and a fragmented message, from its first byte
	// to its last; past it the connection is closed with 1008.
	FrameTimeout time.Duration `yaml:"frame-timeout"`
	// ConnectTimeout bounds the time from an Engine.IO handshake to the Socket.IO CONNECT
	// (Socket.IO's connectTimeout); a session that has not connected by then is closed.
	ConnectTimeout time.Duration `yaml:"connect-timeout"`
	// UpgradeTimeout bounds an Engine.IO upgrade from polling to WebSocket, from the
	// WebSocket's opening to the upgrade packet (Engine.IO's upgradeTimeout).
	UpgradeTimeout time.Duration `yaml:"upgrade-timeout"`
}

// DefaultTimeouts returns the built-in timeouts.
func DefaultTimeouts() Timeouts {
	return Timeouts{
		HeaderTimeout:  10 * time.Second,
		ReadTimeout:    30 * time.Second,
		FrameTimeout:   10 * time.Second,
		ConnectTimeout: 45 * time.Second,
		UpgradeTimeout: 10 * time.Second,
	}
}

func (t *Timeouts) flags(fs *flag.FlagSet) {
	fs.DurationVar(&t.HeaderTimeout, "header-timeout", t.HeaderTimeout, "how long a client may take to send an HTTP request's headers (WebSocket and Socket.IO handshakes included)")
	fs.DurationVar(&t.ReadTimeout, "read-timeout", t.ReadTimeout, "how long a client may take to send an HTTP request body (long-polling POSTs, API calls)")
	fs.DurationVar(&t.FrameTimeout, "frame-timeout", t.FrameTimeout, "how long a WebSocket frame or fragmented message may take to arrive once begun (then close 1008)")
	fs.DurationVar(&t.ConnectTimeout, "connect-timeout", t.ConnectTimeout, "how long a Socket.IO session may stay open without sending CONNECT")
	fs.DurationVar(&t.UpgradeTimeout, "upgrade-timeout", t.UpgradeTimeout, "how long a Socket.IO client may take to upgrade from long-polling to WebSocket once the WebSocket is open")
}

func (t *Timeouts) validate() []error {
	var errs []error
	for _, d := range []struct {
		name string
		v    time.Duration
	}{
		{"header-timeout", t.HeaderTimeout}, {"read-timeout", t.ReadTimeout},
		{"frame-timeout", t.FrameTimeout}, {"connect-timeout", t.ConnectTimeout},
		{"upgrade-timeout", t.UpgradeTimeout},
	} {
		if d.v <= 0 {
			errs = append(errs, fmt.Errorf("%s %v: must be positive", d.name, d.v))
		}
	}
	return errs
}
