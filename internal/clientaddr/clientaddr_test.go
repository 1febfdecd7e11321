package clientaddr

import (
	"net"
	"net/netip"
	"testing"
)

func TestKey(t *testing.T) {
	def := Aggregator{}
	wide := Aggregator{V4: 24, V6: 48}
	for _, tc := range []struct {
		agg  Aggregator
		in   string
		want string
	}{
		{def, "192.0.2.7", "192.0.2.7/32"},
		{def, "::ffff:192.0.2.7", "192.0.2.7/32"},
		{def, "2001:db8:1:2:3:4:5:6", "2001:db8:1:2::/64"},
		{def, "2001:db8:1:2:ffff:ffff:ffff:ffff", "2001:db8:1:2::/64"},
		{def, "2001:db8:1:3::1", "2001:db8:1:3::/64"},
		{def, "fe80::1%eth0", "fe80::/64"},
		{def, "::1", "::/64"},
		{wide, "192.0.2.7", "192.0.2.0/24"},
		{wide, "::ffff:192.0.2.200", "192.0.2.0/24"},
		{wide, "2001:db8:1:ffff::1", "2001:db8:1::/48"},
		{Aggregator{V4: 32, V6: 128}, "2001:db8::1", "2001:db8::1/128"},
	} {
		got := tc.agg.Key(netip.MustParseAddr(tc.in))
		if got.String() != tc.want {
			t.Errorf("%+v.Key(%s) = %s, want %s", tc.agg, tc.in, got, tc.want)
		}
	}
	if k := def.Key(netip.Addr{}); k.IsValid() {
		t.Errorf("Key(zero) = %v, want the zero Prefix", k)
	}
}

func TestKeyOf(t *testing.T) {
	var a Aggregator
	want := netip.MustParsePrefix("2001:db8:0:1::/64")
	for _, addr := range []net.Addr{
		&net.TCPAddr{IP: net.ParseIP("2001:db8:0:1::5"), Port: 1},
		&net.UDPAddr{IP: net.ParseIP("2001:db8:0:1:aaaa::9"), Port: 2},
		&net.IPAddr{IP: net.ParseIP("2001:db8:0:1::7")},
		fakeAddr("[2001:db8:0:1::8]:3478"),
	} {
		if got := a.KeyOf(addr); got != want {
			t.Errorf("KeyOf(%v) = %v, want %v", addr, got, want)
		}
	}
	v4 := &net.UDPAddr{IP: net.IPv4(198, 51, 100, 1), Port: 9} // 16-byte form: mapped
	if got := a.KeyOf(v4); got != netip.MustParsePrefix("198.51.100.1/32") {
		t.Errorf("KeyOf(%v) = %v", v4, got)
	}
	if got := a.KeyOf(nil); got.IsValid() {
		t.Errorf("KeyOf(nil) = %v", got)
	}
	if got := a.KeyOf(fakeAddr("not an address")); got.IsValid() {
		t.Errorf("KeyOf(garbage) = %v", got)
	}
}

func TestNew(t *testing.T) {
	for _, ok := range [][2]int{{32, 64}, {1, 1}, {24, 48}, {32, 128}, {0, 0}} {
		if _, err := New(ok[0], ok[1]); err != nil {
			t.Errorf("New(%d, %d): %v", ok[0], ok[1], err)
		}
	}
	for _, bad := range [][2]int{{33, 64}, {-1, 64}, {32, 129}, {32, -8}} {
		if _, err := New(bad[0], bad[1]); err == nil {
			t.Errorf("New(%d, %d) accepted", bad[0], bad[1])
		}
	}
}

type fakeAddr string

func (fakeAddr) Network() string  { return "fake" }
func (a fakeAddr) String() string { return string(a) }

// FuzzKey: every address gets a key of the right length that contains it; the IPv4-mapped
// form of an IPv4 address has the same key; addresses that agree on the first 64 bits share
// a key.
func FuzzKey(f *testing.F) {
	f.Add([]byte{192, 0, 2, 1}, uint8(32), uint8(64))
	f.Add([]byte{0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1}, uint8(24), uint8(48))
	f.Fuzz(func(t *testing.T, raw []byte, v4, v6 uint8) {
		ip, ok := netip.AddrFromSlice(raw)
		if !ok {
			return
		}
		a := Aggregator{V4: int(v4 % 33), V6: int(v6 % 129)}
		k := a.Key(ip)
		u := ip.Unmap()
		wantBits := a.V6
		if wantBits == 0 {
			wantBits = DefaultV6
		}
		if u.Is4() {
			wantBits = a.V4
			if wantBits == 0 {
				wantBits = DefaultV4
			}
		}
		if !k.IsValid() || k.Bits() != wantBits || !k.Contains(u) || k != k.Masked() {
			t.Fatalf("Key(%v) with %+v = %v", ip, a, k)
		}
		if u.Is4() {
			if m := a.Key(netip.AddrFrom16(u.As16())); m != k {
				t.Fatalf("Key(mapped %v) = %v, Key(%v) = %v", u, m, ip, k)
			}
			return
		}
		// Flip a bit past the prefix: same key. Flip one inside it: another.
		b := u.As16()
		if wantBits < 128 {
			i := 127 - int(v4)%(128-wantBits)
			b[i/8] ^= 0x80 >> (i % 8)
			if o := a.Key(netip.AddrFrom16(b)); o != k && !netip.AddrFrom16(b).Is4In6() {
				t.Fatalf("Key(%v) = %v, Key(%v) = %v: same /%d", ip, k, netip.AddrFrom16(b), o, wantBits)
			}
			b[i/8] ^= 0x80 >> (i % 8)
		}
		if wantBits > 0 {
			i := int(v6) % wantBits
			b[i/8] ^= 0x80 >> (i % 8)
			if o := a.Key(netip.AddrFrom16(b)); o == k {
				t.Fatalf("Key(%v) = Key(%v) = %v across /%d", ip, netip.AddrFrom16(b), k, wantBits)
			}
		}
	})
}
