package deploytest

import (
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// nginxSite returns section 2's nginx block as it runs here: upstream is the server,
// listening on 127.0.0.1 (httpsPort for 443, httpPort for 80; the IPv6 listens left out), with
// the test's certificate. Everything else is the page's, as written.
func nginxSite(t *testing.T, site, upstream string, httpsPort, httpPort int, certPath, keyPath string) string {
	t.Helper()
	site = replaceOnce(t, "nginx", site, "server 127.0.0.1:8080;", "server "+upstream+";")
	site = replaceOnce(t, "nginx", site, "listen 443 ssl;", fmt.Sprintf("listen 127.0.0.1:%d ssl;", httpsPort))
	site = replaceOnce(t, "nginx", site, "listen 80;", fmt.Sprintf("listen 127.0.0.1:%d;", httpPort))
	site = replaceOnce(t, "nginx", site, "listen [::]:443 ssl;", "")
	site = replaceOnce(t, "nginx", site, "listen [::]:80;", "")
	site = replaceOnce(t, "nginx", site, "/etc/letsencrypt/live/call.example.com/fullchain.pem", certPath)
	site = replaceOnce(t, "nginx", site, "/etc/letsencrypt/live/call.example.com/privkey.pem", keyPath)
	return site
}

// runNginx checks site with nginx -t and runs it inside an http block (as Debian's
// /etc/nginx/conf.d/*.conf are), one process as the test's user, everything in dir; it waits
// until port listens.
func runNginx(t *testing.T, dir, site string, port int) {
	t.Helper()
	nginx := tool(t, "nginx", "/usr/sbin/nginx")
	sitePath := filepath.Join(dir, "switchboard.conf")
	if err := os.WriteFile(sitePath, []byte(site), 0o644); err != nil {
		t.Fatal(err)
	}
	var temps strings.Builder
	for _, k := range []string{"client_body", "proxy", "fastcgi", "uwsgi", "scgi"} {
		fmt.Fprintf(&temps, "    %s_temp_path %s;\n", k, filepath.Join(dir, k))
	}
	main := fmt.Sprintf(`daemon off;
master_process off;
worker_processes 1;
pid %s;
error_log %s info;
events { worker_connections 1024; }
http {
    access_log %s;
%s    include %s;
}
`, filepath.Join(dir, "nginx.pid"), filepath.Join(dir, "error.log"), filepath.Join(dir, "access.log"), temps.String(), sitePath)
	mainPath := filepath.Join(dir, "nginx.conf")
	if err := os.WriteFile(mainPath, []byte(main), 0o644); err != nil {
		t.Fatal(err)
	}
	args := []string{"-e", filepath.Join(dir, "error.log"), "-p", dir, "-c", mainPath}
	if out, err := exec.Command(nginx, append([]string{"-t"}, args...)...).CombinedOutput(); err != nil {
		t.Fatalf("nginx -t rejects the configuration of docs/deploy.md: %v\n%s\n%s", err, out, site)
	}
	startProcess(t, "nginx", exec.Command(nginx, args...), port)
}

// nginxProxy is a proxyStarter for section 2's nginx block.
func nginxProxy(t *testing.T, dir, upstream string, httpsPort int, certPath, keyPath string) {
	t.Helper()
	site := nginxSite(t, docBlock(t, "nginx"), upstream, httpsPort, freePort(t), certPath, keyPath)
	runNginx(t, dir, site, httpsPort)
}

// TestBehindNginx (docs/deploy.md, section 2): behind the page's nginx site, the web app loads,
// WebSocket signaling works (a browser's Origin of the public URL accepted, another refused),
// the official socket.io-client connects over long polling and upgrades, and clients on
// polling only and on WebSockets only relay to each other; /metrics is not served through it.
func TestBehindNginx(t *testing.T) {
	checkBehindProxy(t, nginxProxy)
}

// TestBehindNginxClientAddress: with --trusted-proxies 127.0.0.1 the server counts and logs
// each client that reaches nginx by its own address, whatever it forwards itself; without it
// every client is nginx.
func TestBehindNginxClientAddress(t *testing.T) {
	checkClientAddress(t, nginxProxy)
}

// TestNginxRedirect: the page's port-80 server block sends browsers to https, keeping the path
// and the query.
func TestNginxRedirect(t *testing.T) {
	dir := t.TempDir()
	certPath, keyPath, _ := testCert(t, dir)
	httpPort := freePort(t)
	runNginx(t, dir, nginxSite(t, docBlock(t, "nginx"), "127.0.0.1:9", freePort(t), httpPort, certPath, keyPath), httpPort)
	code, _, hdr := get(t, httpsClient(t, "127.0.0.2", nil), fmt.Sprintf("http://127.0.0.1:%d/r/standup?x=1", httpPort))
	if code != http.StatusMovedPermanently || hdr.Get("Location") != "https://127.0.0.1/r/standup?x=1" {
		t.Fatalf("plain HTTP: %d, Location %q; want 301 to https://127.0.0.1/r/standup?x=1", code, hdr.Get("Location"))
	}
}
