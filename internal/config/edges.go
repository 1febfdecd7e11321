package config

import (
	"flag"
	"fmt"
	"net"
	"net/url"
)

// edgeFlags adds the flags of the server's edges: its public URL and where /metrics is served.
func edgeFlags(fs *flag.FlagSet, c *Config) {
	fs.StringVar(&c.PublicURL, "public-url", c.PublicURL, "URL browsers reach the server at, e.g. https://call.example.com: its origin is the server's own, and requests for another Host are refused (DNS rebinding); empty: the request's own")
	fs.StringVar(&c.MetricsListen, "metrics-listen", c.MetricsListen, "serve /metrics on this address too, e.g. 127.0.0.1:9090 (empty: only on the main listener)")
	fs.BoolVar(&c.MetricsPublic, "metrics-public", c.MetricsPublic, "serve /metrics on the main listener to any client (default: loopback clients only)")
	fs.IntVar(&c.FDReserve, "fd-reserve", c.FDReserve, "file descriptors kept below the process limit: within them new WebSocket connections get 503, so /healthz, /readyz and /metrics keep answering (0: none)")
}

func (c *Config) validateEdges() []error {
	var errs []error
	if c.PublicURL != "" {
		u, err := url.Parse(c.PublicURL)
		if err != nil || u.Scheme != "http" && u.Scheme != "https" || u.Host == "" || u.User != nil || u.RawQuery != "" || u.Fragment != "" {
			errs = append(errs, fmt.Errorf("public-url %q: want http(s)://host[:port], e.g. https://call.example.com", c.PublicURL))
		}
	}
	// allowed-origins entries are checked by the WebSocket server when it starts.
	if c.MetricsListen != "" {
		if _, _, err := net.SplitHostPort(c.MetricsListen); err != nil {
			errs = append(errs, fmt.Errorf("metrics-listen %q: want host:port: %w", c.MetricsListen, err))
		}
	}
	if c.FDReserve < 0 {
		errs = append(errs, fmt.Errorf("fd-reserve %d: must not be negative", c.FDReserve))
	}
	return errs
}
