package browsertest

import (
	"strings"
	"testing"
	"time"

	"github.com/switchboard-rtc/switchboard/internal/testserver"
)

// The call page of A reaches the server through a proxy that the test cuts mid-call. The app
// says it is reconnecting, resumes, and the call goes on: same id, B's tile for A stays and
// keeps decoding video, B never shows A leaving, chat still flows, no console errors.
func TestWebAppRidesOutSignalingLoss(t *testing.T) {
	base, browser := appBrowser(t, 60*time.Second)
	proxy := testserver.NewCutter(t, strings.TrimPrefix(base, "http://"))
	room := "ride-out"
	a := openApp(t, browser, "A", "http://"+proxy.Addr()+"/r/"+room+"?name=A", 1024, 768)
	b := openApp(t, browser, "B", base+"/r/"+room+"?name=B", 1024, 768)
	a.waitVideos(1)
	b.waitVideos(1)
	idA := appEval[string](a, `window.switchboardApp.client.id`)
	appEval[bool](a, `(() => {
		window.__notices = [];
		const el = document.getElementById('notice');
		new MutationObserver(() => window.__notices.push(el.textContent)).observe(el, { childList: true, characterData: true, subtree: true });
		return true;
	})()`)

	if n := proxy.Cut(); n == 0 {
		t.Fatal("nothing to cut: the page is not connected through the proxy")
	}
	a.waitFor(`window.__notices.some((s) => s.startsWith('Reconnecting'))`, "the reconnecting notice")
	a.waitFor(`!document.body.dataset.reconnecting && !window.switchboardApp.client.reconnecting`, "reconnected")
	if id := appEval[string](a, `window.switchboardApp.client.id`); id != idA {
		t.Fatalf("A's id changed from %s to %s: not resumed", idA, id)
	}
	if notice := appEval[string](a, `document.getElementById('notice').textContent`); notice != "" {
		t.Fatalf("notice left after resuming: %q", notice)
	}
	if tiles := b.waitVideos(1); len(tiles) != 1 || !strings.HasPrefix(tiles[0], "A ") {
		t.Fatalf("B's tiles after A resumed: %v", tiles)
	}
	a.waitVideos(1)
	a.chat("still here")
	b.waitFor(`[...document.querySelectorAll('#chat-log li:not(.sys)')].some((li) => li.textContent.includes('still here'))`, "A's chat after the cut")
	if sys := appEval[[]string](b, `[...document.querySelectorAll('#chat-log li.sys')].map((li) => li.textContent)`); len(sys) > 0 {
		for _, s := range sys {
			if strings.Contains(s, "left") {
				t.Fatalf("B shows %q", s)
			}
		}
	}
	for _, p := range []*appTab{a, b} {
		if errs := p.errors(); len(errs) > 0 {
			t.Fatalf("%s console errors: %v", p.name, errs)
		}
	}
}
