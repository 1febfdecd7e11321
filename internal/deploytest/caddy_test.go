package deploytest

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// caddySite returns section 3's Caddyfile as it runs here: the site on 127.0.0.1:httpsPort
// (bound to loopback only) with the test's certificate instead of one from an ACME CA, the upstream the server's
// address. Global options keep Caddy to the test: no admin endpoint, no redirect listener on
// port 80, no trust store changes, a short grace period when it stops.
func caddySite(t *testing.T, site, upstream string, httpsPort int, certPath, keyPath string) string {
	t.Helper()
	site = replaceOnce(t, "caddy", site, "call.example.com {",
		fmt.Sprintf("https://127.0.0.1:%d {\n\tbind 127.0.0.1\n\ttls %s %s", httpsPort, certPath, keyPath))
	site = strings.ReplaceAll(site, "127.0.0.1:8080", upstream)
	return "{\n\tadmin off\n\tauto_https disable_redirects\n\tskip_install_trust\n\tdefault_sni 127.0.0.1\n\tgrace_period 1s\n}\n\n" + site
}

// runCaddy checks the Caddyfile with caddy validate and runs it, its state in dir.
func runCaddy(t *testing.T, dir, caddyfile string, port int) {
	t.Helper()
	caddy := tool(t, "caddy")
	path := filepath.Join(dir, "Caddyfile")
	if err := os.WriteFile(path, []byte(caddyfile), 0o644); err != nil {
		t.Fatal(err)
	}
	env := append(os.Environ(), "HOME="+dir, "XDG_DATA_HOME="+filepath.Join(dir, "data"), "XDG_CONFIG_HOME="+filepath.Join(dir, "config"))
	validate := exec.Command(caddy, "validate", "--config", path, "--adapter", "caddyfile")
	validate.Env = env
	if out, err := validate.CombinedOutput(); err != nil {
		t.Fatalf("caddy validate rejects the Caddyfile of docs/deploy.md: %v\n%s\n%s", err, out, caddyfile)
	}
	run := exec.Command(caddy, "run", "--config", path, "--adapter", "caddyfile")
	run.Env = env
	startProcess(t, "caddy", run, port)
}

// caddyProxy is a proxyStarter for section 3's Caddyfile.
func caddyProxy(t *testing.T, dir, upstream string, httpsPort int, certPath, keyPath string) {
	t.Helper()
	runCaddy(t, dir, caddySite(t, docBlock(t, "caddy"), upstream, httpsPort, certPath, keyPath), httpsPort)
}

// TestBehindCaddy (docs/deploy.md, section 3): what TestBehindNginx checks, behind the page's
// Caddyfile.
func TestBehindCaddy(t *testing.T) {
	checkBehindProxy(t, caddyProxy)
}

// TestBehindCaddyClientAddress: what TestBehindNginxClientAddress checks, behind Caddy.
func TestBehindCaddyClientAddress(t *testing.T) {
	checkClientAddress(t, caddyProxy)
}
