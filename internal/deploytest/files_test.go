package deploytest

import (
	"bufio"
	"flag"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/switchboard-rtc/switchboard/internal/auth"
	"github.com/switchboard-rtc/switchboard/internal/config"
)

const (
	unitFile   = "../../deploy/switchboard.service"
	yamlFile   = "../../deploy/switchboard.yaml"
	envExample = "../../deploy/switchboard.env.example"
)

// otherTools are flags of other programs the page shows (systemctl enable --now).
var otherTools = []string{"now"}

// serveFlags returns the names of `switchboard serve`'s flags.
func serveFlags() map[string]bool {
	cfg := config.Default()
	var path string
	names := map[string]bool{}
	config.FlagSet(&cfg, &path).VisitAll(func(f *flag.Flag) { names[f.Name] = true })
	return names
}

var (
	flagRef = regexp.MustCompile("(?:^|[\\s`(\\[])--([a-z][a-z0-9-]+)")
	envRef  = regexp.MustCompile(`\bSWITCHBOARD_[A-Z0-9_]+\b`)
)

// TestDocumentedFlagsExist: every --flag and SWITCHBOARD_ variable docs/deploy.md and the files
// in deploy/ name is one of serve's.
func TestDocumentedFlagsExist(t *testing.T) {
	flags := serveFlags()
	for _, path := range []string{deployDoc, unitFile, yamlFile, envExample} {
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range flagRef.FindAllStringSubmatch(string(b), -1) {
			if !flags[m[1]] && !slices.Contains(otherTools, m[1]) {
				t.Errorf("%s names --%s, which switchboard serve does not have", path, m[1])
			}
		}
		for _, v := range envRef.FindAllString(string(b), -1) {
			name := strings.ReplaceAll(strings.ToLower(strings.TrimPrefix(v, config.EnvPrefix)), "_", "-")
			if !flags[name] {
				t.Errorf("%s names %s, which is no flag's variable", path, v)
			}
		}
	}
}

// TestVPSCommand: section 1's command, with the secrets its export lines make, is a valid
// configuration that serves the domain with ACME on 443.
func TestVPSCommand(t *testing.T) {
	cfg := serveConfig(t, "serve-vps", map[string]string{
		"SWITCHBOARD_API_KEYS":    auth.NewKey().Spec(),
		"SWITCHBOARD_TURN_SECRET": "a secret from /dev/urandom",
	})
	if cfg.Listen != ":443" || !slices.Equal(cfg.ACMEDomains, []string{"call.example.com"}) || cfg.ACMEHTTPListen != ":80" ||
		cfg.PublicURL != "https://call.example.com" || len(cfg.APIKeys) != 1 || cfg.TURNSecret == "" {
		t.Fatalf("section 1's command: %+v", cfg)
	}
}

// unitSettings returns the unit file's Key=value lines (repeated keys in order).
func unitSettings(t *testing.T) map[string][]string {
	t.Helper()
	f, err := os.Open(unitFile)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	kv := map[string][]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if k, v, ok := strings.Cut(line, "="); ok && !strings.HasPrefix(line, "#") {
			kv[k] = append(kv[k], v)
		}
	}
	return kv
}

// TestSystemdUnit: deploy/switchboard.service passes systemd-analyze verify without a word (its
// ExecStart pointed at an executable that exists here), rates at most 2.0 on systemd-analyze
// security's exposure scale, and keeps the hardening docs/deploy.md describes.
func TestSystemdUnit(t *testing.T) {
	analyze := tool(t, "systemd-analyze")
	b, err := os.ReadFile(unitFile)
	if err != nil {
		t.Fatal(err)
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	unit := replaceOnce(t, "switchboard.service", string(b), "ExecStart=/usr/local/bin/switchboard ", "ExecStart="+exe+" ")
	path := filepath.Join(t.TempDir(), "switchboard.service")
	if err := os.WriteFile(path, []byte(unit), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(analyze, "verify", path).CombinedOutput(); err != nil || len(out) > 0 {
		t.Errorf("systemd-analyze verify: %v\n%s", err, out)
	}
	if out, err := exec.Command(analyze, "security", "--offline=yes", "--threshold=20", path).CombinedOutput(); err != nil {
		t.Errorf("systemd-analyze security: exposure over 2.0 (%v):\n%s", err, out)
	}

	kv := unitSettings(t)
	for k, want := range map[string]string{
		"NoNewPrivileges": "yes", "ProtectSystem": "strict", "ProtectHome": "yes", "PrivateTmp": "yes",
		"DynamicUser": "yes", "AmbientCapabilities": "CAP_NET_BIND_SERVICE", "CapabilityBoundingSet": "CAP_NET_BIND_SERVICE",
		"MemoryDenyWriteExecute": "yes", "StateDirectory": "switchboard", "Restart": "on-failure", "KillSignal": "SIGTERM",
		"EnvironmentFile": "/etc/switchboard/switchboard.env", "LimitNOFILE": "65536",
	} {
		if got := kv[k]; len(got) != 1 || got[0] != want {
			t.Errorf("%s=%q, want %s", k, got, want)
		}
	}
	if got := kv["SystemCallFilter"]; !slices.Contains(got, "@system-service") {
		t.Errorf("SystemCallFilter=%q, want @system-service", got)
	}
	if got := kv["RestrictAddressFamilies"]; len(got) != 1 || strings.Contains(got[0], "AF_PACKET") {
		t.Errorf("RestrictAddressFamilies=%q", got)
	}
	// A stop timeout above the shutdown timeout, so SIGKILL never cuts the goodbyes.
	stop, err := time.ParseDuration(strings.Join(kv["TimeoutStopSec"], ""))
	if err != nil {
		t.Fatalf("TimeoutStopSec=%q: %v", kv["TimeoutStopSec"], err)
	}
	if cfg := loadDeployYAML(t, validEnv()); stop <= cfg.ShutdownTimeout+5*time.Second {
		t.Errorf("TimeoutStopSec %v leaves too little above shutdown-timeout %v", stop, cfg.ShutdownTimeout)
	}
	if got := strings.Join(kv["ExecStart"], ""); got != "/usr/local/bin/switchboard serve --config /etc/switchboard/switchboard.yaml" {
		t.Errorf("ExecStart=%s", got)
	}
}

// envFile reads VARIABLE=value lines (comments left out).
func envFile(t *testing.T, path string) map[string]string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	env := map[string]string{}
	for _, line := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(strings.TrimSpace(line), "="); ok && !strings.HasPrefix(k, "#") {
			env[k] = v
		}
	}
	return env
}

// validEnv is the example environment file with its placeholder replaced as it says.
func validEnv() map[string]string {
	return map[string]string{"SWITCHBOARD_API_KEYS": auth.NewKey().Spec(), "SWITCHBOARD_TURN_SECRET": ""}
}

func loadDeployYAML(t *testing.T, env map[string]string) config.Config {
	t.Helper()
	cfg, err := config.Load([]string{"--config", yamlFile}, func(k string) (string, bool) { v, ok := env[k]; return v, ok }, nil)
	if err != nil {
		t.Fatalf("deploy/switchboard.yaml with %v: %v", env, err)
	}
	return cfg
}

// TestDeployConfig: deploy/switchboard.yaml is a valid configuration for section 1 with the
// secrets of the example environment file filled in, and holds no secret itself; left as it
// is, the example environment file makes the server refuse to start rather than run with a
// placeholder key; the ACME storage is in the unit's state directory.
func TestDeployConfig(t *testing.T) {
	env := envFile(t, envExample)
	if _, ok := env["SWITCHBOARD_API_KEYS"]; !ok {
		t.Fatalf("%s sets no SWITCHBOARD_API_KEYS", envExample)
	}
	if _, err := config.Load([]string{"--config", yamlFile}, func(k string) (string, bool) { v, ok := env[k]; return v, ok }, nil); err == nil || !strings.Contains(err.Error(), "api-keys") {
		t.Errorf("the example environment file as it is: %v, want a refusal of its api-keys", err)
	}
	for k := range env {
		if _, ok := validEnv()[k]; !ok {
			t.Errorf("%s sets %s: TestDeployConfig does not know it", envExample, k)
		}
	}
	cfg := loadDeployYAML(t, validEnv())
	if cfg.Listen != ":443" || !slices.Equal(cfg.ACMEDomains, []string{"call.example.com"}) || cfg.MetricsListen != "127.0.0.1:9090" || cfg.MetricsPublic {
		t.Errorf("deploy/switchboard.yaml: %+v", cfg)
	}
	state := "/var/lib/" + strings.Join(unitSettings(t)["StateDirectory"], "")
	if !strings.HasPrefix(cfg.ACMEStorage, state+"/") {
		t.Errorf("acme-storage %q is outside the unit's state directory %s (the only writable place)", cfg.ACMEStorage, state)
	}
	b, err := os.ReadFile(yamlFile)
	if err != nil {
		t.Fatal(err)
	}
	for _, secret := range []string{"api-keys", "turn-secret", "webhook-secret"} {
		if regexp.MustCompile(`(?m)^\s*` + secret + `:`).Match(b) {
			t.Errorf("deploy/switchboard.yaml sets %s: secrets belong in the environment file", secret)
		}
	}
}
