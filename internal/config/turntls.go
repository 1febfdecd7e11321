package config

import (
	"errors"
	"fmt"
	"net"
	"strconv"
)

// TURNTLSOff is the turn-tls-listen value that turns TURN over TLS off.
const TURNTLSOff = "off"

// TURNTLSShared reports whether TURN over TLS shares the HTTPS port (turn-tls-listen empty,
// TLS and the embedded TURN server on): after each TLS handshake the first bytes tell STUN
// from HTTP.
func (c *Config) TURNTLSShared() bool {
	return c.TURN && c.TLSOn() && c.TURNTLSListen == ""
}

// TURNTLSOwnPort reports whether TURN over TLS listens on a port of its own (turn-tls-listen
// host:port, TLS and the embedded TURN server on).
func (c *Config) TURNTLSOwnPort() bool {
	return c.TURN && c.TLSOn() && c.TURNTLSListen != "" && c.TURNTLSListen != TURNTLSOff
}

func (c *Config) validateTURNTLS() []error {
	if c.TURNTLSListen == "" || c.TURNTLSListen == TURNTLSOff {
		return nil
	}
	_, port, err := net.SplitHostPort(c.TURNTLSListen)
	if err == nil {
		if p, perr := strconv.Atoi(port); perr != nil || p < 0 || p > 65535 {
			err = fmt.Errorf("port %q", port)
		}
	}
	if err != nil {
		return []error{fmt.Errorf("turn-tls-listen %q: want host:port, empty (share the HTTPS port) or off: %w", c.TURNTLSListen, err)}
	}
	if !c.TLSOn() {
		return []error{errors.New("turn-tls-listen: TURN over TLS serves the HTTPS certificate: set tls-cert and tls-key, or tls-self-signed")}
	}
	return nil
}
