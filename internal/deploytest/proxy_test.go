package deploytest

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/coder/websocket"

	"github.com/switchboard-rtc/switchboard/internal/config"
	"github.com/switchboard-rtc/switchboard/internal/server"
	"github.com/switchboard-rtc/switchboard/internal/testenv"
)

// proxyStarter starts a reverse proxy configured from docs/deploy.md in front of upstream
// (host:port), with TLS on 127.0.0.1:httpsPort from the certificate files; files go in dir.
type proxyStarter func(t *testing.T, dir, upstream string, httpsPort int, certPath, keyPath string)

// stack is a server started as docs/deploy.md says, behind a reverse proxy on loopback.
type stack struct {
	srv    *server.Server
	log    *testenv.Buffer
	base   string // https://127.0.0.1:PORT: the proxy
	wss    string // wss://127.0.0.1:PORT/ws through the proxy
	pool   *x509.CertPool
	caFile string // the proxy's certificate, for Node
}

// startStack starts the server of section 2's serve command (its listen address and public
// URL moved to loopback ports, changed further by mod) and the proxy in front of it.
func startStack(t *testing.T, start proxyStarter, mod func(*config.Config)) *stack {
	t.Helper()
	dir := t.TempDir()
	certPath, keyPath, pool := testCert(t, dir)
	port := freePort(t)
	cfg := serveConfig(t, "serve-proxy", nil)
	if cfg.Listen != "127.0.0.1:8080" || cfg.PublicURL != "https://call.example.com" ||
		len(cfg.TrustedProxies) != 1 || cfg.TrustedProxies[0] != "127.0.0.1" {
		t.Fatalf("docs/deploy.md, serve-proxy: listen %q, public URL %q, trusted proxies %q: update the test with the page",
			cfg.Listen, cfg.PublicURL, cfg.TrustedProxies)
	}
	cfg.Listen = "127.0.0.1:0"
	cfg.PublicURL = fmt.Sprintf("https://127.0.0.1:%d", port)
	cfg.TURNListen = "127.0.0.1:0"
	if mod != nil {
		mod(&cfg)
	}
	st := &stack{log: &testenv.Buffer{}, pool: pool, caFile: certPath}
	st.srv = runServer(t, cfg, st.log)
	start(t, dir, st.srv.Addr().String(), port, certPath, keyPath)
	st.base = fmt.Sprintf("https://127.0.0.1:%d", port)
	st.wss = fmt.Sprintf("wss://127.0.0.1:%d/ws", port)
	return st
}

// checkBehindProxy runs what a deployment behind the proxy must do.
func checkBehindProxy(t *testing.T, start proxyStarter) {
	st := startStack(t, start, nil)
	t.Run("web app", func(t *testing.T) {
		code, body, hdr := get(t, httpsClient(t, "127.0.0.2", st.pool), st.base+"/")
		if code != http.StatusOK || !strings.HasPrefix(hdr.Get("Content-Type"), "text/html") || !strings.Contains(body, "<") {
			t.Fatalf("GET / through the proxy: %d %q", code, hdr.Get("Content-Type"))
		}
	})
	t.Run("websocket signaling", func(t *testing.T) { checkSignaling(t, st) })
	t.Run("socket.io", func(t *testing.T) {
		// Default transports: long polling first, then the upgrade to a WebSocket.
		var up struct{ First, Now, ID string }
		out := nodeScenario(t, st.base, "upgrade", st.caFile)
		if json.Unmarshal([]byte(strings.TrimSpace(out)), &up) != nil || up.First != "polling" || up.Now != "websocket" {
			t.Fatalf("upgrade scenario: %q, want polling then websocket", out)
		}
		// Polling+upgrade, WebSocket only and polling only clients relay to each other.
		if out := nodeScenario(t, st.base, "seed", st.caFile); !strings.Contains(out, `"ok":true`) || !strings.Contains(out, `"polling":"polling"`) {
			t.Fatalf("seed scenario: %q", out)
		}
	})
	t.Run("metrics hidden", func(t *testing.T) {
		if code, _, _ := get(t, httpsClient(t, "127.0.0.2", st.pool), st.base+"/metrics"); code != http.StatusNotFound {
			t.Errorf("/metrics through the proxy: %d, want 404", code)
		}
		// Straight to the server from loopback (the public Host, which --public-url pins).
		req, _ := http.NewRequest(http.MethodGet, "http://"+st.srv.Addr().String()+"/metrics", nil)
		req.Host = strings.TrimPrefix(st.base, "https://")
		resp, err := httpsClient(t, "127.0.0.1", nil).Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), "switchboard_") {
			t.Errorf("/metrics on the server from loopback: %d", resp.StatusCode)
		}
	})
}

// wsClient is a native-protocol client.
type wsClient struct {
	t  *testing.T
	c  *websocket.Conn
	id string
}

// dialWS opens url from src with hdr; it returns the refusal's status when there is one.
func dialWS(t *testing.T, url, src string, pool *x509.CertPool, hdr http.Header) (*wsClient, int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	c, resp, err := websocket.Dial(ctx, url, &websocket.DialOptions{HTTPClient: httpsClient(t, src, pool), HTTPHeader: hdr})
	if err != nil {
		if resp == nil {
			t.Fatalf("dial %s from %s: %v", url, src, err)
		}
		return nil, resp.StatusCode
	}
	t.Cleanup(func() { c.CloseNow() })
	return &wsClient{t: t, c: c}, http.StatusSwitchingProtocols
}

func (w *wsClient) send(v any) {
	w.t.Helper()
	b, _ := json.Marshal(v)
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	if err := w.c.Write(ctx, websocket.MessageText, b); err != nil {
		w.t.Fatalf("write: %v", err)
	}
}

// next reads a frame and checks its type.
func (w *wsClient) next(typ string) map[string]json.RawMessage {
	w.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	_, b, err := w.c.Read(ctx)
	if err != nil {
		w.t.Fatalf("read, waiting for %s: %v", typ, err)
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(b, &m); err != nil || string(m["type"]) != `"`+typ+`"` {
		w.t.Fatalf("got %s, want %s", b, typ)
	}
	return m
}

func (w *wsClient) join(room string) {
	w.t.Helper()
	w.send(map[string]any{"type": "join", "room": room})
	m := w.next("welcome")
	if err := json.Unmarshal(m["peer"], &w.id); err != nil || w.id == "" {
		w.t.Fatalf("welcome without an id: %s", m["peer"])
	}
}

// relay checks that an offer from a reaches b, stamped with a's id.
func relay(t *testing.T, a, b *wsClient) {
	t.Helper()
	a.send(map[string]any{"type": "offer", "target": b.id, "data": map[string]string{"type": "offer", "sdp": "v=0"}})
	m := b.next("offer")
	if string(m["from"]) != `"`+a.id+`"` || !strings.Contains(string(m["data"]), `"sdp":"v=0"`) {
		t.Fatalf("offer as received: %v", m)
	}
}

// checkSignaling: native WebSocket signaling through the proxy, from two addresses; the
// browser's Origin (the public URL's) is accepted, another refused.
func checkSignaling(t *testing.T, st *stack) {
	a, code := dialWS(t, st.wss, "127.0.0.2", st.pool, http.Header{"Origin": {st.base}})
	if code != http.StatusSwitchingProtocols {
		t.Fatalf("a browser of the public origin: %d", code)
	}
	b, _ := dialWS(t, st.wss, "127.0.0.3", st.pool, nil)
	a.join("deploy")
	b.join("deploy")
	a.next("peer-joined")
	relay(t, a, b)
	relay(t, b, a)
	if _, code := dialWS(t, st.wss, "127.0.0.2", st.pool, http.Header{"Origin": {"https://evil.example"}}); code != http.StatusForbidden {
		t.Errorf("a page of another origin: %d, want 403", code)
	}
}

// checkClientAddress: with the trusted proxy, each address that reaches the proxy is its own
// client for the per-client caps and in the log, whatever it forwards itself; without it,
// every client is the proxy.
func checkClientAddress(t *testing.T, start proxyStarter) {
	caps := func(c *config.Config) { c.ConnsPerClient, c.SIOSessionsPerClient = 1, 1 }
	t.Run("trusted", func(t *testing.T) {
		st := startStack(t, start, caps)
		a, code := dialWS(t, st.wss, "127.0.0.2", st.pool, nil)
		if code != http.StatusSwitchingProtocols {
			t.Fatalf("first /ws from 127.0.0.2: %d", code)
		}
		for _, hdr := range []http.Header{nil, {"X-Forwarded-For": {"192.0.2.9"}}, {"Forwarded": {"for=192.0.2.10"}}} {
			if _, code := dialWS(t, st.wss, "127.0.0.2", st.pool, hdr); code != http.StatusTooManyRequests {
				t.Errorf("second /ws from 127.0.0.2 (forwarding %v itself): %d, want 429", hdr, code)
			}
		}
		b, code := dialWS(t, st.wss, "127.0.0.3", st.pool, nil)
		if code != http.StatusSwitchingProtocols {
			t.Fatalf("/ws from 127.0.0.3: %d, want 101 (its own client)", code)
		}
		a.join("addr")
		b.join("addr")
		for i, want := range []int{http.StatusOK, http.StatusTooManyRequests} {
			if code := eioHandshake(t, st, "127.0.0.4"); code != want {
				t.Errorf("Engine.IO handshake %d from 127.0.0.4: %d, want %d", i+1, code, want)
			}
		}
		if code := eioHandshake(t, st, "127.0.0.5"); code != http.StatusOK {
			t.Errorf("Engine.IO handshake from 127.0.0.5: %d, want 200", code)
		}
		if n := logged(st.log.String()); n["127.0.0.2/32"] != 1 || n["127.0.0.3/32"] != 1 || len(n) != 2 {
			t.Errorf("joins logged by client: %v, want one for each of 127.0.0.2 and 127.0.0.3:\n%s", n, st.log.String())
		}
	})
	t.Run("not trusted", func(t *testing.T) {
		st := startStack(t, start, func(c *config.Config) { caps(c); c.TrustedProxies = nil })
		if _, code := dialWS(t, st.wss, "127.0.0.2", st.pool, nil); code != http.StatusSwitchingProtocols {
			t.Fatalf("first /ws: %d", code)
		}
		if _, code := dialWS(t, st.wss, "127.0.0.3", st.pool, nil); code != http.StatusTooManyRequests {
			t.Errorf("/ws from another address without --trusted-proxies: %d, want 429 (every client is the proxy)", code)
		}
	})
}

// eioHandshake opens an Engine.IO long-polling session from src through the proxy.
func eioHandshake(t *testing.T, st *stack, src string) int {
	t.Helper()
	resp, err := httpsClient(t, src, st.pool).Get(st.base + "/socket.io/?EIO=4&transport=polling")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	return resp.StatusCode
}
