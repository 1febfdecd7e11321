package server

import (
	"net"
	"testing"

	"github.com/switchboard-rtc/switchboard/internal/config"
)

// TestOpenURLACME: with --acme-domains the start line names the first domain, with the port
// unless 443; --public-url still wins.
func TestOpenURLACME(t *testing.T) {
	cfg := config.Default()
	cfg.ACMEDomains = []string{"Call.Example.com", "www.example.com"}
	for _, tc := range []struct {
		addr, public, want string
	}{
		{"0.0.0.0:443", "", "https://call.example.com/"},
		{"[::]:8443", "", "https://call.example.com:8443/"},
		{"127.0.0.1:443", "https://meet.example.com", "https://meet.example.com"},
	} {
		cfg.PublicURL = tc.public
		addr, err := net.ResolveTCPAddr("tcp", tc.addr)
		if err != nil {
			t.Fatal(err)
		}
		if got := openURL(cfg, addr); got != tc.want {
			t.Errorf("openURL(%s, public %q) = %s, want %s", tc.addr, tc.public, got, tc.want)
		}
	}
}
