package config

import (
	"io"
	"strings"
	"testing"
)

// TestTURNTLSListen: turn-tls-listen comes from the file, the environment and the flag like
// every option; empty shares the HTTPS port, host:port is a port of its own, off is none;
// anything else, or a port of its own without a certificate, is refused with the reason.
func TestTURNTLSListen(t *testing.T) {
	load := func(args []string, env map[string]string) (Config, error) {
		return Load(args, fakeEnv(env), io.Discard)
	}
	yaml := writeYAML(t, "tls-self-signed: true\nturn-tls-listen: \":5349\"\n")
	cfg, err := load([]string{"--config", yaml}, nil)
	if err != nil || cfg.TURNTLSListen != ":5349" || !cfg.TURNTLSOwnPort() || cfg.TURNTLSShared() {
		t.Fatalf("from YAML: %q own %v shared %v (%v)", cfg.TURNTLSListen, cfg.TURNTLSOwnPort(), cfg.TURNTLSShared(), err)
	}
	cfg, err = load([]string{"--config", yaml}, map[string]string{"SWITCHBOARD_TURN_TLS_LISTEN": "off"})
	if err != nil || cfg.TURNTLSListen != "off" || cfg.TURNTLSOwnPort() || cfg.TURNTLSShared() {
		t.Fatalf("env off: %q (%v)", cfg.TURNTLSListen, err)
	}
	cfg, err = load([]string{"--config", yaml, "--turn-tls-listen", ""}, map[string]string{"SWITCHBOARD_TURN_TLS_LISTEN": "off"})
	if err != nil || !cfg.TURNTLSShared() {
		t.Fatalf("flag empty: %q shared %v (%v)", cfg.TURNTLSListen, cfg.TURNTLSShared(), err)
	}
	if cfg, err = load(nil, nil); err != nil || cfg.TURNTLSShared() || cfg.TURNTLSOwnPort() {
		t.Fatalf("defaults, no TLS: shared %v own %v (%v)", cfg.TURNTLSShared(), cfg.TURNTLSOwnPort(), err)
	}
	if cfg, err = load([]string{"--tls-self-signed", "--turn=false"}, nil); err != nil || cfg.TURNTLSShared() {
		t.Fatalf("TURN off: shared %v (%v)", cfg.TURNTLSShared(), err)
	}
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--tls-self-signed", "--turn-tls-listen", "5349"}, "want host:port"},
		{[]string{"--tls-self-signed", "--turn-tls-listen", ":https"}, "want host:port"},
		{[]string{"--tls-self-signed", "--turn-tls-listen", ":70000"}, "want host:port"},
		{[]string{"--tls-self-signed", "--turn-tls-listen", "on"}, "want host:port"},
		{[]string{"--turn-tls-listen", ":5349"}, "set tls-cert and tls-key, or tls-self-signed"},
	} {
		if _, err := load(c.args, nil); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%v: %v, want an error with %q", c.args, err, c.want)
		}
	}
}
