package clientaddr

import (
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"
)

func testProxies(t testing.TB, ignored func(string)) *Proxies {
	t.Helper()
	p, err := NewProxies([]string{"10.0.0.0/8", "127.0.0.1", "2001:db8:ffff::/48"}, ignored)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// TestResolve: behind trusted proxies the client is the rightmost untrusted address of
// Forwarded (RFC 7239's own examples among the cases) or X-Forwarded-For; what a client
// prepends is never reached; unknown and obfuscated hops stop the walk at the last proxy that
// knew; a malformed header, or two headers that disagree, leave the proxy's own address.
func TestResolve(t *testing.T) {
	const proxy = "10.0.0.1"
	for _, tc := range []struct {
		name      string
		peer      string
		fwd, xff  []string
		want      string
		from      Source
		ignoredAs string
	}{
		{name: "untrusted peer: headers ignored", peer: "203.0.113.9", xff: []string{"192.0.2.60"}, fwd: []string{"for=192.0.2.61"}, want: "203.0.113.9", from: FromPeer},
		{name: "trusted peer, no header", want: proxy, from: FromPeer},
		{name: "xff one hop", xff: []string{"192.0.2.60"}, want: "192.0.2.60", from: FromHeader},
		{name: "xff spoof prepended", xff: []string{"198.51.100.1, 192.0.2.60"}, want: "192.0.2.60", from: FromHeader},
		{name: "xff spoof on its own line", xff: []string{"198.51.100.1", "192.0.2.60"}, want: "192.0.2.60", from: FromHeader},
		{name: "xff spoofing a trusted address", xff: []string{"10.9.9.9, 192.0.2.60"}, want: "192.0.2.60", from: FromHeader},
		{name: "xff two proxies", xff: []string{"192.0.2.60, 10.0.0.2"}, want: "192.0.2.60", from: FromHeader},
		{name: "xff three hops over two lines", xff: []string{"198.51.100.1, 192.0.2.60", "10.0.0.3, 10.0.0.2"}, want: "192.0.2.60", from: FromHeader},
		{name: "xff with port", xff: []string{"192.0.2.60:4711"}, want: "192.0.2.60", from: FromHeader},
		{name: "xff bracketed v6 with port", xff: []string{"[2001:db8::1]:4711"}, want: "2001:db8::1", from: FromHeader},
		{name: "xff bare v6", xff: []string{"2001:db8::1"}, want: "2001:db8::1", from: FromHeader},
		{name: "xff trusted v6 proxy", xff: []string{"2001:db8::1, 2001:db8:ffff::5"}, want: "2001:db8::1", from: FromHeader},
		{name: "xff mapped", xff: []string{"::ffff:192.0.2.60"}, want: "192.0.2.60", from: FromHeader},
		{name: "xff garbage left of the client", xff: []string{"<script>, not an address, 192.0.2.60"}, want: "192.0.2.60", from: FromHeader},
		{name: "xff garbage at the right", xff: []string{"192.0.2.60, garbage"}, want: proxy, from: FromFallback, ignoredAs: IgnoredMalformed},
		{name: "xff zone", xff: []string{"fe80::1%eth0"}, want: proxy, from: FromFallback, ignoredAs: IgnoredMalformed},
		{name: "xff unknown", xff: []string{"unknown"}, want: proxy, from: FromHeader},
		{name: "xff unknown before a proxy", xff: []string{"192.0.2.60, unknown, 10.0.0.2"}, want: "10.0.0.2", from: FromHeader},
		{name: "xff all trusted", xff: []string{"10.0.0.3, 10.0.0.2"}, want: "10.0.0.3", from: FromHeader},
		{name: "xff empty elements", xff: []string{", 192.0.2.60 ,,"}, want: "192.0.2.60", from: FromHeader},

		// RFC 7239 §4 and §7.4 examples.
		{name: "rfc obfuscated", fwd: []string{`for="_gazonk"`}, want: proxy, from: FromHeader},
		{name: "rfc quoted v6 with port", fwd: []string{`For="[2001:db8:cafe::17]:4711"`}, want: "2001:db8:cafe::17", from: FromHeader},
		{name: "rfc pairs", fwd: []string{`for=192.0.2.60;proto=http;by=203.0.113.43`}, want: "192.0.2.60", from: FromHeader},
		{name: "rfc two elements", fwd: []string{`for=192.0.2.43, for=198.51.100.17`}, want: "198.51.100.17", from: FromHeader},
		{name: "rfc unknown", fwd: []string{`for=unknown`}, want: proxy, from: FromHeader},
		{name: "hidden client before a proxy", fwd: []string{`for="_hidden", for=10.0.0.2`}, want: "10.0.0.2", from: FromHeader},
		{name: "obfuscated port", fwd: []string{`for="[2001:db8:cafe::17]:_p0rt"`}, want: "2001:db8:cafe::17", from: FromHeader},
		{name: "v4 with port", fwd: []string{`for="192.0.2.43:47011"`}, want: "192.0.2.43", from: FromHeader},
		{name: "unquoted v6 (lenient)", fwd: []string{`for=[2001:db8::9]`}, want: "2001:db8::9", from: FromHeader},
		{name: "spoof prepended", fwd: []string{`for=198.51.100.1, for=192.0.2.60`}, want: "192.0.2.60", from: FromHeader},
		{name: "spoof on its own line", fwd: []string{`for=198.51.100.1`, `for=192.0.2.60;proto=https`}, want: "192.0.2.60", from: FromHeader},
		{name: "trusted v6 proxy", fwd: []string{`for=192.0.2.43;proto=https, for="[2001:db8:ffff::1]"`}, want: "192.0.2.43", from: FromHeader},
		{name: "comma inside quotes", fwd: []string{`for=192.0.2.43;x="a,b", for=10.0.0.2`}, want: "192.0.2.43", from: FromHeader},
		{name: "garbage line left of the client", fwd: []string{`for="198.51.100.1`, `for=192.0.2.60`}, want: "192.0.2.60", from: FromHeader},
		{name: "garbage element left of the client", fwd: []string{`for=198.51.100.1:x;;=, for=192.0.2.60`}, want: "192.0.2.60", from: FromHeader},
		{name: "garbage element at the right", fwd: []string{`for=192.0.2.60, for=x`}, want: proxy, from: FromFallback, ignoredAs: IgnoredMalformed},
		{name: "no for", fwd: []string{`proto=https;host=example.com`}, want: proxy, from: FromHeader},
		{name: "unterminated quote swallows the proxy's element", fwd: []string{`for="198.51.100.1, for=192.0.2.60`}, want: proxy, from: FromFallback, ignoredAs: IgnoredMalformed},
		{name: "two for", fwd: []string{`for=192.0.2.60;for=192.0.2.61`}, want: proxy, from: FromFallback, ignoredAs: IgnoredMalformed},
		{name: "empty for", fwd: []string{`for=`}, want: proxy, from: FromFallback, ignoredAs: IgnoredMalformed},
		{name: "pair without =", fwd: []string{`for`}, want: proxy, from: FromFallback, ignoredAs: IgnoredMalformed},
		{name: "bad obfuscation", fwd: []string{`for="_a b"`}, want: proxy, from: FromFallback, ignoredAs: IgnoredMalformed},
		{name: "bracketed v4", fwd: []string{`for="[192.0.2.1]"`}, want: proxy, from: FromFallback, ignoredAs: IgnoredMalformed},
		{name: "long port", fwd: []string{`for="192.0.2.1:123456"`}, want: proxy, from: FromFallback, ignoredAs: IgnoredMalformed},

		{name: "both agree", fwd: []string{`for=192.0.2.60`}, xff: []string{"192.0.2.60"}, want: "192.0.2.60", from: FromHeader},
		{name: "both disagree (a client's Forwarded passed on)", fwd: []string{`for=198.51.100.1`}, xff: []string{"192.0.2.60"}, want: proxy, from: FromFallback, ignoredAs: IgnoredConflict},
		{name: "one malformed", fwd: []string{`for="`}, xff: []string{"192.0.2.60"}, want: proxy, from: FromFallback, ignoredAs: IgnoredMalformed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var ignored []string
			p := testProxies(t, func(r string) { ignored = append(ignored, r) })
			peer := tc.peer
			if peer == "" {
				peer = proxy
			}
			h := http.Header{}
			for _, v := range tc.fwd {
				h.Add("Forwarded", v)
			}
			for _, v := range tc.xff {
				h.Add("X-Forwarded-For", v)
			}
			got := p.Resolve(netip.MustParseAddr(peer), h)
			if got.IP != netip.MustParseAddr(tc.want) || got.From != tc.from {
				t.Errorf("Resolve = %v (from %d), want %s (from %d)", got.IP, got.From, tc.want, tc.from)
			}
			want := []string(nil)
			if tc.ignoredAs != "" {
				want = []string{tc.ignoredAs}
			}
			if strings.Join(ignored, ",") != strings.Join(want, ",") {
				t.Errorf("ignored %q, want %q", ignored, want)
			}
		})
	}
}

// TestClientIP: through an http.Request; a nil Proxies trusts nobody.
func TestClientIP(t *testing.T) {
	r := httptest.NewRequest("GET", "/ws", nil)
	r.RemoteAddr = "[::ffff:10.0.0.7]:5555"
	r.Header.Set("X-Forwarded-For", "198.51.100.1, 192.0.2.60")
	if got := testProxies(t, nil).ClientIP(r); got != netip.MustParseAddr("192.0.2.60") {
		t.Errorf("ClientIP behind a trusted proxy = %v", got)
	}
	var none *Proxies
	if got := none.ClientIP(r); got != netip.MustParseAddr("10.0.0.7") {
		t.Errorf("nil Proxies: ClientIP = %v, want the peer", got)
	}
	if none.Trusted(netip.MustParseAddr("10.0.0.7")) {
		t.Error("nil Proxies trusts an address")
	}
	r.RemoteAddr = "not an address"
	if got := testProxies(t, nil).ClientIP(r); got.IsValid() {
		t.Errorf("ClientIP of a peer without an address = %v", got)
	}
	if Forwarded(http.Header{}) || !Forwarded(http.Header{"X-Real-Ip": {"1.2.3.4"}}) || !Forwarded(http.Header{"Forwarded": {""}}) {
		t.Error("Forwarded misreads the headers")
	}
}

func TestNewProxies(t *testing.T) {
	if p, err := NewProxies(nil, nil); p != nil || err != nil {
		t.Errorf("NewProxies(nil) = %v, %v", p, err)
	}
	p, err := NewProxies([]string{" 192.0.2.7 ", "::ffff:10.0.0.0/104", "2001:db8::/32", "172.16.5.4/12"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, ip := range []string{"192.0.2.7", "::ffff:192.0.2.7", "10.200.0.1", "2001:db8:1::1", "172.31.0.1"} {
		if !p.Trusted(netip.MustParseAddr(ip)) {
			t.Errorf("%s not trusted", ip)
		}
	}
	for _, ip := range []string{"192.0.2.8", "11.0.0.1", "2001:db9::1", "172.32.0.1"} {
		if p.Trusted(netip.MustParseAddr(ip)) {
			t.Errorf("%s trusted", ip)
		}
	}
	for _, bad := range []string{"", "proxy.example.com", "10.0.0.0/33", "fe80::1%eth0", "::ffff:10.0.0.0/64"} {
		if _, err := NewProxies([]string{bad}, nil); err == nil {
			t.Errorf("NewProxies(%q) accepted", bad)
		}
	}
}

// addrsIn returns every address written in s, found without the parser under test: s split
// at every separator the headers use, each field read as an address with or without a port
// or brackets.
func addrsIn(s string) map[netip.Addr]bool {
	out := map[netip.Addr]bool{}
	s = strings.ReplaceAll(s, `\`, "") // quoted-pairs
	for _, f := range strings.FieldsFunc(s, func(r rune) bool { return strings.ContainsRune(",;\"= \t", r) }) {
		host := f
		if strings.HasPrefix(f, "[") {
			if i := strings.IndexByte(f, ']'); i > 0 {
				host = f[1:i]
			}
		} else if strings.Count(f, ":") == 1 {
			host = f[:strings.IndexByte(f, ':')]
		}
		if a, err := netip.ParseAddr(host); err == nil {
			out[a.Unmap().WithZone("")] = true
		}
	}
	return out
}

// FuzzResolve: Resolve never panics; its answer is the peer or an address written in the
// headers; an untrusted peer is always its own client; and a client cannot change an answer
// the headers gave by adding anything in front of them (a spoof).
func FuzzResolve(f *testing.F) {
	for _, seed := range []struct{ peer, fwd, xff, spoof string }{
		{"10.0.0.1", "", "192.0.2.60", "198.51.100.1"},
		{"10.0.0.1", `for="[2001:db8:cafe::17]:4711"`, "", `for=198.51.100.1`},
		{"10.0.0.1", `for="_hidden", for=10.0.0.2`, "", "x"},
		{"127.0.0.1", `for=192.0.2.43, for=198.51.100.17;proto=https`, "198.51.100.17", `for="`},
		{"203.0.113.1", "for=unknown", "unknown, 10.0.0.3", ","},
		{"10.0.0.1", "", "[2001:db8::1]:80, 2001:db8:ffff::1", "::1"},
		{"2001:db8:ffff::9", `for="\"x\"";by=_a`, "192.0.2.1:_p", `for="a\"`},
	} {
		f.Add(seed.peer, seed.fwd, seed.xff, seed.spoof)
	}
	p := testProxies(f, nil)
	f.Fuzz(func(t *testing.T, peerS, fwd, xff, spoof string) {
		peer, err := netip.ParseAddr(peerS)
		if err != nil {
			return
		}
		peer = peer.Unmap().WithZone("")
		h := http.Header{}
		if fwd != "" {
			h.Set("Forwarded", fwd)
		}
		if xff != "" {
			h.Set("X-Forwarded-For", xff)
		}
		got := p.Resolve(peer, h)
		if got.IP != peer && !addrsIn(fwd + "," + xff)[got.IP] {
			t.Fatalf("Resolve(%v, %q, %q) = %v: neither the peer nor in the headers", peer, fwd, xff, got.IP)
		}
		if !p.Trusted(peer) && (got.IP != peer || got.From != FromPeer) {
			t.Fatalf("untrusted peer %v resolved to %v", peer, got.IP)
		}
		if got.From != FromHeader || p.Trusted(got.IP) || got.IP == peer {
			return
		}
		// An answer the headers gave: the client's own lines in front change nothing.
		if (fwd == "") != (xff == "") {
			name := "Forwarded"
			if fwd == "" {
				name = "X-Forwarded-For"
			}
			h2 := http.Header{name: {spoof, h.Get(name)}}
			if again := p.Resolve(peer, h2); again != got {
				t.Fatalf("a line %q in front of %s %q changed the client from %v to %v", spoof, name, h.Get(name), got.IP, again.IP)
			}
		}
		if xff != "" && fwd == "" {
			h2 := http.Header{"X-Forwarded-For": {spoof + "," + xff}}
			if again := p.Resolve(peer, h2); again != got {
				t.Fatalf("%q prepended to X-Forwarded-For %q changed the client from %v to %v", spoof, xff, got.IP, again.IP)
			}
		}
	})
}
