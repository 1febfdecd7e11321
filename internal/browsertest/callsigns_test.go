package browsertest

import (
	"math"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// countOffers counts, in a page, the offers its peer connections make or take: a device
// switch must add none.
const countOffers = `{
	window.__offers = 0;
	const sld = RTCPeerConnection.prototype.setLocalDescription, srd = RTCPeerConnection.prototype.setRemoteDescription;
	RTCPeerConnection.prototype.setLocalDescription = function (d) { if (d && d.type === 'offer') window.__offers++; return sld.apply(this, arguments); };
	RTCPeerConnection.prototype.setRemoteDescription = function (d) { if (d && d.type === 'offer') window.__offers++; return srd.apply(this, arguments); };
}`

// patternCamera adds a camera to a page's devices: "Test pattern", a canvas painted blue with a
// white square moving on it. Chromium's second fake camera (fake_device_1) captures in a format
// its video encoder does not take (Y16, for depth cameras) and its third draws what the first
// does, so a switch the others can see needs a camera of another colour. Everything else
// (the picker, getUserMedia with the device's id, replaceTrack, the encoder) is the browser's.
const patternCamera = `{
	const md = navigator.mediaDevices, ID = 'test-pattern-camera';
	const enumerate = md.enumerateDevices.bind(md), gum = md.getUserMedia.bind(md);
	md.enumerateDevices = async () => {
		const list = await enumerate();
		if (!list.some((d) => d.kind === 'videoinput' && d.deviceId)) return list;
		return [...list, { deviceId: ID, kind: 'videoinput', label: 'Test pattern', groupId: 'test', toJSON() { return this; } }];
	};
	md.getUserMedia = async (c) => {
		const v = c && c.video, want = v && v.deviceId && (v.deviceId.exact || v.deviceId.ideal || v.deviceId);
		if (want !== ID) return gum(c);
		const canvas = document.createElement('canvas');
		canvas.width = 320; canvas.height = 240;
		const g = canvas.getContext('2d');
		let x = 0;
		const draw = () => { g.fillStyle = '#1a3cff'; g.fillRect(0, 0, 320, 240); g.fillStyle = '#fff'; g.fillRect(x, 100, 40, 40); x = (x + 8) % 280; };
		draw();
		const timer = setInterval(draw, 50);
		const s = canvas.captureStream(20), t = s.getVideoTracks()[0];
		const settings = t.getSettings.bind(t), stop = t.stop.bind(t);
		t.getSettings = () => ({ ...settings(), deviceId: ID });
		t.stop = () => { clearInterval(timer); stop(); };
		Object.defineProperty(t, 'label', { value: 'Test pattern' });
		if (c.audio) for (const a of (await gum({ audio: c.audio })).getAudioTracks()) s.addTrack(a);
		return s;
	};
}`

// remoteTile is the JavaScript expression for the tile of peer id on a page.
func remoteTile(id string) string { return `document.querySelector('.tile[data-peer=` + js(id) + `]')` }

// What one person does with the microphone, the camera and the devices, as the other page
// sees it: the microphone-off sign within 1 s of muting (and by the M key), initials and the
// name with the camera off (the camera stopped), its frames again once on, the other camera's
// frames decoded after a switch, the other microphone's sound after a switch, none of it with
// a new offer, the sound moved to another speaker; the help overlay lists the shortcuts; no
// serious or critical accessibility violation in the call.
func TestCallRemoteSigns(t *testing.T) {
	axeSrc := requireAxe(t)
	base, browser := callBrowser(t, 120*time.Second)
	room := "signs"
	a := openAppWith(t, browser, "A", base+"/r/"+room+"?name=Ada%20Lovelace", 1280, 800, countOffers+patternCamera)
	b := openAppWith(t, browser, "B", base+"/r/"+room+"?name=Bob", 1280, 800, countOffers)
	a.waitVideos(1)
	b.waitVideos(1)
	idA := appEval[string](a, `window.switchboardApp.client.id`)
	tileA := remoteTile(idA)
	sign := `getComputedStyle(` + tileA + `.querySelector('.muted-sign')).display !== 'none'`
	if c := appEval[string](b, frameColorJS+`(`+tileA+`.querySelector('video'))`); c != "green" {
		t.Fatalf("B decodes %q from A's first camera, want green", c)
	}

	// Mute: B shows the sign within a second of the click.
	appEval[bool](b, `(() => {
		const tile = `+tileA+`;
		window.__micOff = 0;
		new MutationObserver(() => { if (tile.dataset.mic === 'off' && !window.__micOff) window.__micOff = Date.now(); })
			.observe(tile, { attributes: true, attributeFilter: ['data-mic'] });
		return !(`+sign+`);
	})()`)
	// (The time is taken before the click: the handler sends the state and then updates A's
	// own page, and B may show the sign before that is done.)
	clicked := appEval[float64](a, `(() => { const t = Date.now(); document.querySelector('#mic').click(); return t; })()`)
	b.waitFor(`window.__micOff && `+sign, "the microphone-off sign on A's tile")
	if ms := appEval[float64](b, `window.__micOff`) - clicked; ms > 1000 || ms < 0 {
		t.Fatalf("the sign showed %v ms after the click, want ≤ 1000", ms)
	} else {
		t.Logf("B shows A's microphone-off sign %.0f ms after the click", ms)
	}
	if got := appEval[[]string](a, `[String(window.switchboardApp.stream.getAudioTracks()[0].enabled), document.querySelector('#mic').textContent,
		document.querySelector('#local-tile').dataset.mic, document.querySelector('#mic').getAttribute('aria-keyshortcuts')]`); strings.Join(got, ",") != "false,Unmute,off,M" {
		t.Fatalf("A after muting: track enabled, button, own tile, shortcut = %v", got)
	}
	if lbl := appEval[string](b, tileA+`.querySelector('.muted-sign').getAttribute('aria-label')`); lbl != "Microphone off" {
		t.Fatalf("the sign's label %q", lbl)
	}
	appEval[bool](a, `(document.querySelector('#mic').click(), true)`)
	b.waitFor(`!(`+sign+`)`, "the sign to go after unmuting")

	// The M key does the same (focus on the page, not in a field).
	if err := chromedp.Do(a.ctx, chromedp.KeyEvent("m")); err != nil {
		t.Fatal(err)
	}
	b.waitFor(sign, "the sign after pressing M")
	if err := chromedp.Do(a.ctx, chromedp.KeyEvent("m")); err != nil {
		t.Fatal(err)
	}
	b.waitFor(`!(`+sign+`)`, "the sign to go after pressing M again")

	// Camera off: initials and the name in place of the picture, and A's camera stopped (its
	// light off).
	appEval[bool](a, `(document.querySelector('#camera').click(), true)`)
	a.waitFor(`window.switchboardApp.stream.getVideoTracks()[0].readyState === 'ended'`, "A's camera stopped")
	b.waitFor(`(() => { const t = `+tileA+`; return t.dataset.cam === 'off' && getComputedStyle(t.querySelector('.avatar')).display === 'flex' &&
		getComputedStyle(t.querySelector('video')).visibility === 'hidden' && t.querySelector('.initials').textContent === 'AL' &&
		t.querySelector('.name').textContent === 'Ada Lovelace'; })()`, "A's initials on B's page")
	appEval[bool](a, `(document.querySelector('#mic').click(), true)`) // muted and camera off: both signs at once
	b.waitFor(sign, "the sign with the camera off")
	if v := b.axe(axeSrc); len(v) > 0 {
		t.Errorf("call page: accessibility violations:\n%s", strings.Join(v, "\n"))
	}
	// decodedJS: the video frames B has decoded from A.
	decodedJS := `(async () => { let n = 0; (await window.switchboardApp.client.peers.get(` + js(idA) + `).pc.getStats()).forEach((s) => {
		if (s.type === 'inbound-rtp' && s.kind === 'video') n += s.framesDecoded || 0; }); return n; })()`
	decoded := func() float64 { return appEval[float64](b, decodedJS) }
	// B decodes more frames from A than n (a video element keeps showing its last frame, so
	// its picture alone does not tell).
	decodesMore := func(n float64, what string) {
		b.waitFor(`(await `+decodedJS+`) > `+strconv.FormatFloat(n, 'f', -1, 64), what) // waitFor's condition is awaited
	}
	offCount := decoded()
	appEval[bool](a, `(document.querySelector('#mic').click(), document.querySelector('#camera').click(), true)`)
	b.waitFor(`(() => { const t = `+tileA+`; return t.dataset.cam === 'on' && getComputedStyle(t.querySelector('.avatar')).display === 'none' && !(`+sign+`); })()`, "A's picture back")
	// The camera opened again, and its frames reach B with no new offer (counted below).
	a.waitFor(`window.switchboardApp.stream.getVideoTracks()[0].readyState === 'live'`, "A's camera open again")
	decodesMore(offCount, "B to decode frames from A's camera again")
	b.waitFor(frameColorJS+`(`+tileA+`.querySelector('video')) === 'green'`, "B to show A's camera again")

	// The help overlay (?) lists the shortcuts, and is accessible too.
	if err := chromedp.Do(a.ctx, chromedp.KeyEvent("?")); err != nil {
		t.Fatal(err)
	}
	a.waitFor(`document.querySelector('#help-dialog').open`, "the help overlay")
	keys := appEval[[]string](a, `[...document.querySelectorAll('#help-keys kbd')].map((k) => k.textContent)`)
	if strings.Join(keys, " ") != "M V C Shift + L ? S" { // S: share.js (callmedia.js)
		t.Errorf("the help overlay lists %q", keys)
	}
	if v := a.axe(axeSrc); len(v) > 0 {
		t.Errorf("help overlay: accessibility violations:\n%s", strings.Join(v, "\n"))
	}
	if err := chromedp.Do(a.ctx, chromedp.KeyEvent("\x1b")); err != nil { // Escape
		t.Fatal(err)
	}
	a.waitFor(`!document.querySelector('#help-dialog').open`, "the help overlay to close on Escape")

	// Switching A's camera mid-call: B decodes the other camera's (blue) frames, and neither
	// page made or took an offer.
	offers := appEval[float64](a, `window.__offers`) + appEval[float64](b, `window.__offers`)
	if offers != 2 {
		// One offer, made on one page and taken on the other (TestFirstNegotiation); the
		// camera turned off and on again made none.
		t.Fatalf("%v offers made or taken so far, want 2", offers)
	}
	before := decoded()
	appEval[bool](a, `(document.querySelector('#devices').click(), true)`)
	a.waitFor(`document.querySelector('#devices-dialog').open && document.querySelector('#call-camera').options.length === 3`, "the devices dialog")
	appEval[bool](a, `(() => {
		const sel = document.querySelector('#call-camera');
		sel.value = [...sel.options].find((o) => o.textContent === 'Test pattern').value;
		sel.dispatchEvent(new Event('change'));
		return true;
	})()`)
	a.waitFor(`window.switchboardApp.stream.getVideoTracks()[0].label === 'Test pattern' &&
		window.switchboardApp.client.peers.get(`+js(appEval[string](b, `window.switchboardApp.client.id`))+`).pc.getSenders().some((s) => s.track && s.track.label === 'Test pattern')`, "A sending the other camera")
	decodesMore(before, "B to decode frames after the switch")
	b.waitFor(frameColorJS+`(`+tileA+`.querySelector('video')) === 'blue'`, "B to show the second camera's frames")
	if now := appEval[float64](a, `window.__offers`) + appEval[float64](b, `window.__offers`); now != offers {
		t.Fatalf("offers made or taken went from %v to %v: the switch renegotiated", offers, now)
	}

	// Switching A's microphone mid-call: every sender gets the other fake microphone's track,
	// the old one stops, B keeps receiving A's sound, and no offer is made or taken.
	audioJS := `(async () => { let n = 0; (await window.switchboardApp.client.peers.get(` + js(idA) + `).pc.getStats()).forEach((s) => {
		if (s.type === 'inbound-rtp' && s.kind === 'audio') n += s.packetsReceived || 0; }); return n; })()`
	heard := appEval[float64](b, audioJS)
	mic := appEval[[]string](a, `(() => {
		const sel = document.querySelector('#call-mic');
		const old = window.switchboardApp.stream.getAudioTracks()[0];
		window.__oldMic = old;
		const other = [...sel.options].find((o) => o.value !== sel.value && o.textContent !== old.label);
		if (!other) return [old.label, ''];
		sel.value = other.value;
		sel.dispatchEvent(new Event('change'));
		return [old.label, other.textContent];
	})()`)
	if mic[1] == "" {
		t.Fatalf("A has no second microphone to switch to (had %q)", mic[0])
	}
	a.waitFor(`(() => { const t = window.switchboardApp.stream.getAudioTracks()[0];
		return t.label === `+js(mic[1])+` && window.__oldMic.readyState === 'ended' &&
			[...window.switchboardApp.client.peers.values()].every((p) => p.pc.getSenders().some((s) => s.track === t)); })()`, "A sending the other microphone")
	b.waitFor(`(await `+audioJS+`) > `+strconv.FormatFloat(heard+25, 'f', -1, 64), "B to keep receiving A's sound after the switch")
	if now := appEval[float64](a, `window.__offers`) + appEval[float64](b, `window.__offers`); now != offers {
		t.Fatalf("offers made or taken went from %v to %v: the microphone switch renegotiated", offers, now)
	}
	appEval[bool](a, `(document.querySelector('#devices-close').click(), true)`)

	// B plays A's sound on another speaker.
	appEval[bool](b, `(document.querySelector('#devices').click(), true)`)
	b.waitFor(`document.querySelector('#devices-dialog').open && document.querySelector('#call-speaker').options.length >= 2`, "B's devices dialog")
	out := appEval[string](b, `(() => {
		const sel = document.querySelector('#call-speaker');
		sel.value = sel.options[sel.options.length - 1].value;
		sel.dispatchEvent(new Event('change'));
		return sel.value;
	})()`)
	b.waitFor(tileA+`.querySelector('video').sinkId === `+js(out), "A's sound on the other speaker")
	for _, p := range []*appTab{a, b} {
		if errs := p.errors(); len(errs) > 0 {
			t.Errorf("%s console errors: %v", p.name, errs)
		}
	}
}

// The layout on a desktop (1280×800) and a phone (390×844): the tiles fill most of the stage,
// nothing scrolls sideways, the Leave button is inside the viewport, a toast shows over the
// page without moving or covering the controls and goes by itself; the chat opens over the
// stage on the phone, Leave still in view; the spotlight layout (for a presenter). Screenshots
// of both.
func TestCallLayout(t *testing.T) {
	base, browser := callBrowser(t, 120*time.Second)
	room := "layout"
	desk := openApp(t, browser, "desktop", base+"/r/"+room+"?name=Desk", 1280, 800)
	phone := openApp(t, browser, "phone", base+"/r/"+room+"?name=Phone", 390, 844)
	third := openApp(t, browser, "third", base+"/r/"+room+"?name=Third", 1280, 800)
	for _, p := range []*appTab{desk, phone, third} {
		p.waitVideos(2)
	}
	box := func(sel string) string {
		return `(() => { const r = document.querySelector(` + js(sel) + `).getBoundingClientRect(); return [r.left, r.top, r.right, r.bottom]; })()`
	}
	inView := `(() => { const r = document.querySelector('#leave').getBoundingClientRect();
		return r.width > 0 && r.left >= 0 && r.top >= 0 && r.right <= innerWidth && r.bottom <= innerHeight; })()`
	for _, p := range []*appTab{desk, phone} {
		p.waitFor(`document.querySelectorAll('#grid .tile').length === 3 && [...document.querySelectorAll('#grid .tile')].every((t) => t.offsetWidth > 0)`, "three tiles laid out")
		// Tiles cover most of the stage.
		cover := appEval[float64](p, `(() => {
			const g = document.querySelector('#grid').getBoundingClientRect();
			let a = 0;
			for (const t of document.querySelectorAll('#grid .tile')) { const r = t.getBoundingClientRect(); a += r.width * r.height; }
			return a / (g.width * g.height);
		})()`)
		if cover < 0.6 {
			t.Errorf("%s: tiles cover %.0f%% of the stage, want ≥ 60%%", p.name, cover*100)
		}
		if w := appEval[[]int](p, `[document.documentElement.scrollWidth, window.innerWidth, document.documentElement.scrollHeight, window.innerHeight]`); w[0] > w[1] || w[2] > w[3] {
			t.Errorf("%s: page %dx%d in a %dx%d viewport (scrolls)", p.name, w[0], w[2], w[1], w[3])
		}
		if !appEval[bool](p, inView) {
			t.Errorf("%s: Leave is not inside the viewport: %v", p.name, appEval[[]float64](p, box("#leave")))
		}
		t.Logf("%s: tiles cover %.0f%% of the stage, layout %s", p.name, cover*100, appEval[string](p, `document.querySelector('#grid').dataset.layout`))

		// A toast: over the page, not over the controls, nothing moves, gone by itself.
		controls := appEval[[]float64](p, box("#controls"))
		appEval[bool](p, `(document.querySelector('#copy-link').click(), true)`)
		p.waitFor(`document.querySelectorAll('#toasts .toast').length === 1`, "a toast")
		if got := appEval[[]float64](p, box("#controls")); !sameBox(got, controls) {
			t.Errorf("%s: the controls moved from %v to %v with a toast", p.name, controls, got)
		}
		if tb := appEval[[]float64](p, box("#toasts .toast")); tb[3] > controls[1] {
			t.Errorf("%s: the toast %v reaches the controls %v", p.name, tb, controls)
		}
		if !appEval[bool](p, inView) {
			t.Errorf("%s: Leave is out of view with a toast", p.name)
		}
		start := time.Now()
		p.waitFor(`document.querySelectorAll('#toasts .toast').length === 0`, "the toast to go by itself")
		t.Logf("%s: the toast went by itself after %v", p.name, time.Since(start).Round(100*time.Millisecond))
	}
	desk.screenshot("call-desktop.png")
	phone.screenshot("call-phone.png")

	// The spotlight share.js uses for a presenter: one tile large, the others in a strip beside
	// it (below it on the phone), Leave still in view; and back to the grid.
	for _, p := range []*appTab{desk, phone} {
		appEval[bool](p, `(() => { const app = window.switchboardApp; app.tiles.spotlight(app.tiles.list.find((t) => !t.local)); return true; })()`)
		// (Tiles glide to their places: wait for them to settle.)
		side := map[*appTab]string{desk: "o.left >= s.right", phone: "o.top >= s.bottom"}[p]
		p.waitFor(`document.querySelector('#grid').dataset.layout === 'spotlight' && (() => {
			const area = (t) => t.getBoundingClientRect().width * t.getBoundingClientRect().height;
			const spot = document.querySelector('#grid .tile.spot'), others = [...document.querySelectorAll('#grid .tile:not(.spot)')];
			const s = spot.getBoundingClientRect();
			return others.every((t) => { const o = t.getBoundingClientRect(); return area(spot) >= 3 * area(t) && `+side+`; });
		})()`, "the spotlight layout: one tile at least 3× the others, the others in a strip")
		if !appEval[bool](p, inView) {
			t.Errorf("%s: Leave is out of view in the spotlight layout", p.name)
		}
		appEval[bool](p, `(window.switchboardApp.tiles.spotlight(null), true)`)
		p.waitFor(`document.querySelector('#grid').dataset.layout === 'grid' && !document.querySelector('#grid .tile.spot')`, "back to the grid")
	}

	// On the phone the chat opens over the stage; the controls stay where they were.
	controls := appEval[[]float64](phone, box("#controls"))
	appEval[bool](phone, `(document.querySelector('#chat-toggle').click(), true)`)
	phone.waitFor(`!document.querySelector('#chat-panel').hidden && document.querySelector('#chat-toggle').getAttribute('aria-expanded') === 'true'`, "the chat open")
	if got := appEval[[]float64](phone, box("#controls")); !sameBox(got, controls) || !appEval[bool](phone, inView) {
		t.Errorf("phone: with the chat open the controls are at %v (were %v), Leave in view: %v", got, controls, appEval[bool](phone, inView))
	}
	phone.chat("from the phone")
	desk.waitFor(`[...document.querySelectorAll('#chat-log li:not(.sys)')].some((li) => li.textContent.includes('from the phone'))`, "the phone's chat")
	if ann := appEval[string](desk, `document.querySelector('#announcer').textContent`); !strings.Contains(ann, "Phone says: from the phone") {
		t.Errorf("desktop announcer: %q", ann)
	}
	for _, p := range []*appTab{desk, phone, third} {
		if errs := p.errors(); len(errs) > 0 {
			t.Errorf("%s console errors: %v", p.name, errs)
		}
	}
}

// sameBox reports whether two [left top right bottom] boxes are the same to half a pixel.
func sameBox(a, b []float64) bool {
	if len(a) != 4 || len(b) != 4 {
		return false
	}
	for i := range a {
		if math.Abs(a[i]-b[i]) > 0.5 {
			return false
		}
	}
	return true
}
