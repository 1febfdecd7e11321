package turnserver

import (
	"net"
	"net/netip"
	"testing"
)

func TestClassify(t *testing.T) {
	denied := []string{
		"0.0.0.0", "0.1.2.3", "10.0.0.1", "10.255.255.255", "100.64.0.1", "100.127.255.254",
		"127.0.0.1", "127.255.255.254", "169.254.169.254", "169.254.0.1", "172.16.0.1",
		"172.31.255.255", "192.0.0.8", "192.0.2.1", "192.88.99.1", "192.168.1.1",
		"198.18.0.1", "198.19.255.255", "198.51.100.7", "203.0.113.9", "224.0.0.1",
		"239.255.255.250", "240.0.0.1", "255.255.255.255",
		"::", "::1", "::127.0.0.1", "::8.8.8.8", // IPv4-compatible: deprecated, all refused
		"::ffff:127.0.0.1", "::ffff:10.1.2.3", "::ffff:169.254.169.254", "::ffff:0.0.0.0",
		"::ffff:255.255.255.255", "64:ff9b::127.0.0.1", "64:ff9b::a9fe:a9fe", "64:ff9b:1::1",
		"2002:7f00:1::1", "2002:a9fe:a9fe::", "2002:c0a8:101::5",
		"2001:0:7f00:1::1",             // Teredo with a loopback server
		"2001:0:808:808:0:0:f5ff:fffe", // Teredo whose client (bits inverted) is 10.0.0.1
		"100::1", "2001:2::1", "2001:db8::1", "3fff::1", "fc00::1", "fd00::1", "fd00:ec2::254",
		"fe80::1", "fe80::1%eth0", "fec0::1", "ff02::1", "ff0e::1",
	}
	allowed := []string{
		"1.1.1.1", "8.8.8.8", "9.255.255.255", "11.0.0.0", "100.63.255.255", "100.128.0.0",
		"126.255.255.255", "128.0.0.0", "169.253.255.255", "172.15.255.255", "172.32.0.0",
		"192.0.1.1", "192.167.255.255", "198.17.255.255", "198.20.0.0", "223.255.255.255",
		"::ffff:8.8.8.8", "64:ff9b::8.8.8.8", "2002:808:808::1", "2001:4860:4860::8888",
		"2606:4700::1111", "2001:0:808:808::f7f7:f7f7", // Teredo, server and client public
	}
	for _, s := range denied {
		if why := Classify(netip.MustParseAddr(s)); why == "" {
			t.Errorf("Classify(%s) = public, want denied", s)
		}
	}
	for _, s := range allowed {
		if why := Classify(netip.MustParseAddr(s)); why != "" {
			t.Errorf("Classify(%s) = %q, want public", s, why)
		}
	}
	if Classify(netip.Addr{}) == "" {
		t.Error("Classify(invalid) = public")
	}
}

func TestPeerFilterAllow(t *testing.T) {
	f := NewPeerFilter([]netip.Prefix{
		netip.MustParsePrefix("127.0.0.0/8"),
		netip.MustParsePrefix("::ffff:10.0.0.0/104"), // mapped form of 10.0.0.0/8
		netip.MustParsePrefix("fd12::/16"),
	})
	tests := []struct {
		ip   string
		want bool
	}{
		{"127.0.0.1", true}, {"::ffff:127.0.0.1", true}, {"10.9.9.9", true}, {"::ffff:10.9.9.9", true},
		{"fd12::1", true}, {"fd13::1", false}, {"192.168.0.1", false}, {"169.254.169.254", false},
		{"::1", false}, {"::", false}, {"0.0.0.0", false}, {"8.8.8.8", true},
	}
	for _, tt := range tests {
		if got := f.Allowed(netip.MustParseAddr(tt.ip)); got != tt.want {
			t.Errorf("Allowed(%s) = %v, want %v", tt.ip, got, tt.want)
		}
	}
	var zero PeerFilter
	if zero.AllowedIP(net.ParseIP("127.0.0.1")) || zero.AllowedIP(nil) || zero.AllowedIP(net.IP{1, 2, 3}) {
		t.Error("zero PeerFilter allowed loopback, nil or a 3-byte IP")
	}
	if !zero.AllowedAddr(&net.TCPAddr{IP: net.ParseIP("8.8.8.8"), Port: 1}) || zero.AllowedAddr(&net.IPAddr{IP: net.ParseIP("8.8.8.8")}) {
		t.Error("AllowedAddr: want TCP public allowed and other address types refused")
	}
}

// FuzzClassify: never panics; an address and its IPv4-mapped form get the same verdict; the
// zone never changes it.
func FuzzClassify(f *testing.F) {
	for _, s := range []string{"127.0.0.1", "8.8.8.8", "::ffff:10.0.0.1", "2002:7f00:1::", "2001:0:808:808::f7f7:f7f7", "fe80::1"} {
		a := netip.MustParseAddr(s).As16()
		f.Add(a[:])
	}
	filter := NewPeerFilter([]netip.Prefix{netip.MustParsePrefix("198.51.100.0/24")})
	f.Fuzz(func(t *testing.T, b []byte) {
		a, ok := netip.AddrFromSlice(b)
		if !ok {
			if filter.AllowedIP(net.IP(b)) {
				t.Fatalf("malformed IP %x allowed", b)
			}
			return
		}
		why := Classify(a)
		if a.Is4() {
			if m := Classify(netip.AddrFrom16(a.As16())); m != why {
				t.Fatalf("Classify(%s) = %q but mapped form %q", a, why, m)
			}
		}
		if a.Is6() && !a.Is4In6() {
			if z := Classify(a.WithZone("x")); z != why {
				t.Fatalf("zone changed verdict for %s", a)
			}
		}
		if filter.Allowed(a) != (why == "" || netip.MustParsePrefix("198.51.100.0/24").Contains(a.Unmap())) {
			t.Fatalf("filter verdict for %s inconsistent with Classify %q", a, why)
		}
	})
}
