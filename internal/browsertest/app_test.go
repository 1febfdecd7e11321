package browsertest

import (
	"bytes"
	"context"
	"fmt"
	"image/png"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	cdppage "github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"

	"github.com/switchboard-rtc/switchboard/internal/testserver"
)

// appBrowser starts the real server (which serves the web app from its own mux) and headless
// Chromium with a fake camera and microphone. The whole test is bounded by timeout.
func appBrowser(t *testing.T, timeout time.Duration) (base string, browser context.Context) {
	t.Helper()
	requireChromium(t)
	return testserver.Start(t, nil), startChromium(t, timeout)
}

// appTab is one tab of the web app, with the console errors and exceptions it logged.
type appTab struct {
	t      *testing.T
	ctx    context.Context
	cancel context.CancelFunc
	name   string

	mu      sync.Mutex
	console []string
}

// openApp opens url in a new tab, recording console errors from the start.
func openApp(t *testing.T, browser context.Context, name, url string, width, height int64) *appTab {
	t.Helper()
	return openAppWith(t, browser, name, url, width, height, "")
}

// openAppWith is openApp with a script that runs in the page before any of its own.
func openAppWith(t *testing.T, browser context.Context, name, url string, width, height int64, initScript string) *appTab {
	t.Helper()
	ctx, cancel := chromedp.NewContext(browser)
	t.Cleanup(cancel)
	p := &appTab{t: t, ctx: ctx, cancel: cancel, name: name}
	msgs := chromedp.Console(ctx) // subscribes now, before the page loads
	go func() {
		for m, err := range msgs {
			if err != nil {
				return
			}
			if m.Type == chromedp.ConsoleError || m.IsException() {
				p.mu.Lock()
				p.console = append(p.console, m.String())
				p.mu.Unlock()
			}
		}
	}()
	steps := []chromedp.Action[chromedp.Void]{chromedp.EmulateViewport(width, height)}
	if initScript != "" {
		steps = append(steps, chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
			_, err := cdp.Call(ctx, tg, cdppage.AddScriptToEvaluateOnNewDocument, cdppage.AddScriptToEvaluateOnNewDocumentParams{Source: initScript})
			return err
		}))
	}
	steps = append(steps, chromedp.Navigate(url))
	if err := chromedp.Do(ctx, steps...); err != nil {
		t.Fatalf("%s: navigate %s: %v", name, url, err)
	}
	return p
}

func (p *appTab) errors() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.console)
}

// appEval evaluates a JavaScript expression in the tab, awaiting a promise.
func appEval[T any](p *appTab, expr string) T {
	p.t.Helper()
	v, err := chromedp.Run(p.ctx, chromedp.Evaluate[T](expr, chromedp.EvalAwaitPromise))
	if err != nil {
		toasts, _ := chromedp.Run(p.ctx, chromedp.Evaluate[string](`[...document.querySelectorAll('#toasts .toast')].map((t) => t.textContent).join(' | ')`))
		p.t.Fatalf("%s: %s: %v\ntoasts: %q\nconsole errors: %v", p.name, expr, err, toasts, p.errors())
	}
	return v
}

// waitJS polls cond (a JavaScript expression) in the page until it is truthy.
const waitJS = `(async (cond, ms, what) => {
	const end = Date.now() + ms;
	for (;;) {
		const v = await cond();
		if (v) return v;
		if (Date.now() > end) throw new Error('timeout waiting for ' + what);
		await new Promise((r) => setTimeout(r, 100));
	}
})`

// waitFor waits up to 20 s for the JavaScript condition expr to hold.
func (p *appTab) waitFor(expr, what string) {
	p.t.Helper()
	appEval[bool](p, waitJS+`(async () => !!(`+expr+`), 20000, `+js(what)+`).then(() => true)`)
}

// waitVideos waits until the page shows n remote tiles, each connected and showing decoded
// video (videoWidth > 0, inbound-rtp framesDecoded > 0), and returns the tiles' labels.
func (p *appTab) waitVideos(n int) []string {
	p.t.Helper()
	return appEval[[]string](p, waitVideosJS(n))
}

// waitVideosJS is waitVideos's promise.
func waitVideosJS(n int) string {
	return waitJS + `(async () => {
		const app = window.switchboardApp;
		const tiles = [...document.querySelectorAll('.tile[data-peer]:not([data-kind="screen"])')];
		if (!app || tiles.length !== ` + fmt.Sprint(n) + `) return null;
		for (const tile of tiles) {
			const v = tile.querySelector('video');
			const peer = app.client.peers.get(tile.dataset.peer);
			if (!v || !peer || v.videoWidth <= 0 || tile.dataset.state !== 'connected') return null;
			let frames = 0;
			(await peer.pc.getStats()).forEach((s) => {
				if (s.type === 'inbound-rtp' && s.kind === 'video') frames += s.framesDecoded || 0;
			});
			if (frames <= 0) return null;
		}
		return tiles.map((t) => t.querySelector('.name').textContent + ' ' + t.querySelector('.state').textContent).sort();
	}, 25000, 'decoded video from every remote tile')`
}

// waitAudio waits until the page receives audio from n remote peers: on each peer's
// connection, inbound-rtp of kind audio with packetsReceived > 0 (and totalSamplesReceived > 0
// where the browser reports it). It returns the peers' names.
func (p *appTab) waitAudio(n int) []string {
	p.t.Helper()
	return appEval[[]string](p, waitJS+`(async () => {
		const app = window.switchboardApp;
		if (!app || app.client.peers.size !== `+fmt.Sprint(n)+`) return null;
		const names = [];
		for (const peer of app.client.peers.values()) {
			let packets = 0, samples = 0, sampled = false;
			(await peer.pc.getStats()).forEach((s) => {
				if (s.type !== 'inbound-rtp' || s.kind !== 'audio') return;
				packets += s.packetsReceived || 0;
				if (s.totalSamplesReceived !== undefined) { sampled = true; samples += s.totalSamplesReceived; }
			});
			if (packets <= 0 || (sampled && samples <= 0)) return null;
			names.push(peer.name || peer.id);
		}
		return names.sort();
	}, 15000, 'audio from every remote peer')`)
}

// joinPrejoin waits for the pre-join screen to have asked for the devices, presses Join now and
// returns whether the name field was read-only (an invitation's name).
func (p *appTab) joinPrejoin() string {
	p.t.Helper()
	p.waitFor(`document.body.dataset.view === 'prejoin' && document.body.dataset.media`, "the pre-join screen")
	return appEval[string](p, `(() => {
		const ro = String(document.querySelector('#name-input').readOnly);
		document.querySelector('#name-submit').click();
		return ro;
	})()`)
}

// chat sends text through the page's chat form.
func (p *appTab) chat(text string) {
	p.t.Helper()
	appEval[bool](p, `(() => {
		const input = document.querySelector('#chat-input');
		input.value = `+js(text)+`;
		document.querySelector('#chat-send').click();
		return input.value === '';
	})()`)
}

// chatLines returns the chat messages the page shows, as "sender: text".
func (p *appTab) chatLines() []string {
	return appEval[[]string](p, `[...document.querySelectorAll('#chat-log li:not(.sys)')].map((li) =>
		li.querySelector('.who').textContent + ': ' + li.querySelector('.text').textContent)`)
}

func TestWebApp(t *testing.T) {
	base, browser := appBrowser(t, 60*time.Second)
	t0 := time.Now()

	// The landing page is the server's /, and a bad room name is refused.
	land := openApp(t, browser, "landing", base+"/", 1024, 768)
	land.waitFor(`document.body.dataset.view === 'landing' && document.querySelector('#create-room')`, "landing page")
	appEval[bool](land, `(setTimeout(() => document.querySelector('#create-room').click(), 0), true)`)
	var href string
	for end := time.Now().Add(5 * time.Second); time.Now().Before(end); time.Sleep(100 * time.Millisecond) {
		loc, err := chromedp.Run(land.ctx, chromedp.Evaluate[string](`location.pathname`))
		if err == nil && strings.HasPrefix(loc, "/r/") {
			href = loc
			break
		}
	}
	land.waitFor(`document.body.dataset.view === 'prejoin' && document.querySelector('#name-input')`, "pre-join screen")
	appEval[bool](land, `(document.querySelector('#name-input').value = 'Lander', document.querySelector('#name-submit').click(), true)`)
	land.waitFor(`document.body.dataset.joined === 'true' && localStorage.getItem('switchboard.name') === 'Lander'`, "join from the name prompt")
	if !roomRE(strings.TrimPrefix(href, "/r/")) {
		t.Fatalf("create room went to %q", href)
	}
	for path, want := range map[string]int{"/r/bad%20name": 404, "/r/" + strings.Repeat("x", 65): 404, "/app/app.js": 200, "/app/app.css": 200} {
		resp, err := http.Get(base + path)
		if err != nil {
			t.Fatal(err)
		}
		_ = resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("GET %s: status %d, want %d", path, resp.StatusCode, want)
		}
	}
	if errs := land.errors(); len(errs) > 0 {
		t.Errorf("landing page console errors: %v", errs)
	}
	land.cancel()

	room := "app-test"
	tabs := []*appTab{
		openApp(t, browser, "P1", base+"/r/"+room+"?name=P1", 1024, 768),
		openApp(t, browser, "P2", base+"/r/"+room+"?name=P2", 1024, 768),
	}
	for _, p := range tabs {
		p.waitFor(`document.body.dataset.joined === 'true'`, "joined")
	}
	for _, p := range tabs {
		t.Logf("%s sees %v", p.name, p.waitVideos(1))
	}
	t.Logf("two pages: video both ways after %v", time.Since(t0).Round(time.Millisecond))

	// A third page, at phone width.
	p3 := openApp(t, browser, "P3", base+"/r/"+room+"?name=P3", 390, 844)
	p3.waitFor(`document.body.dataset.joined === 'true'`, "joined")
	tabs = append(tabs, p3)
	for _, p := range tabs {
		labels := p.waitVideos(2)
		t.Logf("%s sees %v", p.name, labels)
		for _, q := range tabs {
			if q != p && !slices.ContainsFunc(labels, func(l string) bool { return strings.HasPrefix(l, q.name+" Connected") }) {
				t.Errorf("%s: no connected tile labelled %s: %v", p.name, q.name, labels)
			}
		}
	}
	t.Logf("three pages: every page decodes every other page's video after %v", time.Since(t0).Round(time.Millisecond))
	for _, p := range tabs {
		names := p.waitAudio(2)
		for _, q := range tabs {
			if q != p && !slices.Contains(names, q.name) {
				t.Errorf("%s: no audio from %s: audio from %v", p.name, q.name, names)
			}
		}
	}
	t.Logf("three pages: every page receives every other page's audio after %v", time.Since(t0).Round(time.Millisecond))
	if w := appEval[[]int](p3, `[document.documentElement.scrollWidth, window.innerWidth]`); w[0] > w[1] {
		t.Errorf("phone width: page is %d px wide in a %d px viewport (horizontal scroll)", w[0], w[1])
	}

	// Chat: three messages from each page, interleaved; each sender's arrive in order everywhere.
	for i := 1; i <= 3; i++ {
		for _, p := range tabs {
			p.chat(fmt.Sprintf("%s says %d", p.name, i))
		}
	}
	for _, p := range tabs {
		p.waitFor(`document.querySelectorAll('#chat-log li:not(.sys)').length >= 9`, "9 chat messages")
		lines := p.chatLines()
		for _, q := range tabs {
			who := q.name
			if q == p {
				who += " (you)"
			}
			var got []string
			for _, l := range lines {
				if strings.HasPrefix(l, who+": ") {
					got = append(got, strings.TrimPrefix(l, who+": "))
				}
			}
			want := []string{q.name + " says 1", q.name + " says 2", q.name + " says 3"}
			if !slices.Equal(got, want) {
				t.Errorf("%s: messages from %s: %q, want %q (all: %q)", p.name, q.name, got, want, lines)
			}
		}
	}

	// Screenshots of a call page, at desktop and at phone width.
	dir := os.Getenv("SWITCHBOARD_ARTIFACTS")
	if dir == "" {
		dir = t.TempDir()
	} else if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for file, p := range map[string]*appTab{"webapp-call.png": tabs[0], "webapp-call-phone.png": p3} {
		shot, err := chromedp.Run(p.ctx, chromedp.CaptureScreenshot())
		if err != nil {
			t.Fatalf("%s: screenshot: %v", p.name, err)
		}
		file = filepath.Join(dir, file)
		if err := os.WriteFile(file, shot, 0o644); err != nil {
			t.Fatal(err)
		}
		checkScreenshot(t, file)
	}

	// Mic and camera toggles switch the local tracks off and on (the microphone's track is
	// disabled; the camera's stops, and a new one opens when it is turned on again).
	toggles := appEval[[]bool](tabs[1], `(async () => {
		const s = window.switchboardApp.stream, r = [];
		const live = () => s.getVideoTracks()[0].readyState === 'live';
		const on = () => [s.getAudioTracks()[0].enabled, live() && s.getVideoTracks()[0].enabled];
		const until = async (f) => { const end = Date.now() + 10000; while (!f() && Date.now() < end) await new Promise((x) => setTimeout(x, 20)); };
		document.querySelector('#mic').click(); r.push(...on());
		document.querySelector('#camera').click();
		await until(() => !live());
		r.push(...on());
		document.querySelector('#mic').click(); document.querySelector('#camera').click();
		await until(live);
		r.push(...on());
		return r;
	})()`)
	if want := []bool{false, true, false, false, true, true}; !slices.Equal(toggles, want) {
		t.Errorf("mic/camera toggles: [audio video] enabled %v, want %v", toggles, want)
	}
	// Quick presses (on → off → on → off, then on): they run one after the other, so the page
	// ends with one camera track, live, that every peer's one video sender sends.
	appEval[bool](tabs[1], `(() => { for (let i = 0; i < 3; i++) document.querySelector('#camera').click(); return true; })()`)
	tabs[1].waitFor(`document.querySelector('#camera').dataset.on === 'false' && window.switchboardApp.stream.getVideoTracks()[0].readyState === 'ended'`, "the camera off after three presses")
	appEval[bool](tabs[1], `(document.querySelector('#camera').click(), true)`)
	tabs[1].waitFor(`document.querySelector('#camera').dataset.on === 'true'`, "the camera on after the fourth")
	if got := appEval[[]int](tabs[1], `(() => {
		const s = window.switchboardApp.stream, v = s.getVideoTracks();
		const senders = [...window.switchboardApp.client.peers.values()].map((p) => p.pc.getSenders().filter((x) => x.track && x.track.kind === 'video'));
		return [v.length, v.filter((t) => t.readyState === 'live').length, senders.length,
			senders.filter((l) => l.length === 1 && l[0].track === v[0]).length];
	})()`); got[0] != 1 || got[1] != 1 || got[3] != got[2] {
		t.Errorf("after quick presses: %d camera tracks (%d live), %d peers of which %d send that one track alone", got[0], got[1], got[2], got[3])
	}

	// P3 leaves: its tile disappears from the others' grids.
	id3 := appEval[string](p3, `window.switchboardApp.client.id`)
	appEval[bool](p3, `(document.querySelector('#leave').click(), document.body.dataset.view === 'left')`)
	for _, p := range tabs[:2] {
		p.waitFor(`!document.querySelector('.tile[data-peer=`+js(id3)+`]') && document.querySelectorAll('.tile[data-peer]').length === 1`, "P3's tile to go")
	}

	// Camera and microphone denied (joining straight in with ?name=): a clear message, and
	// the page still joins, sees the others' video and chats. (callui_test.go denies them
	// through the browser's permissions, on the pre-join screen.)
	deny := `navigator.mediaDevices.getUserMedia = () => Promise.reject(new DOMException('Permission denied', 'NotAllowedError'));`
	p4 := openAppWith(t, browser, "P4", base+"/r/"+room+"?name=P4", 1024, 768, deny)
	p4.waitFor(`document.body.dataset.joined === 'true'`, "joined without media")
	if msg := appEval[string](p4, `document.querySelector('#toasts').textContent`); !strings.Contains(msg, "blocked your camera and microphone") {
		t.Errorf("P4 (media denied): toast %q", msg)
	}
	p4.waitVideos(2)
	tabs[0].waitFor(`[...document.querySelectorAll('.tile[data-peer]')].some((t) => t.querySelector('.name').textContent === 'P4' && t.dataset.state === 'connected')`, "P4 connected")
	p4.chat("P4 has no camera")
	tabs[0].waitFor(`[...document.querySelectorAll('#chat-log li:not(.sys)')].some((li) => li.textContent === 'P4P4 has no camera')`, "P4's chat")
	tabs = append(tabs, p4)

	// The server is unreachable: a clear message (the browser itself logs the failed
	// WebSocket, so this tab's console is not checked).
	unreachable := `{ const WS = window.WebSocket; window.WebSocket = class extends WS { constructor() { super('ws://127.0.0.1:9/ws'); } }; }`
	p5 := openAppWith(t, browser, "P5", base+"/r/"+room+"?name=P5", 1024, 768, unreachable)
	p5.waitFor(`document.body.dataset.joined === 'error'`, "join to fail")
	if msg := appEval[string](p5, `document.querySelector('#toasts').textContent`); !strings.Contains(msg, "Cannot reach") {
		t.Errorf("P5 (server unreachable): toast %q", msg)
	}

	for _, p := range tabs {
		if errs := p.errors(); len(errs) > 0 {
			t.Errorf("%s console errors: %v", p.name, errs)
		}
	}
	t.Logf("done in %v", time.Since(t0).Round(time.Millisecond))
}

func roomRE(s string) bool {
	if len(s) < 1 || len(s) > 64 {
		return false
	}
	for _, c := range s {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-' || c == '.') {
			return false
		}
	}
	return true
}

// checkScreenshot checks file is a PNG of non-trivial size whose pixels are not all alike.
func checkScreenshot(t *testing.T, file string) {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	img, err := png.Decode(bytes.NewReader(b))
	if err != nil {
		t.Fatalf("screenshot %s is not a PNG: %v", file, err)
	}
	r := img.Bounds()
	if len(b) < 10<<10 || r.Dx() < 300 || r.Dy() < 300 {
		t.Fatalf("screenshot %s is trivial: %d bytes, %v", file, len(b), r)
	}
	colors := map[[4]uint32]bool{}
	for y := r.Min.Y; y < r.Max.Y && len(colors) < 64; y += 7 {
		for x := r.Min.X; x < r.Max.X; x += 7 {
			c := img.At(x, y)
			r, g, b, a := c.RGBA()
			colors[[4]uint32{r, g, b, a}] = true
		}
	}
	if len(colors) < 16 {
		t.Fatalf("screenshot %s has only %d distinct colours", file, len(colors))
	}
	t.Logf("screenshot %s: %d bytes, %dx%d", file, len(b), r.Dx(), r.Dy())
}
