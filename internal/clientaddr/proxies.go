package clientaddr

import (
	"fmt"
	"net/http"
	"net/netip"
	"strings"
)

// Proxies are the reverse proxies (--trusted-proxies) whose forwarding headers name the client
// of a request. Behind them every request's TCP peer is a proxy, and the client is found in
// the Forwarded header (RFC 7239, its for= parameters) or in X-Forwarded-For: the list is
// walked from the right — the hop the nearest proxy added — over the addresses that are
// themselves trusted proxies, and the first untrusted address is the client. Whatever a client
// writes into those headers itself sits to the left of what the proxies append, so it is never
// reached: a client cannot pick its own address by prepending one.
//
// A nil *Proxies trusts nobody: the client is always the TCP peer. Methods are safe for
// concurrent use.
type Proxies struct {
	trusted []netip.Prefix
	// ignored, when set, is called when forwarding headers from a trusted proxy cannot be
	// used (IgnoredMalformed, IgnoredConflict) and the proxy's own address is taken.
	ignored func(reason string)
}

// Why a trusted proxy's forwarding headers were ignored (the reason given to NewProxies'
// callback, a metric label).
const (
	// IgnoredMalformed: the part of the header the walk reached is not a list of addresses.
	IgnoredMalformed = "malformed"
	// IgnoredConflict: Forwarded and X-Forwarded-For both came and name different clients.
	// One of them was written by the client (a proxy that sets one passes the other on as
	// it came), and nothing tells which: neither is believed.
	IgnoredConflict = "conflict"
)

// NewProxies parses the trusted proxies: CIDRs ("10.0.0.0/8") or single addresses
// ("192.0.2.7"). ignored, when not nil, is told each time a trusted proxy's headers are
// ignored and why. An empty list gives nil: nobody is trusted.
func NewProxies(list []string, ignored func(reason string)) (*Proxies, error) {
	if len(list) == 0 {
		return nil, nil
	}
	p := &Proxies{ignored: ignored}
	for _, s := range list {
		pre, err := ParsePrefix(s)
		if err != nil {
			return nil, fmt.Errorf("clientaddr: trusted proxy %q: want a CIDR like 10.0.0.0/8 or an address", s)
		}
		p.trusted = append(p.trusted, pre)
	}
	return p, nil
}

// ParsePrefix parses a CIDR, or a single address as its own /32 or /128; IPv4-mapped IPv6
// forms count as IPv4 and the host bits are masked off.
func ParsePrefix(s string) (netip.Prefix, error) {
	s = strings.TrimSpace(s)
	if p, err := netip.ParsePrefix(s); err == nil {
		a := p.Addr()
		bits := p.Bits()
		if a.Is4In6() {
			if bits < 96 {
				return netip.Prefix{}, fmt.Errorf("clientaddr: %q: an IPv4-mapped prefix shorter than 96 bits", s)
			}
			a, bits = a.Unmap(), bits-96
		}
		return netip.PrefixFrom(a, bits).Masked(), nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil || a.Zone() != "" {
		return netip.Prefix{}, fmt.Errorf("clientaddr: %q is neither a CIDR nor an address", s)
	}
	a = a.Unmap()
	return netip.PrefixFrom(a, a.BitLen()), nil
}

// Trusted reports whether ip is one of the trusted proxies.
func (p *Proxies) Trusted(ip netip.Addr) bool {
	if p == nil || !ip.IsValid() {
		return false
	}
	ip = ip.Unmap().WithZone("")
	for _, t := range p.trusted {
		if t.Contains(ip) {
			return true
		}
	}
	return false
}

// Source says where a Client's address came from.
type Source uint8

// Sources of a client address.
const (
	// FromPeer: the TCP peer, not a trusted proxy (or one that forwarded nothing).
	FromPeer Source = iota
	// FromHeader: a forwarding header of a trusted proxy.
	FromHeader
	// FromFallback: the TCP peer, a trusted proxy whose forwarding headers could not be used
	// (malformed, or Forwarded and X-Forwarded-For disagree): the real client is unknown.
	FromFallback
)

// Client is the client of a request as the trusted proxies tell it.
type Client struct {
	// IP is the client's address (unmapped, without a zone); the zero Addr when the TCP
	// peer has none.
	IP netip.Addr
	// From says where IP came from.
	From Source
}

// ClientIP returns the client address of r: its TCP peer, or behind a trusted proxy the one
// its forwarding headers name (see Proxies).
func (p *Proxies) ClientIP(r *http.Request) netip.Addr {
	return p.Resolve(PeerIP(r), r.Header).IP
}

// PeerIP returns the address of r's TCP peer (RemoteAddr), unmapped; the zero Addr when it
// has none.
func PeerIP(r *http.Request) netip.Addr {
	if ap, err := netip.ParseAddrPort(r.RemoteAddr); err == nil {
		return ap.Addr().Unmap().WithZone("")
	}
	if a, err := netip.ParseAddr(r.RemoteAddr); err == nil {
		return a.Unmap().WithZone("")
	}
	return netip.Addr{}
}

// Forwarded reports whether h carries any forwarding header (Forwarded, X-Forwarded-For,
// X-Real-IP): a proxy stands between the client and the server, whoever it is.
func Forwarded(h http.Header) bool {
	return len(h.Values("Forwarded")) > 0 || len(h.Values("X-Forwarded-For")) > 0 || len(h.Values("X-Real-IP")) > 0
}

// Resolve returns the client of a request whose TCP peer is peer and whose headers are h. The
// result's IP is always peer or an address written in h.
func (p *Proxies) Resolve(peer netip.Addr, h http.Header) Client {
	peer = peer.Unmap().WithZone("")
	if !p.Trusted(peer) {
		return Client{IP: peer, From: FromPeer}
	}
	fwd, xff := h.Values("Forwarded"), h.Values("X-Forwarded-For")
	if len(fwd) == 0 && len(xff) == 0 {
		return Client{IP: peer, From: FromPeer}
	}
	var fromFwd, fromXFF netip.Addr
	okFwd, okXFF := true, true
	if len(fwd) > 0 {
		fromFwd, okFwd = p.walk(peer, fwd, forwardedElements)
	}
	if len(xff) > 0 {
		fromXFF, okXFF = p.walk(peer, xff, xffElements)
	}
	switch {
	case !okFwd || !okXFF:
		p.ignore(IgnoredMalformed)
		return Client{IP: peer, From: FromFallback}
	case len(fwd) > 0 && len(xff) > 0 && fromFwd != fromXFF:
		p.ignore(IgnoredConflict)
		return Client{IP: peer, From: FromFallback}
	case len(fwd) > 0:
		return Client{IP: fromFwd, From: FromHeader}
	default:
		return Client{IP: fromXFF, From: FromHeader}
	}
}

func (p *Proxies) ignore(reason string) {
	if p.ignored != nil {
		p.ignored(reason)
	}
}

// node is one element of a forwarding list: an address, or a hop the proxy could or would
// not name ("unknown", an obfuscated "_identifier", an element without for=), the zero Addr.
type node struct {
	ip  netip.Addr
	bad bool // not a node at all: the header is malformed
}

// splitter returns the elements of one header line, in order, or false when the line cannot
// be split.
type splitter func(line string) ([]node, bool)

// walk goes through the header lines from the last element of the last line to the first of
// the first, passing over trusted addresses, and returns the first untrusted one. An element
// that names no address ends the walk with the last trusted address passed (the peer, if
// none): that proxy could not tell who came before it. When every address is trusted, the
// first (leftmost) one is the client. It reports false when an element the walk reaches is
// malformed, or a line it reaches cannot be split; whatever is left of the client is never
// used, malformed or not.
func (p *Proxies) walk(peer netip.Addr, lines []string, split splitter) (netip.Addr, bool) {
	last := peer
	for i := len(lines) - 1; i >= 0; i-- {
		nodes, ok := split(lines[i])
		if !ok {
			return netip.Addr{}, false
		}
		for j := len(nodes) - 1; j >= 0; j-- {
			n := nodes[j]
			switch {
			case n.bad:
				return netip.Addr{}, false
			case !n.ip.IsValid():
				return last, true
			case !p.Trusted(n.ip):
				return n.ip, true
			}
			last = n.ip
		}
	}
	return last, true
}

// xffElements splits an X-Forwarded-For line: comma-separated addresses, each optionally with
// a port ("192.0.2.1:4711", "[2001:db8::1]:4711"); "unknown" stands for a hop not named. Empty
// elements are skipped, as in every HTTP list.
func xffElements(line string) ([]node, bool) {
	parts := strings.Split(line, ",")
	out := make([]node, 0, len(parts))
	for _, s := range parts {
		s = ows(s)
		switch {
		case s == "":
		case strings.EqualFold(s, "unknown"):
			out = append(out, node{})
		default:
			ip, ok := parseNodeAddr(s)
			out = append(out, node{ip: ip, bad: !ok})
		}
	}
	return out, true
}

// forwardedElements splits a Forwarded line (RFC 7239 §4): comma-separated elements of
// semicolon-separated name=value pairs, values tokens or quoted strings; an element's for=
// is its node, and an element that does not parse is a bad node (which matters only if the
// walk reaches it). Empty elements are skipped. A line with an unterminated quoted string is
// malformed as a whole: its elements cannot be told apart (a client's open quote would
// swallow what a proxy appended).
func forwardedElements(line string) ([]node, bool) {
	var out []node
	rest, more := line, true
	for more {
		var el string
		var ok bool
		el, rest, more, ok = cutElement(rest)
		if !ok {
			return nil, false
		}
		if ows(el) == "" {
			continue
		}
		n, ok := forwardedNode(el)
		n.bad = !ok
		out = append(out, n)
	}
	return out, true
}

// cutElement returns the text up to the first comma outside a quoted string and the text
// after it; more is false when there was no such comma (el is then all of s). ok is false
// for an unterminated quoted string.
func cutElement(s string) (el, rest string, more, ok bool) {
	inQuote := false
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case inQuote && c == '\\':
			i++ // quoted-pair: the next byte is literal
		case c == '"':
			inQuote = !inQuote
		case c == ',' && !inQuote:
			return s[:i], s[i+1:], true, true
		}
	}
	if inQuote {
		return "", "", false, false
	}
	return s, "", false, true
}

// forwardedNode reads the for= of one forwarded-element. An element without for= names no
// address (a proxy may leave it out); a repeated for=, a pair without '=', or a for= value
// that is not a node (RFC 7239 §6) makes it malformed.
func forwardedNode(el string) (node, bool) {
	var val string
	seen := false
	for _, pair := range splitPairs(el) {
		pair = ows(pair)
		if pair == "" {
			continue
		}
		name, v, ok := strings.Cut(pair, "=")
		if !ok || !isToken(ows(name)) {
			return node{}, false
		}
		if !strings.EqualFold(ows(name), "for") {
			continue
		}
		if seen {
			return node{}, false
		}
		seen = true
		if val, ok = unquote(ows(v)); !ok {
			return node{}, false
		}
	}
	if !seen {
		return node{}, true
	}
	return parseForwardedFor(val)
}

// splitPairs splits an element at the semicolons outside quoted strings.
func splitPairs(el string) []string {
	var out []string
	inQuote, start := false, 0
	for i := 0; i < len(el); i++ {
		switch c := el[i]; {
		case inQuote && c == '\\':
			i++
		case c == '"':
			inQuote = !inQuote
		case c == ';' && !inQuote:
			out = append(out, el[start:i])
			start = i + 1
		}
	}
	return append(out, el[start:])
}

// unquote returns a token as it is, or the content of a quoted string; ok is false for
// anything else (an empty value, stray quotes).
func unquote(v string) (string, bool) {
	if len(v) >= 2 && v[0] == '"' && v[len(v)-1] == '"' {
		var b strings.Builder
		in := v[1 : len(v)-1]
		for i := 0; i < len(in); i++ {
			c := in[i]
			if c == '\\' {
				if i+1 == len(in) {
					return "", false
				}
				i++
				c = in[i]
			} else if c == '"' {
				return "", false
			}
			b.WriteByte(c)
		}
		return b.String(), true
	}
	if v == "" || strings.ContainsRune(v, '"') {
		return "", false
	}
	return v, true
}

// isToken reports whether s is an RFC 7230 token.
func isToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c <= ' ' || c >= 0x7f || strings.IndexByte(`"(),/:;<=>?@[\]{}`, c) >= 0 {
			return false
		}
	}
	return true
}

// parseForwardedFor parses a for= value: "unknown" or an obfuscated identifier ("_hidden")
// name no address; otherwise an IPv4 address or a bracketed IPv6 one, each optionally with a
// port or an obfuscated port ("192.0.2.43:47011", "[2001:db8:cafe::17]:_port").
func parseForwardedFor(v string) (node, bool) {
	if strings.EqualFold(v, "unknown") {
		return node{}, true
	}
	if strings.HasPrefix(v, "_") {
		if !obfuscated(v[1:]) {
			return node{}, false
		}
		return node{}, true
	}
	ip, ok := parseNodeAddr(v)
	return node{ip: ip}, ok
}

// obfuscated reports whether s (after the '_') is 1*(ALPHA / DIGIT / "." / "_" / "-").
func obfuscated(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

// parseNodeAddr parses an address with an optional port: "192.0.2.1", "192.0.2.1:80",
// "[2001:db8::1]", "[2001:db8::1]:80", a bare "2001:db8::1"; an obfuscated port ("_p") is
// accepted after an address. Zones are refused: no proxy forwards one.
func parseNodeAddr(s string) (netip.Addr, bool) {
	host := s
	if strings.HasPrefix(s, "[") {
		end := strings.IndexByte(s, ']')
		if end < 0 {
			return netip.Addr{}, false
		}
		host = s[1:end]
		if rest := s[end+1:]; rest != "" && !validPort(rest) {
			return netip.Addr{}, false
		}
	} else if strings.Count(s, ":") == 1 {
		i := strings.IndexByte(s, ':')
		host = s[:i]
		if !validPort(s[i:]) {
			return netip.Addr{}, false
		}
	}
	a, err := netip.ParseAddr(host)
	if err != nil || a.Zone() != "" || (strings.HasPrefix(s, "[") && !a.Is6()) {
		return netip.Addr{}, false
	}
	return a.Unmap(), true
}

// validPort reports whether s is ":" followed by 1-5 digits or an obfuscated port.
func validPort(s string) bool {
	if len(s) < 2 || s[0] != ':' {
		return false
	}
	s = s[1:]
	if s[0] == '_' {
		return obfuscated(s[1:])
	}
	if len(s) > 5 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// ows trims HTTP's optional whitespace (spaces and tabs) around s.
func ows(s string) string { return strings.Trim(s, " \t") }
