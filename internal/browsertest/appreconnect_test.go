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
// same elements) and keep decoding video, no "left" or "is here" line appears, chat flows,
// no console errors.
func rideOut(t *testing.T, a, b *appTab, disrupt func()) {
	t.Helper()
	tabs := []*appTab{a, b}
	ids := map[*appTab]string{}
	sysBefore := map[*appTab][]string{}
	for _, p := range tabs {
		p.waitVideos(1)
		ids[p] = appEval[string](p, `window.switchboardApp.client.id`)
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
