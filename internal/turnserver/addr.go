package turnserver

import (
	"net"
	"net/netip"
)

// deniedRange is a range the relay refuses by default, with the reason reported by Classify.
type deniedRange struct {
	prefix netip.Prefix
	reason string
}

// deniedV4 are the IPv4 ranges that are not public unicast (RFC 6890 and successors).
var deniedV4 = ranges(
	"0.0.0.0/8", "this network (unspecified)",
	"10.0.0.0/8", "private",
	"100.64.0.0/10", "shared address space (CGNAT)",
	"127.0.0.0/8", "loopback",
	"169.254.0.0/16", "link-local (cloud metadata)",
	"172.16.0.0/12", "private",
	"192.0.0.0/24", "IETF protocol assignments",
	"192.0.2.0/24", "documentation",
	"192.88.99.0/24", "6to4 relay anycast",
	"192.168.0.0/16", "private",
	"198.18.0.0/15", "benchmarking",
	"198.51.100.0/24", "documentation",
	"203.0.113.0/24", "documentation",
	"224.0.0.0/4", "multicast",
	"240.0.0.0/4", "reserved and broadcast",
)

// deniedV6 are the IPv6 ranges refused outright. Ranges that embed an IPv4 address (mapped,
// NAT64, 6to4, Teredo) are judged by the embedded address in Classify.
var deniedV6 = ranges(
	"::/96", "IPv4-compatible, unspecified or loopback",
	"64:ff9b:1::/48", "local-use NAT64",
	"100::/64", "discard-only",
	"2001:2::/48", "benchmarking",
	"2001:db8::/32", "documentation",
	"3fff::/20", "documentation",
	"fc00::/7", "unique local (fd00:ec2::254 is cloud metadata)",
	"fe80::/10", "link-local",
	"fec0::/10", "site-local",
	"ff00::/8", "multicast",
)

func ranges(pairs ...string) []deniedRange {
	out := make([]deniedRange, 0, len(pairs)/2)
	for i := 0; i < len(pairs); i += 2 {
		out = append(out, deniedRange{netip.MustParsePrefix(pairs[i]), pairs[i+1]})
	}
	return out
}

var (
	nat64   = netip.MustParsePrefix("64:ff9b::/96")
	sixTo4  = netip.MustParsePrefix("2002::/16")
	teredo  = netip.MustParsePrefix("2001::/32")
	invalid = "invalid address"
)

// Classify returns why the relay refuses ip by default, or "" if ip is public unicast.
// An IPv6 address that embeds an IPv4 address (IPv4-mapped ::ffff:a.b.c.d, NAT64
// 64:ff9b::a.b.c.d, 6to4 2002:AABB:CCDD::, Teredo) is refused when the embedded address is.
func Classify(ip netip.Addr) string {
	if !ip.IsValid() {
		return invalid
	}
	ip = ip.WithZone("").Unmap()
	if ip.Is4() {
		for _, r := range deniedV4 {
			if r.prefix.Contains(ip) {
				return r.reason
			}
		}
		return ""
	}
	for _, r := range deniedV6 {
		if r.prefix.Contains(ip) {
			return r.reason
		}
	}
	b := ip.As16()
	switch {
	case nat64.Contains(ip):
		if why := Classify(netip.AddrFrom4([4]byte(b[12:16]))); why != "" {
			return "NAT64 of " + why
		}
	case sixTo4.Contains(ip):
		if why := Classify(netip.AddrFrom4([4]byte(b[2:6]))); why != "" {
			return "6to4 of " + why
		}
	case teredo.Contains(ip):
		server := netip.AddrFrom4([4]byte(b[4:8]))
		client := netip.AddrFrom4([4]byte{^b[12], ^b[13], ^b[14], ^b[15]})
		if why := Classify(server); why != "" {
			return "Teredo server " + why
		}
		if why := Classify(client); why != "" {
			return "Teredo client " + why
		}
	}
	return ""
}

// PeerFilter decides which peer addresses the relay may exchange packets with: public unicast
// addresses, and whatever the allow list opens. The zero value allows public unicast only.
type PeerFilter struct {
	allow []netip.Prefix
}

// NewPeerFilter returns a filter that also allows the given prefixes. IPv4-mapped prefixes
// are unmapped, so "::ffff:127.0.0.0/104" and "127.0.0.0/8" mean the same.
func NewPeerFilter(allow []netip.Prefix) *PeerFilter {
	f := &PeerFilter{}
	for _, p := range allow {
		if p.Addr().Is4In6() && p.Bits() >= 96 {
			p = netip.PrefixFrom(p.Addr().Unmap(), p.Bits()-96)
		}
		f.allow = append(f.allow, p.Masked())
	}
	return f
}

// Reason returns why ip is refused, or "" if the relay may use it.
func (f *PeerFilter) Reason(ip netip.Addr) string {
	if !ip.IsValid() {
		return invalid
	}
	u := ip.WithZone("").Unmap()
	for _, p := range f.allow {
		if p.Contains(u) {
			return ""
		}
	}
	return Classify(u)
}

// Allowed reports whether the relay may use ip.
func (f *PeerFilter) Allowed(ip netip.Addr) bool { return f.Reason(ip) == "" }

// AllowedIP is Allowed for a net.IP; nil and malformed addresses are refused.
func (f *PeerFilter) AllowedIP(ip net.IP) bool {
	a, ok := netip.AddrFromSlice(ip)
	return ok && f.Allowed(a)
}

// AllowedAddr is Allowed for a *net.UDPAddr or *net.TCPAddr; other types are refused.
func (f *PeerFilter) AllowedAddr(addr net.Addr) bool {
	switch a := addr.(type) {
	case *net.UDPAddr:
		return f.AllowedIP(a.IP)
	case *net.TCPAddr:
		return f.AllowedIP(a.IP)
	}
	return false
}
