package config

import (
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestClientRatesLoad: the trusted proxies and the per-client rates are YAML keys, environment
// variables and flags, in that order of precedence; by default nobody is trusted; bad values
// are refused naming the flag.
func TestClientRatesLoad(t *testing.T) {
	def, err := Load(nil, fakeEnv(nil), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if def.TrustedProxies != nil || def.JoinsPerClient != 20 || def.JoinBurstPerClient != 40 || def.TURNCredentialsPerClient != 120 {
		t.Errorf("defaults = %+v", def.ClientRates)
	}
	if p, err := def.Proxies(nil); p != nil || err != nil {
		t.Errorf("default Proxies = %v, %v; want none", p, err)
	}

	path := filepath.Join(t.TempDir(), "c.yaml")
	yaml := "trusted-proxies: [\"127.0.0.1\", \"10.0.0.0/8\"]\njoins-per-client: 5\njoin-burst-per-client: 9\nturn-credentials-per-client: 30\n"
	if err := os.WriteFile(path, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := Load([]string{"--config", path}, fakeEnv(nil), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	want := ClientRates{TrustedProxies: []string{"127.0.0.1", "10.0.0.0/8"}, JoinsPerClient: 5, JoinBurstPerClient: 9, TURNCredentialsPerClient: 30}
	if strings.Join(cfg.TrustedProxies, ",") != "127.0.0.1,10.0.0.0/8" || cfg.JoinsPerClient != 5 || cfg.JoinBurstPerClient != 9 || cfg.TURNCredentialsPerClient != 30 {
		t.Errorf("from YAML: %+v, want %+v", cfg.ClientRates, want)
	}
	env := fakeEnv(map[string]string{"SWITCHBOARD_TRUSTED_PROXIES": "192.0.2.7, 2001:db8::/32", "SWITCHBOARD_JOINS_PER_CLIENT": "2.5"})
	cfg, err = Load([]string{"--config", path, "--turn-credentials-per-client", "7"}, env, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(cfg.TrustedProxies, ",") != "192.0.2.7,2001:db8::/32" || cfg.JoinsPerClient != 2.5 || cfg.JoinBurstPerClient != 9 || cfg.TURNCredentialsPerClient != 7 {
		t.Errorf("env and flags over YAML: %+v", cfg.ClientRates)
	}
	p, err := cfg.Proxies(nil)
	if err != nil || !p.Trusted(netip.MustParseAddr("2001:db8::1")) || p.Trusted(netip.MustParseAddr("127.0.0.1")) {
		t.Errorf("Proxies = %v, %v", p, err)
	}

	for _, bad := range [][]string{
		{"--trusted-proxies", "proxy.example.com"}, {"--trusted-proxies", "10.0.0.0/40"},
		{"--joins-per-client", "0"}, {"--join-burst-per-client", "0.5"}, {"--turn-credentials-per-client", "0"},
	} {
		_, err := Load(bad, fakeEnv(nil), io.Discard)
		if err == nil || !strings.Contains(err.Error(), strings.TrimPrefix(bad[0], "--")) {
			t.Errorf("Load(%q): err = %v, want one naming %s", bad, err, bad[0])
		}
	}
}
