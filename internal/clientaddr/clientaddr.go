// Package clientaddr maps client addresses to the key per-client limits count under: an IPv4
// address (or the IPv4 network of a configured prefix length) and an IPv6 network, by default
// a /64, the block a single subscriber usually gets. Counting IPv6 per address would let one
// host escape every per-address limit by picking new addresses from its /64.
package clientaddr

import (
	"fmt"
	"net"
	"net/netip"
)

// Default prefix lengths: one IPv4 address, one IPv6 /64.
const (
	DefaultV4 = 32
	DefaultV6 = 64
)

// Aggregator maps addresses to client keys. The zero value uses DefaultV4 and DefaultV6.
type Aggregator struct {
	// V4 is the prefix length IPv4 addresses are aggregated to (1-32; 0 means DefaultV4).
	V4 int
	// V6 is the prefix length IPv6 addresses are aggregated to (1-128; 0 means DefaultV6).
	V6 int
}

// New returns an Aggregator for the prefix lengths, or an error naming the bad one.
func New(v4, v6 int) (Aggregator, error) {
	a := Aggregator{V4: v4, V6: v6}
	return a, a.Validate()
}

// Validate reports whether the prefix lengths are in range (zero means the default).
func (a Aggregator) Validate() error {
	if a.V4 < 0 || a.V4 > 32 {
		return fmt.Errorf("clientaddr: IPv4 prefix length %d: want 1 to 32", a.V4)
	}
	if a.V6 < 0 || a.V6 > 128 {
		return fmt.Errorf("clientaddr: IPv6 prefix length %d: want 1 to 128", a.V6)
	}
	return nil
}

// Key returns the client key of ip: the network of the configured length that holds it.
// IPv4-mapped IPv6 addresses (::ffff:a.b.c.d) count as their IPv4 address and zones are
// ignored, so one client has one key however its address is written. An invalid address
// (or a prefix length out of range) gives the zero Prefix, a key of its own.
func (a Aggregator) Key(ip netip.Addr) netip.Prefix {
	ip = ip.Unmap().WithZone("")
	bits := a.V6
	if bits == 0 {
		bits = DefaultV6
	}
	if ip.Is4() {
		bits = a.V4
		if bits == 0 {
			bits = DefaultV4
		}
	}
	p, err := ip.Prefix(bits)
	if err != nil {
		return netip.Prefix{}
	}
	return p
}

// KeyOf returns the client key of a connection's address (*net.TCPAddr, *net.UDPAddr,
// *net.IPAddr, or anything whose String is host:port or an address); the zero Prefix when
// it has no IP address.
func (a Aggregator) KeyOf(addr net.Addr) netip.Prefix {
	return a.Key(AddrIP(addr))
}

// AddrIP returns the IP address of a connection's address, unmapped; the zero Addr when it
// has none.
func AddrIP(addr net.Addr) netip.Addr {
	var ip net.IP
	switch a := addr.(type) {
	case nil:
		return netip.Addr{}
	case *net.TCPAddr:
		ip = a.IP
	case *net.UDPAddr:
		ip = a.IP
	case *net.IPAddr:
		ip = a.IP
	default:
		s := addr.String()
		if ap, err := netip.ParseAddrPort(s); err == nil {
			return ap.Addr().Unmap()
		}
		if ip, err := netip.ParseAddr(s); err == nil {
			return ip.Unmap()
		}
		return netip.Addr{}
	}
	out, _ := netip.AddrFromSlice(ip)
	return out.Unmap()
}
