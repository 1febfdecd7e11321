package browsertest

import (
	"context"
	"net/http/httptest"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/switchboard-rtc/switchboard/internal/auth"
	"github.com/switchboard-rtc/switchboard/internal/config"
	"github.com/switchboard-rtc/switchboard/internal/server"
	"github.com/switchboard-rtc/switchboard/internal/testserver"
	"github.com/switchboard-rtc/switchboard/internal/web"
	"github.com/switchboard-rtc/switchboard/protocol"
)

// tokenEnv is a real server with one API key, the switchboard binary and Chromium.
type tokenEnv struct {
	base    string
	key     auth.Key
	bin     string
	browser context.Context
}

func newTokenEnv(t *testing.T, timeout time.Duration) *tokenEnv {
	t.Helper()
	requireChromium(t)
	e := &tokenEnv{key: auth.NewKey(), bin: buildCLI(t)}
	e.base = testserver.Start(t, func(c *config.Config) { c.APIKeys = []string{e.key.Spec()} })
	e.browser = startChromium(t, timeout)
	return e
}

var appLinkRE = regexp.MustCompile(`^http://127\.0\.0\.1:[0-9]+/r/([A-Za-z0-9_.-]+)#token=([A-Za-z0-9_.-]+)$`)

// link runs `switchboard token ... --url BASE` and returns the web-app link it prints.
func (e *tokenEnv) link(t *testing.T, args ...string) string {
	t.Helper()
	cmd := exec.Command(e.bin, append([]string{"token", "--url", e.base}, args...)...)
	cmd.Env = append(cmd.Environ(), "SWITCHBOARD_API_KEYS="+e.key.Spec())
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("switchboard token %v: %v", args, err)
	}
	l := strings.TrimSpace(string(out))
	if !appLinkRE.MatchString(l) {
		t.Fatalf("switchboard token printed %q: want BASE/r/ROOM#token=JWT", l)
	}
	return l
}

// Two pages opened from `switchboard token --url` links show the pre-join screen with the
// token's name (fixed), join the token's room, see each other under the tokens' names, and the
// token leaves the address bar.
func TestWebAppTokenLinks(t *testing.T) {
	e := newTokenEnv(t, 60*time.Second)
	la := e.link(t, "--room", "sales", "--identity", "alice", "--name", "Alice")
	lb := e.link(t, "--room", "sales", "--identity", "bob", "--name", "Bob")
	a := openApp(t, e.browser, "A", la, 1024, 768)
	b := openApp(t, e.browser, "B", lb, 1024, 768)
	for _, p := range []*appTab{a, b} {
		if got := p.joinPrejoin(); got != "true" {
			t.Errorf("%s: the pre-join screen's name is not fixed to the token's", p.name)
		}
	}
	for _, p := range []struct {
		tab        *appTab
		self, peer string
	}{{a, "Alice", "Bob"}, {b, "Bob", "Alice"}} {
		p.tab.waitFor(`document.body.dataset.joined === 'true' && document.querySelector('.tile[data-peer][data-state="connected"]')`, "joined and connected to the other")
		got := appEval[[]string](p.tab, `[
			document.body.dataset.view,
			document.querySelector('#local-name').textContent,
			[...document.querySelectorAll('.tile[data-peer] .name')].map((n) => n.textContent).join(','),
			[...document.querySelectorAll('.tile[data-peer]')].map((t) => window.switchboardApp.client.peers.get(t.dataset.peer).identity).join(','),
			location.href,
			window.switchboardApp.client.room,
			String(document.querySelector('#copy-link').hidden),
		]`)
		want := []string{"call", p.self + " (you)", p.peer, strings.ToLower(p.peer), "", "sales", "true"}
		if !strings.HasSuffix(got[4], "/r/sales") || strings.Contains(got[4], "token") {
			t.Errorf("%s: address bar %q: want /r/sales without the token", p.tab.name, got[4])
		}
		got[4] = ""
		if strings.Join(got, "|") != strings.Join(want, "|") {
			t.Errorf("%s: view, self, tiles, identities, -, room, copy-link hidden = %q, want %q", p.tab.name, got, want)
		}
	}
	// The tab keeps the token: a reload joins again (a new presence of the same identity).
	idA := appEval[string](a, `window.switchboardApp.client.id`)
	if err := chromedp.Do(a.ctx, chromedp.Reload()); err != nil {
		t.Fatalf("reload: %v", err)
	}
	a.joinPrejoin()
	a.waitFor(`window.switchboardApp && window.switchboardApp.client.id !== `+js(idA)+` && document.body.dataset.joined === 'true'`, "rejoined after a reload")
	b.waitFor(`document.querySelectorAll('.tile[data-peer]').length === 1 && document.querySelector('.tile[data-peer] .name').textContent === 'Alice'`, "one tile for Alice after her reload")
	for _, p := range []*appTab{a, b} {
		if errs := p.errors(); len(errs) > 0 {
			t.Errorf("%s console errors: %v", p.name, errs)
		}
	}
}

// A link with an expired token shows a page saying so, not a blank page or a call.
func TestWebAppExpiredTokenLink(t *testing.T) {
	e := newTokenEnv(t, 45*time.Second)
	tok, err := auth.Mint(e.key, auth.NewClaims("alice", "sales", time.Now().Add(-2*time.Hour), time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	p := openApp(t, e.browser, "expired", e.base+"/r/sales#token="+tok, 1024, 768)
	p.joinPrejoin() // the server alone judges a token: the page asks it when joining
	p.waitFor(`document.body.dataset.view === 'ended'`, "the ended page")
	got := appEval[[]string](p, `[document.body.dataset.ended, document.querySelector('#ended-title').textContent,
		document.querySelector('#ended-text').textContent, String(document.querySelector('#ended').hidden),
		String(document.querySelector('#call').hidden), location.hash]`)
	if got[0] != "token-expired" || got[1] != "This link has expired" || !strings.Contains(got[2], "ask for a new one") ||
		got[3] != "false" || got[4] != "true" || got[5] != "" {
		t.Fatalf("ended page: code, title, text, ended hidden, call hidden, hash = %q", got)
	}
	// The refused token is forgotten: a reload does not try it again.
	if v := appEval[string](p, `sessionStorage.getItem('switchboard.token.sales') || ''`); v != "" {
		t.Fatalf("the tab kept the refused token")
	}
}

// Opening the same person's link in a second tab takes the call over; the first tab says so.
func TestWebAppTokenReplaced(t *testing.T) {
	e := newTokenEnv(t, 45*time.Second)
	l := e.link(t, "--room", "sales", "--identity", "alice", "--name", "Alice")
	first := openApp(t, e.browser, "first", l, 1024, 768)
	first.joinPrejoin()
	first.waitFor(`document.body.dataset.joined === 'true'`, "first tab joined")
	second := openApp(t, e.browser, "second", l, 1024, 768)
	second.joinPrejoin()
	second.waitFor(`document.body.dataset.joined === 'true'`, "second tab joined")
	first.waitFor(`document.body.dataset.view === 'ended' && document.body.dataset.ended === 'replaced'`, "the first tab's replaced page")
	if title := appEval[string](first, `document.querySelector('#ended-title').textContent`); title != "You joined from another tab" {
		t.Fatalf("title %q", title)
	}
	if v := appEval[string](second, `document.body.dataset.view`); v != "call" {
		t.Fatalf("second tab view %q", v)
	}
}

// keyedEnv is a test-page env (see setup) on a server with one API key whose hub the test
// drives (server messages, meta updates, removal).
type keyedEnv struct {
	*env
	key auth.Key
	srv *server.Server
	url string // the server's base URL
}

func setupKeyed(t *testing.T, timeout time.Duration, mod func(*config.Config)) *keyedEnv {
	t.Helper()
	requireChromium(t)
	pages := httptest.NewServer(web.Handler())
	t.Cleanup(pages.Close)
	k := &keyedEnv{key: auth.NewKey()}
	srv := testserver.Run(t, func(c *config.Config) {
		c.APIKeys = []string{k.key.Spec()}
		c.AllowedOrigins = append(c.AllowedOrigins, pages.URL)
		if mod != nil {
			mod(c)
		}
	})
	k.srv, k.url = srv, "http://"+srv.Addr().String()
	k.env = &env{t: t, wsURL: "ws://" + srv.Addr().String() + "/ws", browser: startChromium(t, timeout)}
	k.pageURL = pages.URL + "/sdk/test.html?ws=" + k.wsURL
	return k
}

func (k *keyedEnv) mint(t *testing.T, identity string) string {
	t.Helper()
	tok, err := auth.Mint(k.key, auth.NewClaims(identity, "sales", time.Now(), time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// The browser SDK with a token function: called for the first join and, after the lost
// presence could not be resumed, once more for a fresh join; server messages and meta updates
// reach the page; removal ends the client with the code and no reconnect.
func TestBrowserTokenFunction(t *testing.T) {
	k := setupKeyed(t, 60*time.Second, func(c *config.Config) { c.ResumeGrace = 100 * time.Millisecond })
	proxy := testserver.NewCutter(t, strings.TrimPrefix(k.url, "http://"))
	a, b := k.page("A"), k.page("B")
	eval[bool](a, `(window.tokens = [`+js(k.mint(t, "alice"))+`, `+js(k.mint(t, "alice"))+`], window.tokenCalls = 0, true)`)
	// The first retry waits at least 1.1 s, well past the 100 ms grace: the resume fails.
	idA := eval[string](a, `T.join(`+js("ws://"+proxy.Addr()+"/ws")+`, '', 'A', {
		token: async () => { window.tokenCalls++; return window.tokens.shift(); },
		reconnect: { minDelayMs: 1500 },
		onServerMessage(data) { T.messages.push({ server: true, data }); },
		onPeerUpdated(peer) { T.note('updated ' + peer.id + ' ' + JSON.stringify(peer.meta)); },
		onClose(ev) { T.note('closed ' + ev.code + ' ' + (T.client.error ? T.client.error.code : '')); },
	})`)
	idB := eval[string](b, `T.join(null, '', 'B', {token: `+js(k.mint(t, "bob"))+`})`)
	eval[bool](a, `T.waitConnected(`+js(idB)+`)`)
	if got := eval[[]string](a, `[T.client.room, T.client.peers.get(`+js(idB)+`).identity, String(window.tokenCalls)]`); strings.Join(got, " ") != "sales bob 1" {
		t.Fatalf("room, b's identity, token calls = %q", got)
	}

	proxy.Cut()
	got := eval[map[string]any](a, `T.waitReconnect("reconnected")`)
	newA, _ := got["id"].(string)
	if got["resumed"] != false || newA == idA {
		t.Fatalf("reconnected %v: want a new presence after the grace", got)
	}
	if n := eval[int](a, `window.tokenCalls`); n != 2 {
		t.Fatalf("token function called %d times, want 2", n)
	}
	eval[bool](b, `T.waitConnected(`+js(newA)+`)`)

	ctx := context.Background()
	hub := k.srv.Hub()
	if err := hub.Notify(ctx, "sales", protocol.PeerID(newA), []byte(`{"text":"hello A"}`)); err != nil {
		t.Fatal(err)
	}
	if m := eval[map[string]any](a, `T.waitMessage()`); m["text"] != "hello A" {
		t.Fatalf("server message %v", m)
	}
	if err := hub.UpdateMeta(ctx, "sales", protocol.PeerID(idB), []byte(`{"hand":"up"}`)); err != nil {
		t.Fatal(err)
	}
	a.waitLog(t, `updated `+idB+` {"hand":"up"}`)
	if err := hub.Remove(ctx, "sales", protocol.PeerID(newA)); err != nil {
		t.Fatal(err)
	}
	a.waitLog(t, "closed 1008 removed")
	if n := eval[int](a, `T.reconnects.filter((r) => r.event === 'reconnecting').length`); n != 1 {
		t.Fatalf("%d reconnect attempts in all; want only the one after the cut", n)
	}
	if errs := eval[[]string](a, `T.errors`); len(errs) == 0 || !strings.Contains(errs[len(errs)-1], "removed") {
		t.Fatalf("onError did not report the removal: %v", errs)
	}
}

// waitLog waits for the page's log to hold line.
func (p *page) waitLog(t *testing.T, line string) {
	t.Helper()
	eval[bool](p, `(async () => {
		const end = Date.now() + 10000;
		while (!T.log.includes(`+js(line)+`)) {
			if (Date.now() > end) throw new Error('no log line ' + `+js(line)+`);
			await new Promise((r) => setTimeout(r, 50));
		}
		return true;
	})()`)
}
