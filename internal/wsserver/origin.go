package wsserver

import (
	"fmt"
	"net"
	"net/http"
	"net/url"
	"path"
	"strings"
)

// origin is a web origin, normalized: lower-case scheme "http" or "https" (ws and wss count as
// those), lower-case host, and the port spelled out only when it is not the scheme's default.
type origin struct{ scheme, hostport string }

// makeOrigin normalizes a scheme and a host[:port]; ok is false for a scheme that is not
// http(s) or ws(s), or an empty host.
func makeOrigin(scheme, hostport string) (origin, bool) {
	scheme = strings.ToLower(scheme)
	def := ""
	switch scheme {
	case "http", "ws":
		scheme, def = "http", "80"
	case "https", "wss":
		scheme, def = "https", "443"
	default:
		return origin{}, false
	}
	hostport = strings.ToLower(hostport)
	host, port, err := net.SplitHostPort(hostport)
	if err != nil {
		host, port = hostport, "" // no port
	}
	host = strings.TrimSuffix(strings.TrimPrefix(host, "["), "]")
	if host == "" {
		return origin{}, false
	}
	if port == "" || port == def {
		if strings.Contains(host, ":") {
			return origin{scheme, "[" + host + "]"}, true
		}
		return origin{scheme, host}, true
	}
	return origin{scheme, net.JoinHostPort(host, port)}, true
}

// parseOrigin parses an Origin header value (or a URL): scheme://host[:port].
func parseOrigin(s string) (origin, bool) {
	u, err := url.Parse(s)
	if err != nil || u.Host == "" || u.User != nil {
		return origin{}, false
	}
	return makeOrigin(u.Scheme, u.Host)
}

// parsePublicURL parses Config.PublicURL; "" gives nil.
func parsePublicURL(s string) (*origin, error) {
	if s == "" {
		return nil, nil
	}
	u, err := url.Parse(s)
	if err != nil {
		return nil, fmt.Errorf("public URL %q: %w", s, err)
	}
	if u.Scheme != "http" && u.Scheme != "https" || u.Host == "" || u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		return nil, fmt.Errorf("public URL %q: want http(s)://host[:port]", s)
	}
	o, ok := makeOrigin(u.Scheme, u.Host)
	if !ok {
		return nil, fmt.Errorf("public URL %q: want http(s)://host[:port]", s)
	}
	return &o, nil
}

func (c *Config) validateOrigins() error {
	if _, err := parsePublicURL(c.PublicURL); err != nil {
		return fmt.Errorf("wsserver: %w", err)
	}
	for _, o := range c.AllowedOrigins {
		if err := checkOriginPattern(o); err != nil {
			return fmt.Errorf("wsserver: %w", err)
		}
	}
	return nil
}

// checkOriginPattern checks one allowed-origins entry.
func checkOriginPattern(p string) error {
	if p == "*" {
		return nil
	}
	host := strings.TrimSuffix(p, "/") // "https://app.example.com/" is written often enough
	if i := strings.Index(host, "://"); i >= 0 {
		if _, ok := makeOrigin(host[:i], "x"); !ok {
			return fmt.Errorf("allowed origin %q: scheme must be http or https", p)
		}
		host = host[i+3:]
	}
	if host == "" || strings.ContainsAny(host, "/?#@") {
		return fmt.Errorf("allowed origin %q: want scheme://host[:port] or a host pattern", p)
	}
	if _, err := path.Match(host, ""); err != nil {
		return fmt.Errorf("allowed origin %q: %w", p, err)
	}
	return nil
}

// requestOrigin is the origin r was addressed to: https when it came over TLS, else http, and
// its Host.
func requestOrigin(r *http.Request) (origin, bool) {
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	return makeOrigin(scheme, r.Host)
}

// HostAllowed reports whether r is addressed to this server: always, unless PublicURL is set,
// in which case r's Host must be PublicURL's host and port. A browser tricked into sending
// requests for another name to this server (DNS rebinding) sees them refused.
func (s *Server) HostAllowed(r *http.Request) bool {
	if s.public == nil {
		return true
	}
	got, ok := makeOrigin(s.public.scheme, r.Host)
	return ok && got.hostport == s.public.hostport
}

// OriginAllowed reports whether r's Origin passes the server's policy (see originAllowed), for
// other endpoints that share it.
func (s *Server) OriginAllowed(r *http.Request) bool { return s.originAllowed(r) }

// originAllowed accepts requests with no Origin (non-browser clients), same-origin requests
// (same scheme, host and port as PublicURL, or without it as the request itself: https when it
// came over TLS), and origins matching AllowedOrigins.
func (s *Server) originAllowed(r *http.Request) bool {
	raw := r.Header.Get("Origin")
	if raw == "" {
		return true
	}
	o, ok := parseOrigin(raw)
	if !ok {
		return false
	}
	if s.public != nil {
		if o == *s.public {
			return true
		}
	} else if own, ok := requestOrigin(r); ok && (o == own || behindTLSProxy(r, own, o)) {
		return true
	}
	for _, p := range s.cfg.AllowedOrigins {
		if originMatches(p, o) {
			return true
		}
	}
	s.hintProxy(r, o)
	return false
}

// behindTLSProxy reports whether an https page of the request's own host and port reaches it
// over plain HTTP: a proxy in front ends TLS and forwards the Host. Such a page is the
// server's own (more strictly served than an http one), so it counts as same-origin without
// --public-url.
func behindTLSProxy(r *http.Request, own, o origin) bool {
	return r.TLS == nil && own.scheme == "http" && o.scheme == "https" && o.hostport == own.hostport
}

// hintProxy logs once why an https page of the server's own host is refused when the request
// came over plain HTTP: TLS ends at a proxy in front, and --public-url says so.
func (s *Server) hintProxy(r *http.Request, o origin) {
	if s.public != nil || r.TLS != nil || o.scheme != "https" || s.proxyHinted.Load() {
		return
	}
	own, ok := requestOrigin(r)
	if !ok || hostOnly(own.hostport) != hostOnly(o.hostport) || s.proxyHinted.Swap(true) {
		return
	}
	s.log.Warn("refusing a browser whose https page has this server's own host, because the request came over plain HTTP: behind a proxy that ends TLS, set --public-url to the page's origin",
		"origin", "https://"+o.hostport)
}

func hostOnly(hostport string) string {
	if h, _, err := net.SplitHostPort(hostport); err == nil {
		return h
	}
	return strings.TrimSuffix(strings.TrimPrefix(hostport, "["), "]")
}

// originMatches matches an origin against an allowed-origins entry: "*"; scheme://host[:port]
// where host may be a pattern ("https://*.example.com"); or a bare host pattern
// ("*.example.com", "app.example.com:8443"), any scheme.
func originMatches(p string, o origin) bool {
	if p == "*" {
		return true
	}
	scheme, host := "", strings.TrimSuffix(p, "/")
	if i := strings.Index(host, "://"); i >= 0 {
		scheme, host = host[:i], host[i+3:]
	}
	if scheme != "" {
		want, ok := makeOrigin(scheme, "x")
		if !ok || want.scheme != o.scheme {
			return false
		}
	}
	// Normalize the pattern's port against the origin's scheme, so "https://a.example.com:443"
	// and "https://a.example.com" mean the same.
	pat, ok := makeOrigin(o.scheme, host)
	if !ok {
		return false
	}
	m, _ := path.Match(pat.hostport, o.hostport)
	return m
}
