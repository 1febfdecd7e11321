package browsertest

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	cdpbrowser "github.com/chromedp/cdproto/browser"
	"github.com/chromedp/chromedp"

	"github.com/switchboard-rtc/switchboard/internal/testenv"
	"github.com/switchboard-rtc/switchboard/internal/testserver"
)

// axeBundle is axe-core, the accessibility auditor, from the npm install that
// scripts/install-test-deps.sh makes in internal/browsertest/nodetest (version pinned by its
// package-lock.json).
var axeBundle = filepath.Join("nodetest", "node_modules", "axe-core", "axe.min.js")

// twoCameras makes Chromium's fake capture offer two cameras: fake_device_0 draws a green
// picture, fake_device_1 a grey one, so the others can tell which one a page sends.
var twoCameras = chromedp.Flag("use-fake-device-for-media-stream", "device-count=2")

// callBrowser starts the real server and Chromium with two fake cameras (and the fake
// microphones and speakers), bounded by timeout.
func callBrowser(t *testing.T, timeout time.Duration, extra ...chromedp.ExecAllocatorOption) (base string, browser context.Context) {
	t.Helper()
	requireChromium(t)
	return testserver.Start(t, nil), startChromium(t, timeout, append([]chromedp.ExecAllocatorOption{twoCameras}, extra...)...)
}

// requireAxe returns axe-core's source. Without it the test fails under CI=true; elsewhere it
// goes on without the audits (src "": axe returns nothing), saying so loudly.
func requireAxe(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile(axeBundle)
	if err != nil {
		what, fix := "axe-core is missing ("+axeBundle+")", "run scripts/install-test-deps.sh (npm ci in internal/browsertest/nodetest)"
		if os.Getenv("CI") == "true" {
			testenv.Missing(t, what, fix) // fails
		}
		t.Logf("\n\n*** SKIPPING THE ACCESSIBILITY AUDITS: %s. %s ***\n", what, fix)
		return ""
	}
	return string(b)
}

// axe audits the page as it is now with axe-core (WCAG 2.x A and AA rules and best practices)
// and returns its serious and critical violations, one line each (nothing without src).
func (p *appTab) axe(src string) []string {
	p.t.Helper()
	if src == "" {
		return nil
	}
	appEval[bool](p, `(() => { if (!window.axe) { (0, eval)(`+js(src)+`); } return !!window.axe; })()`)
	return appEval[[]string](p, `axe.run(document, { resultTypes: ['violations'] }).then((r) => r.violations
		.filter((v) => v.impact === 'serious' || v.impact === 'critical')
		.map((v) => v.impact + ' ' + v.id + ': ' + v.help + ' — ' + v.nodes.slice(0, 4).map((n) => n.target.join(' ') + ' (' + (n.failureSummary || '').replace(/\s+/g, ' ').slice(0, 160) + ')').join('; ')))`)
}

// frameColorJS classifies the picture a video element shows now: "green" (fake_device_0),
// "grey" (fake_device_1), "blue" (callsigns_test.go's pattern camera), "none" (no picture
// yet) or "other".
const frameColorJS = `((v) => {
	if (!v || v.videoWidth <= 0) return 'none';
	const c = document.createElement('canvas');
	c.width = 32; c.height = 24;
	const g = c.getContext('2d', { willReadFrequently: true });
	g.drawImage(v, 0, 0, 32, 24);
	const d = g.getImageData(0, 0, 32, 24).data;
	let r = 0, gr = 0, b = 0;
	for (let i = 0; i < d.length; i += 4) { r += d[i]; gr += d[i + 1]; b += d[i + 2]; }
	const n = d.length / 4;
	r /= n; gr /= n; b /= n;
	if (gr > r + 60 && gr > b + 60) return 'green';
	if (b > r + 60 && b > gr + 60) return 'blue';
	if (Math.abs(gr - r) < 25 && Math.abs(gr - b) < 25 && gr < 110) return 'grey';
	return 'other ' + [r, gr, b].map(Math.round).join(',');
})`

// The pre-join screen: the camera's preview and the microphone's level move, the pickers list
// the fake devices, the chosen camera is shown, remembered and chosen again after a reload; no
// serious or critical accessibility violation; joining with the camera off shows the others
// initials and the name.
func TestCallPrejoin(t *testing.T) {
	axeSrc := requireAxe(t)
	base, browser := callBrowser(t, 90*time.Second)
	room := "prejoin"
	p := openApp(t, browser, "P", base+"/r/"+room, 1280, 800)
	p.waitFor(`document.body.dataset.view === 'prejoin' && document.body.dataset.media === 'both' &&
		document.querySelector('#preview-video').videoWidth > 0 && document.querySelector('#media-problem').hidden`, "the camera's preview")
	// The fake microphone beeps: the meter moves.
	p.waitFor(`document.querySelector('#mic-level').value > 0.05`, "the microphone level to move")
	counts := appEval[[]int](p, `['#pick-camera', '#pick-mic', '#pick-speaker'].map((s) => {
		const sel = document.querySelector(s);
		return sel.closest('.picker').hidden ? -1 : sel.options.length;
	})`)
	if counts[0] != 2 || counts[1] < 2 || counts[2] < 2 {
		t.Fatalf("pickers: %v cameras, microphones, speakers (-1: hidden); want 2, ≥ 2, ≥ 2", counts)
	}
	if c := appEval[string](p, frameColorJS+`(document.querySelector('#preview-video'))`); c != "green" {
		t.Fatalf("the preview of the first camera is %q, want green", c)
	}

	// The second camera: shown in the preview and remembered.
	second := appEval[string](p, `(() => {
		const sel = document.querySelector('#pick-camera');
		sel.value = [...sel.options].find((o) => o.textContent === 'fake_device_1').value;
		sel.dispatchEvent(new Event('change'));
		return sel.value;
	})()`)
	p.waitFor(`localStorage.getItem('switchboard.camera') === `+js(second)+` && localStorage.getItem('switchboard.camera.label') === 'fake_device_1' &&
		document.querySelector('#preview-video').srcObject.getVideoTracks()[0].getSettings().deviceId === `+js(second)+` &&
		`+frameColorJS+`(document.querySelector('#preview-video')) === 'grey'`, "the second camera in the preview")

	if v := p.axe(axeSrc); len(v) > 0 {
		t.Errorf("pre-join: accessibility violations:\n%s", strings.Join(v, "\n"))
	}
	if axeSrc != "" {
		// The auditor does find what it should: a button without a name, added for a moment.
		appEval[bool](p, `(document.querySelector('#name-form').append(Object.assign(document.createElement('button'), { id: 'nameless', type: 'button' })), true)`)
		if v := p.axe(axeSrc); len(v) != 1 || !strings.Contains(v[0], "button-name") {
			t.Fatalf("axe on a page with a nameless button: %q", v)
		}
		appEval[bool](p, `(document.querySelector('#nameless').remove(), true)`)
	}
	p.screenshot("call-prejoin.png")

	// A reload chooses the remembered camera.
	if err := chromedp.Do(p.ctx, chromedp.Reload()); err != nil {
		t.Fatal(err)
	}
	// (Chromium gives the page new device ids after a reload: found again by label.)
	p.waitFor(`document.body.dataset.view === 'prejoin' && document.body.dataset.media === 'both' &&
		document.querySelector('#pick-camera').selectedOptions[0]?.textContent === 'fake_device_1' &&
		document.querySelector('#preview-video').srcObject?.getVideoTracks()[0].label === 'fake_device_1' &&
		`+frameColorJS+`(document.querySelector('#preview-video')) === 'grey'`, "the remembered camera after a reload")

	// Join as "Grace Hopper" with the camera off: the camera stops (its light goes off), the
	// other page shows her initials and name, not a black picture, and hears her.
	appEval[bool](p, `(document.querySelector('#name-input').value = 'Grace Hopper', document.querySelector('#pre-camera').click(), true)`)
	p.waitFor(`document.querySelector('#pre-camera').dataset.on === 'false' && document.querySelector('#preview-tile').dataset.cam === 'off' &&
		document.querySelector('#preview-video').srcObject.getVideoTracks()[0].readyState === 'ended'`, "the camera off and stopped in the pre-join")
	appEval[bool](p, `(document.querySelector('#name-submit').click(), true)`)
	p.waitFor(`document.body.dataset.joined === 'true'`, "joined")
	q := openApp(t, browser, "Q", base+"/r/"+room+"?name=Q", 1280, 800)
	q.waitFor(`(() => {
		const t = [...document.querySelectorAll('.tile[data-peer]')].find((t) => t.querySelector('.name').textContent === 'Grace Hopper');
		return t && t.dataset.cam === 'off' && t.querySelector('.initials').textContent === 'GH' &&
			getComputedStyle(t.querySelector('.avatar')).display === 'flex' && getComputedStyle(t.querySelector('video')).visibility === 'hidden';
	})()`, "Grace's initials on the other page")
	if names := q.waitAudio(1); len(names) != 1 || names[0] != "Grace Hopper" {
		t.Fatalf("Q hears %v", names)
	}
	if local := appEval[[]string](p, `[document.querySelector('#local-tile').dataset.cam, document.querySelector('#camera').dataset.on,
		window.switchboardApp.stream.getVideoTracks()[0].readyState]`); strings.Join(local, ",") != "off,false,ended" {
		t.Fatalf("P's own tile, camera button, camera track: %v", local)
	}

	// Her camera on in the call: it opens again (the one chosen in the pre-join; its frames
	// are a depth format the encoder refuses, so TestCallRemoteSigns checks the others decode
	// a camera turned on again) and Q's tile shows it on; off again, it stops.
	appEval[bool](p, `(document.querySelector('#camera').click(), true)`)
	p.waitFor(`window.switchboardApp.stream.getVideoTracks()[0].readyState === 'live' && window.switchboardApp.stream.getVideoTracks()[0].label === 'fake_device_1' &&
		document.querySelector('#camera').dataset.on === 'true'`, "P's camera open again")
	q.waitFor(`(() => {
		const t = [...document.querySelectorAll('.tile[data-peer]')].find((t) => t.querySelector('.name').textContent === 'Grace Hopper');
		return t && t.dataset.cam === 'on';
	})()`, "Grace's camera on, on the other page")
	appEval[bool](p, `(document.querySelector('#camera').click(), true)`)
	p.waitFor(`window.switchboardApp.stream.getVideoTracks()[0].readyState === 'ended' && document.querySelector('#camera').dataset.on === 'false'`, "P's camera stopped")
	for _, tab := range []*appTab{p, q} {
		if errs := tab.errors(); len(errs) > 0 {
			t.Errorf("%s console errors: %v", tab.name, errs)
		}
	}
}

// The camera refused by the browser (its permission denied; the microphone allowed): the
// pre-join says so in words and Try again asks again (still refused: still said; allowed:
// the preview); joining anyway works, the others see initials and hear the microphone, and
// the camera button asks again in the call, after which the others see the video.
func TestCallCameraDenied(t *testing.T) {
	// No fake permission prompt: the browser's permission settings decide.
	base, browser := callBrowser(t, 120*time.Second, chromedp.Flag("use-fake-ui-for-media-stream", false))
	set := func(name string, s cdpbrowser.PermissionSetting) {
		t.Helper()
		if _, err := chromedp.CallBrowser(browser, cdpbrowser.SetPermission, cdpbrowser.SetPermissionParams{
			Permission: &cdpbrowser.PermissionDescriptor{Name: name}, Setting: s, Origin: base,
		}); err != nil {
			t.Fatalf("set %s permission %s: %v", name, s, err)
		}
	}
	set("camera", cdpbrowser.PermissionSettingDenied)
	set("microphone", cdpbrowser.PermissionSettingGranted)
	room := "denied"
	problem := `(!document.querySelector('#media-problem').hidden && document.querySelector('#media-problem-text').textContent)`

	x := openApp(t, browser, "X", base+"/r/"+room, 1280, 800)
	x.waitFor(`document.body.dataset.media === 'audio' && `+problem, "the camera problem on the pre-join")
	msg := appEval[string](x, problem)
	if !strings.Contains(msg, "blocked your camera") || !strings.Contains(msg, "Try again") || !strings.Contains(msg, "join with your microphone") {
		t.Fatalf("the pre-join says %q", msg)
	}
	if got := appEval[[]string](x, `[document.querySelector('#pre-camera').textContent, String(document.querySelector('#pre-camera').disabled),
		String(document.querySelector('#name-submit').disabled), document.querySelector('#preview-tile').dataset.cam]`); strings.Join(got, ",") != "No camera,true,false,off" {
		t.Fatalf("camera button, disabled, join disabled, preview: %v", got)
	}
	// Try again while still refused: asked again, still said.
	appEval[bool](x, `(window.__asked = 0, (() => { const g = navigator.mediaDevices.getUserMedia.bind(navigator.mediaDevices);
		navigator.mediaDevices.getUserMedia = (c) => { window.__asked++; return g(c); }; })(), document.querySelector('#media-retry').click(), true)`)
	x.waitFor(`window.__asked >= 2 && document.body.dataset.media === 'audio' && `+problem, "Try again to ask again and fail again")
	// Allowed now: Try again shows the camera.
	set("camera", cdpbrowser.PermissionSettingGranted)
	appEval[bool](x, `(document.querySelector('#media-retry').click(), true)`)
	x.waitFor(`document.body.dataset.media === 'both' && document.querySelector('#media-problem').hidden &&
		document.querySelector('#preview-video').videoWidth > 0 && document.querySelector('#preview-tile').dataset.cam === 'on'`, "the preview after Try again")
	appEval[bool](x, `(document.querySelector('#name-input').value = 'Xena', document.querySelector('#name-submit').click(), true)`)
	x.waitFor(`document.body.dataset.joined === 'true'`, "X joined")

	// Y joins with its camera refused (join anyway): X sees Y's initials and hears Y.
	set("camera", cdpbrowser.PermissionSettingDenied)
	y := openApp(t, browser, "Y", base+"/r/"+room, 1280, 800)
	y.waitFor(`document.body.dataset.media === 'audio' && `+problem, "Y's camera problem")
	appEval[bool](y, `(document.querySelector('#name-input').value = 'Yuri Gagarin', document.querySelector('#name-submit').click(), true)`)
	y.waitFor(`document.body.dataset.joined === 'true' && document.querySelector('#local-tile').dataset.cam === 'off'`, "Y joined without a camera")
	tileY := `[...document.querySelectorAll('.tile[data-peer]')].find((t) => t.querySelector('.name').textContent === 'Yuri Gagarin')`
	x.waitFor(`(() => { const t = `+tileY+`; return t && t.dataset.cam === 'off' && t.querySelector('.initials').textContent === 'YG' &&
		getComputedStyle(t.querySelector('.avatar')).display === 'flex'; })()`, "Y's initials on X's page")
	x.waitAudio(1)
	if lbl := appEval[string](y, `document.querySelector('#camera').textContent`); lbl != "Turn camera on" {
		t.Fatalf("Y's camera button says %q", lbl)
	}

	// Allowed now: Y's camera button asks again, and X decodes Y's video.
	set("camera", cdpbrowser.PermissionSettingGranted)
	appEval[bool](y, `(document.querySelector('#camera').click(), true)`)
	y.waitFor(`document.querySelector('#local-tile').dataset.cam === 'on' && document.querySelector('#camera').dataset.on === 'true'`, "Y's camera on")
	x.waitFor(`(() => { const t = `+tileY+`; return t && t.dataset.cam === 'on' && t.querySelector('video').videoWidth > 0 &&
		getComputedStyle(t.querySelector('.avatar')).display === 'none'; })()`, "Y's video on X's page")
	x.waitVideos(1)
	for _, tab := range []*appTab{x, y} {
		if errs := tab.errors(); len(errs) > 0 {
			t.Errorf("%s console errors: %v", tab.name, errs)
		}
	}
}
