package server

import (
	"bytes"
	"log/slog"
	"net"
	"strings"
	"testing"

	"github.com/switchboard-rtc/switchboard/internal/auth"
)

// TestWarnIfOpen: a server without API keys says once, loudly, that it is open when it
// listens beyond loopback; on loopback, or with keys, it says nothing.
func TestWarnIfOpen(t *testing.T) {
	cases := []struct {
		addr net.Addr
		keys []auth.Key
		warn bool
	}{
		{&net.TCPAddr{IP: net.IPv6unspecified, Port: 8080}, nil, true},
		{&net.TCPAddr{IP: net.IPv4(203, 0, 113, 5), Port: 8080}, nil, true},
		{&net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 8080}, nil, false},
		{&net.TCPAddr{IP: net.IPv6loopback, Port: 8080}, nil, false},
		{&net.TCPAddr{IP: net.IPv6unspecified, Port: 8080}, []auth.Key{auth.NewKey()}, false},
	}
	for _, c := range cases {
		var buf bytes.Buffer
		warnIfOpen(slog.New(slog.NewTextHandler(&buf, nil)), c.keys, c.addr)
		got := strings.Count(buf.String(), "OPEN SERVER")
		if (got == 1) != c.warn || got > 1 {
			t.Errorf("%v with %d keys: %q", c.addr, len(c.keys), buf.String())
		}
	}
}
