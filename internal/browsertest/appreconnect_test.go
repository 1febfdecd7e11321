package browsertest

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/switchboard-rtc/switchboard/internal/config"
	"github.com/switchboard-rtc/switchboard/internal/server"
	"github.com/switchboard-rtc/switchboard/internal/testserver"
)

// The call pages of A and B reach the server through proxies that the test cuts mid-call.
func TestWebAppRidesOutSignalingLoss(t *testing.T) {
	base, browser := appBrowser(t, 90*time.Second)
	host := strings.TrimPrefix(base, "http://")
	pa, pb := testserver.NewCutter(t, host), testserver.NewCutter(t, host)
	room := "ride-out"
	a := openApp(t, browser, "A", "http://"+pa.Addr()+"/r/"+room+"?name=A", 1024, 768)
	b := openApp(t, browser, "B", "http://"+pb.Addr()+"/r/"+room+"?name=B", 1024, 768)
	rideOut(t, a, b, func() {
		if n := pa.Cut() + pb.Cut(); n < 2 {
			t.Fatalf("cut %d connections: the pages are not connected through the proxies", n)
		}
	})
}

// The server under a web-app call dies (its connections go silent, then it stops) and a new
// one with the same resume secret starts on the same address: both pages are restored from
// their resume tokens, one after the other, and the call goes on as after a cut.
func TestWebAppRidesOutServerRestart(t *testing.T) {
	requireChromium(t)
	srv1, stop1 := runSecretServer(t, "127.0.0.1:0")
	addr := srv1.Addr().String()
	browser := startChromium(t, 90*time.Second)
	pa, pb := testserver.NewCutter(t, addr), testserver.NewCutter(t, addr)
	room := "restart"
	a := openApp(t, browser, "A", "http://"+pa.Addr()+"/r/"+room+"?name=A", 1024, 768)
	b := openApp(t, browser, "B", "http://"+pb.Addr()+"/r/"+room+"?name=B", 1024, 768)
	rideOut(t, a, b, func() {
		pa.Sever()
		pb.Sever()
		stop1()
		runSecretServer(t, addr)
		pa.Cut()
		pb.Cut()
	})
}

// runSecretServer runs a server with a fixed resume secret on addr ("127.0.0.1:0" for any port) and
// returns it with a function that stops it (also run when the test ends).
func runSecretServer(t *testing.T, addr string) (*server.Server, func()) {
	t.Helper()
	return testserver.RunStoppable(t, func(c *config.Config) {
		c.Listen = addr
		c.ShutdownTimeout = time.Second
		c.ResumeSecret = "browsertest-restart-secret-0123456789abcdef"
	})
}

// rideOut checks that a call between the app pages a and b survives disrupt (their signaling
// connections lost, or the server restarted): each page shows a discreet "Reconnecting…"
// badge that moves nothing, then hides it once resumed; ids stay, the remote tiles stay (the
// same elements) and keep decoding video, A's microphone-off sign stays on B's page (and goes
// when A unmutes after), no "left" or "joined" line appears, chat flows, no console errors.
func rideOut(t *testing.T, a, b *appTab, disrupt func()) {
	t.Helper()
	tabs := []*appTab{a, b}
	ids := map[*appTab]string{}
	sysBefore := map[*appTab][]string{}
	for _, p := range tabs {
		p.waitVideos(1)
		ids[p] = appEval[string](p, `window.switchboardApp.client.id`)
	}
	signOfA := `document.querySelector('.tile[data-peer=` + js(ids[a]) + `]')?.dataset.mic === 'off'`
	appEval[bool](a, `(document.querySelector('#mic').click(), true)`)
	b.waitFor(signOfA, "A's microphone-off sign on B's page")
	for _, p := range tabs {
		appEval[bool](p, `(() => {
			const badge = document.getElementById('conn-state');
			const box = (sel) => JSON.stringify(document.querySelector(sel).getBoundingClientRect());
			const boxes = () => [box('.controls'), box('#chat-form'), box('#grid')].join(' ');
			window.__badge = [];
			window.__boxes = boxes();
			window.__boxesWhileDown = [];
			new MutationObserver(() => {
				window.__badge.push(badge.hidden ? 'hidden' : 'shown');
				if (!badge.hidden) window.__boxesWhileDown.push(boxes());
			}).observe(badge, { attributes: true, attributeFilter: ['hidden'] });
			for (const el of document.querySelectorAll('.tile.remote')) el.__before = true;
			return true;
		})()`)
		sysBefore[p] = appEval[[]string](p, `[...document.querySelectorAll('#chat-log li.sys')].map((li) => li.textContent)`)
	}

	disrupt()
	for _, p := range tabs {
		p.waitFor(`window.__badge.includes('shown')`, "the Reconnecting badge")
		p.waitFor(`window.__badge.at(-1) === 'hidden' && !document.body.dataset.reconnecting && !window.switchboardApp.client.reconnecting`, "resumed")
		if id := appEval[string](p, `window.switchboardApp.client.id`); id != ids[p] {
			t.Fatalf("%s's id changed from %s to %s: not resumed", p.name, ids[p], id)
		}
		if text := appEval[string](p, `document.getElementById('conn-state').textContent`); !strings.HasPrefix(text, "Reconnecting") {
			t.Fatalf("%s's badge says %q", p.name, text)
		}
		if moved := appEval[[]string](p, `window.__boxesWhileDown.filter((b) => b !== window.__boxes)`); len(moved) > 0 {
			t.Fatalf("%s: the page moved while reconnecting: %v, was %s", p.name, moved, appEval[string](p, `window.__boxes`))
		}
		if toasts := appEval[string](p, `document.getElementById('toasts').textContent`); toasts != "" {
			t.Fatalf("%s shows the toast %q", p.name, toasts)
		}
		if tiles := appEval[[]bool](p, `[...document.querySelectorAll('.tile.remote')].map((el) => !!el.__before)`); !slices.Equal(tiles, []bool{true}) {
			t.Fatalf("%s's remote tiles were replaced (kept: %v)", p.name, tiles)
		}
		if tiles := p.waitVideos(1); len(tiles) != 1 {
			t.Fatalf("%s's tiles after resuming: %v", p.name, tiles)
		}
	}
	if !appEval[bool](b, signOfA) {
		t.Fatalf("B lost A's microphone-off sign")
	}
	appEval[bool](a, `(document.querySelector('#mic').click(), true)`)
	b.waitFor(`!(`+signOfA+`)`, "A's sign to go when A unmutes after the disruption")
	a.chat("still here")
	b.waitFor(`[...document.querySelectorAll('#chat-log li:not(.sys)')].some((li) => li.textContent.includes('still here'))`, "A's chat after the disruption")
	b.chat("me too")
	a.waitFor(`[...document.querySelectorAll('#chat-log li:not(.sys)')].some((li) => li.textContent.includes('me too'))`, "B's chat after the disruption")
	for _, p := range tabs {
		if sys := appEval[[]string](p, `[...document.querySelectorAll('#chat-log li.sys')].map((li) => li.textContent)`); !slices.Equal(sys, sysBefore[p]) {
			t.Fatalf("%s's system lines went from %q to %q", p.name, sysBefore[p], sys)
		}
		if errs := p.errors(); len(errs) > 0 {
			t.Fatalf("%s console errors: %v", p.name, errs)
		}
	}
}

// Without resumption (off on the server) A's page rejoins under a new id after its signaling
// connection is cut. B saw A's old presence leave and a new one join; it keeps A's tile (the
// same element, now under the new id) with A's microphone-off sign, A keeps B's tile, and
// neither page says "left" or "joined". Chat flows both ways.
func TestWebAppRejoinsAnew(t *testing.T) {
	requireChromium(t)
	base := testserver.Start(t, func(c *config.Config) { c.ResumeGrace = 0 })
	browser := startChromium(t, 90*time.Second)
	cut := testserver.NewCutter(t, strings.TrimPrefix(base, "http://"))
	room := "anew"
	a := openApp(t, browser, "A", "http://"+cut.Addr()+"/r/"+room+"?name=Ada", 1024, 768)
	b := openApp(t, browser, "B", base+"/r/"+room+"?name=Bob", 1024, 768)
	tabs := []*appTab{a, b}
	for _, p := range tabs {
		p.waitVideos(1)
	}
	idA := appEval[string](a, `window.switchboardApp.client.id`)
	appEval[bool](a, `(document.querySelector('#mic').click(), true)`)
	b.waitFor(`document.querySelector('.tile[data-peer=`+js(idA)+`]')?.dataset.mic === 'off'`, "A's sign on B's page")
	sysBefore := map[*appTab][]string{}
	for _, p := range tabs {
		appEval[bool](p, `(() => { for (const el of document.querySelectorAll('.tile.remote')) el.__before = true; return true; })()`)
		sysBefore[p] = appEval[[]string](p, `[...document.querySelectorAll('#chat-log li.sys')].map((li) => li.textContent)`)
	}
	if n := cut.Cut(); n < 1 {
		t.Fatalf("cut %d connections", n)
	}
	a.waitFor(`window.switchboardApp.client.id !== `+js(idA)+` && !window.switchboardApp.client.reconnecting`, "A back under a new id")
	newA := appEval[string](a, `window.switchboardApp.client.id`)
	b.waitFor(`(() => { const t = document.querySelector('.tile[data-peer=`+js(newA)+`]');
		return t && t.__before && t.dataset.mic === 'off' && t.dataset.state === 'connected' && document.querySelectorAll('.tile.remote').length === 1; })()`,
		"A's tile, kept, under A's new id with its sign")
	for _, p := range tabs {
		if tiles := p.waitVideos(1); len(tiles) != 1 {
			t.Fatalf("%s's tiles: %v", p.name, tiles)
		}
		if kept := appEval[[]bool](p, `[...document.querySelectorAll('.tile.remote')].map((el) => !!el.__before)`); !slices.Equal(kept, []bool{true}) {
			t.Fatalf("%s's remote tile was replaced (kept: %v)", p.name, kept)
		}
	}
	a.chat("new id, same me")
	b.waitFor(`[...document.querySelectorAll('#chat-log li:not(.sys)')].some((li) => li.textContent === 'Adanew id, same me')`, "A's chat under the new id")
	b.chat("welcome back")
	a.waitFor(`[...document.querySelectorAll('#chat-log li:not(.sys)')].some((li) => li.textContent === 'Bobwelcome back')`, "B's chat")
	for _, p := range tabs {
		if sys := appEval[[]string](p, `[...document.querySelectorAll('#chat-log li.sys')].map((li) => li.textContent)`); !slices.Equal(sys, sysBefore[p]) {
			t.Errorf("%s's system lines went from %q to %q", p.name, sysBefore[p], sys)
		}
		if errs := p.errors(); len(errs) > 0 {
			t.Errorf("%s console errors: %v", p.name, errs)
		}
	}
}
