package config

import (
	"io"
	"path/filepath"
	"strings"
	"testing"
)

// TestACMELoad: the ACME options are YAML keys, environment variables and flags, in that
// order of precedence; ACME is off by default, and with it TLS is on.
func TestACMELoad(t *testing.T) {
	def, err := Load(nil, fakeEnv(nil), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if def.ACMEOn() || def.TLSOn() || def.ACMECA != LetsEncrypt || def.ACMEHTTPListen != ":80" || !def.ACMETLSALPN {
		t.Errorf("defaults = %+v", def.ACME)
	}
	path := writeYAML(t, "acme-domains: [call.example.com, www.example.com]\nacme-email: ops@example.com\nacme-storage: /var/lib/sb\nacme-http-listen: \"off\"\n")
	cfg, err := Load([]string{"--config", path}, fakeEnv(nil), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(cfg.ACMEDomains, ",") != "call.example.com,www.example.com" || cfg.ACMEEmail != "ops@example.com" ||
		cfg.StorageDir() != "/var/lib/sb" || cfg.ACMEHTTPOn() || !cfg.TLSOn() {
		t.Errorf("from YAML: %+v", cfg.ACME)
	}
	env := fakeEnv(map[string]string{"SWITCHBOARD_ACME_DOMAINS": "a.example.org", "SWITCHBOARD_ACME_CA": "https://ca.internal:9000/acme/directory"})
	cfg, err = Load([]string{"--config", path, "--acme-http-listen", "127.0.0.1:8081", "--acme-tls-alpn=false"}, env, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(cfg.ACMEDomains, ",") != "a.example.org" || cfg.ACMECA != "https://ca.internal:9000/acme/directory" ||
		cfg.ACMEHTTPListen != "127.0.0.1:8081" || cfg.ACMETLSALPN || cfg.ACMEEmail != "ops@example.com" {
		t.Errorf("env and flags over YAML: %+v", cfg.ACME)
	}
}

// TestACMEInvalid: each mistake is refused with one line naming the option.
func TestACMEInvalid(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--acme-domains", "call.example.com", "--tls-cert", "c.pem", "--tls-key", "k.pem"}, "acme-domains excludes tls-cert"},
		{[]string{"--acme-domains", "call.example.com", "--tls-self-signed"}, "acme-domains excludes tls-cert and tls-self-signed"},
		{[]string{"--acme-domains", "https://call.example.com"}, "without a scheme"},
		{[]string{"--acme-domains", "call.example.com:443"}, "without a port or path"},
		{[]string{"--acme-domains", "call.example.com/app"}, "without a port or path"},
		{[]string{"--acme-domains", "203.0.113.7"}, "an IP address"},
		{[]string{"--acme-domains", "*.example.com"}, "wildcards"},
		{[]string{"--acme-domains", "localhost"}, "localhost"},
		{[]string{"--acme-domains", "switchboard"}, "not a domain name"},
		{[]string{"--acme-domains", "bad_name.example.com"}, "not a domain name"},
		{[]string{"--acme-domains", "-x.example.com"}, "not a domain name"},
		{[]string{"--acme-domains", "call.example.com", "--acme-email", "ops"}, "acme-email"},
		{[]string{"--acme-domains", "call.example.com", "--acme-ca", "http://ca.example.com/dir"}, "acme-ca"},
		{[]string{"--acme-domains", "call.example.com", "--acme-ca", "ca.example.com/dir"}, "acme-ca"},
		{[]string{"--acme-domains", "call.example.com", "--acme-http-listen", "80"}, "acme-http-listen"},
		{[]string{"--acme-domains", "call.example.com", "--acme-http-listen", "off", "--acme-tls-alpn=false"}, "no challenge left"},
		{[]string{"--acme-email", "ops@example.com"}, "need acme-domains"},
		{[]string{"--acme-storage", filepath.Join("x", "acme")}, "need acme-domains"},
	} {
		_, err := Load(tc.args, fakeEnv(nil), io.Discard)
		if err == nil || !strings.Contains(err.Error(), tc.want) || strings.Contains(err.Error(), "\n") {
			t.Errorf("Load(%q): err = %v, want one line with %q", tc.args, err, tc.want)
		}
	}
	for _, ok := range []string{"call.example.com", "a-b.c-d.example", "xn--bcher-kva.example", "call.switchboard.test"} {
		if _, err := Load([]string{"--acme-domains", ok}, fakeEnv(nil), io.Discard); err != nil {
			t.Errorf("--acme-domains %s: %v", ok, err)
		}
	}
}

// TestACMEStorageDir: the storage defaults to the per-user data directory.
func TestACMEStorageDir(t *testing.T) {
	var a ACME
	t.Setenv("XDG_DATA_HOME", "/data")
	if got := a.StorageDir(); got != filepath.Join("/data", "switchboard", "acme") {
		t.Errorf("with XDG_DATA_HOME: %s", got)
	}
	t.Setenv("XDG_DATA_HOME", "")
	t.Setenv("HOME", "/home/sb")
	if got := a.StorageDir(); got != filepath.Join("/home/sb", ".local", "share", "switchboard", "acme") {
		t.Errorf("with HOME: %s", got)
	}
	t.Setenv("HOME", "")
	if got := a.StorageDir(); got != filepath.Join("switchboard-data", "acme") {
		t.Errorf("without a home: %s", got)
	}
}
