package config

import (
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestClientLimitsLoad: the per-client limits are top-level YAML keys, environment variables
// and flags, in that order of precedence; the defaults aggregate per IPv4 address and IPv6
// /64; out-of-range values are refused with the flag's name.
func TestClientLimitsLoad(t *testing.T) {
	def, err := Load(nil, fakeEnv(nil), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	want := ClientLimits{ClientPrefixV4: 32, ClientPrefixV6: 64, SIOSessionsPerClient: 64, ConnsPerClient: 256, HTTPConnsPerClient: 256, TURNTCPPerClient: 32, TURNAllocateTimeout: 10 * time.Second}
	if def.ClientLimits != want || def.TURNIPQuota != 64 {
		t.Errorf("defaults = %+v, turn-ip-quota %d", def.ClientLimits, def.TURNIPQuota)
	}
	agg := def.Clients()
	if k := agg.Key(netip.MustParseAddr("2001:db8::1")); k != netip.MustParsePrefix("2001:db8::/64") {
		t.Errorf("default key of 2001:db8::1 = %v", k)
	}

	path := filepath.Join(t.TempDir(), "c.yaml")
	if err := os.WriteFile(path, []byte("client-prefix-v4: 24\nclient-prefix-v6: 56\nturn-tcp-per-client: 8\nsio-sessions-per-client: 5\nhttp-conns-per-client: 9\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	env := fakeEnv(map[string]string{"SWITCHBOARD_CLIENT_PREFIX_V6": "48", "SWITCHBOARD_TURN_ALLOCATE_TIMEOUT": "3s", "SWITCHBOARD_CONNS_PER_CLIENT": "7"})
	cfg, err := Load([]string{"--config", path, "--turn-tcp-per-client", "4"}, env, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	want = ClientLimits{ClientPrefixV4: 24, ClientPrefixV6: 48, SIOSessionsPerClient: 5, ConnsPerClient: 7, HTTPConnsPerClient: 9, TURNTCPPerClient: 4, TURNAllocateTimeout: 3 * time.Second}
	if cfg.ClientLimits != want {
		t.Errorf("limits = %+v, want %+v", cfg.ClientLimits, want)
	}

	for _, bad := range [][]string{
		{"--client-prefix-v4", "0"}, {"--client-prefix-v4", "33"}, {"--http-conns-per-client", "0"},
		{"--client-prefix-v6", "0"}, {"--client-prefix-v6", "129"},
		{"--turn-tcp-per-client", "0"}, {"--turn-allocate-timeout", "0s"},
		{"--sio-sessions-per-client", "0"}, {"--conns-per-client", "0"},
	} {
		_, err := Load(bad, fakeEnv(nil), io.Discard)
		if err == nil || !strings.Contains(err.Error(), strings.TrimPrefix(bad[0], "--")) {
			t.Errorf("Load(%q): err = %v, want one naming %s", bad, err, bad[0])
		}
	}
}
