package browsertest

import (
	"context"
	"encoding/binary"
	"fmt"
	"math"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"

	"github.com/switchboard-rtc/switchboard/internal/testserver"
)

// presenterFlags make Chromium capture the tab titled "Slides" when a page asks for a screen
// (getDisplayMedia), as a person picking it in the browser's picker would: closing that tab
// then ends the capture from the browser's side (the track's "ended"), as the browser's own
// "Stop sharing" button does. --use-fake-ui-for-media-stream would answer the picker with a
// fake screen whose capture never ends, so it is replaced by the flag that accepts only the
// camera and microphone prompts.
var presenterFlags = []chromedp.ExecAllocatorOption{
	chromedp.Flag("use-fake-ui-for-media-stream", false),
	chromedp.Flag("auto-accept-camera-and-microphone-capture", true),
	chromedp.Flag("auto-select-tab-capture-source-by-title", "Slides"),
}

// slidesURL is a page titled "Slides" for presenterFlags to capture: large, high-contrast
// shapes and text, so its frames are unlike the fake camera's.
const slidesURL = `data:text/html,<!doctype html><title>Slides</title><body style="margin:0;background:%23fafafa;font:48px sans-serif">` +
	`<div style="padding:40px"><h1 style="color:%231a73e8">Quarterly review</h1><ul><li>Peer to peer</li><li>One binary</li></ul></div>` +
	`<div style="position:fixed;right:40px;bottom:40px;width:200px;height:200px;background:%23d93025;border-radius:50%25"></div></body>`

// evalGesture is appEval as if the user had just clicked: APIs that need a user activation
// (getDisplayMedia) accept what it runs.
func evalGesture[T any](p *appTab, expr string) T {
	p.t.Helper()
	gesture := func(e *runtime.EvaluateParams) { v := true; e.UserGesture = &v }
	v, err := chromedp.Run(p.ctx, chromedp.Evaluate[T](expr, chromedp.EvalAwaitPromise, gesture))
	if err != nil {
		p.t.Fatalf("%s: %s: %v\nconsole errors: %v", p.name, expr, err, p.errors())
	}
	return v
}

// joinCall opens n pages of room in browser (names prefix1..prefixN) and waits until each has
// joined.
func joinCall(t *testing.T, browser context.Context, base, room, prefix string, n int, query string) []*appTab {
	t.Helper()
	var tabs []*appTab
	for i := 1; i <= n; i++ {
		name := fmt.Sprintf("%s%d", prefix, i)
		tabs = append(tabs, openApp(t, browser, name, base+"/r/"+room+"?name="+url.QueryEscape(name)+query, 1280, 800))
	}
	for _, p := range tabs {
		p.waitFor(`document.body.dataset.joined === 'true'`, "joined")
	}
	return tabs
}

// stageJS is the page's view of the screens: the screen tiles shown, each with its caption, the
// size of the picture it plays, and the frames decoded of the track it plays (inbound-rtp).
const stageJS = `(async () => {
	const app = window.switchboardApp;
	const out = [];
	for (const tile of document.querySelectorAll('.tile[data-kind="screen"]')) {
		const v = tile.querySelector('video');
		const track = v.srcObject && v.srcObject.getVideoTracks()[0];
		let frames = 0;
		const peer = tile.dataset.presenter && app.client.peers.get(tile.dataset.presenter);
		if (peer && track) (await peer.pc.getStats(track)).forEach((s) => {
			if (s.type === 'inbound-rtp') frames += s.framesDecoded || 0;
		});
		out.push({peer: tile.dataset.presenter || '', local: tile.dataset.local === 'true', caption: tile.querySelector('.name').textContent,
			width: v.videoWidth, height: v.videoHeight, frames});
	}
	return out;
})()`

type stageTile struct {
	Peer    string  `json:"peer"`
	Local   bool    `json:"local"`
	Caption string  `json:"caption"`
	Width   float64 `json:"width"`
	Height  float64 `json:"height"`
	Frames  float64 `json:"frames"`
}

// waitScreen waits until the page's stage plays the screen of peer id, decoded, and returns
// it with the size of the same peer's camera tile.
func (p *appTab) waitScreen(id string) (screen stageTile, camW, camH float64) {
	p.t.Helper()
	ok := appEval[bool](p, waitJS+`(async () => { const s = (await `+stageJS+`).find((t) => t.peer === `+js(id)+`);
		return s && s.width > 0 && s.frames > 0; }, 20000, 'screen').then(() => true, () => false)`)
	if !ok {
		p.t.Fatalf("%s: the screen of %s is not decoded on its tile: screens %v, share state %v\nsdp %v", p.name, id,
			appEval[any](p, stageJS), appEval[any](p, `window.switchboardApp.callMedia.share.state()`),
			appEval[any](p, `(() => { const pc = window.switchboardApp.client.peers.get(`+js(id)+`).pc;
				return [pc.currentRemoteDescription.type, pc.currentRemoteDescription.sdp.split('\r\n').filter((l) => /^(m=|a=msid|a=mid|a=send|a=recv|a=inactive)/.test(l)).join(' | '),
					pc.getTransceivers().map((t) => t.mid + ':' + t.direction + '/' + t.currentDirection).join(' ')]; })()`))
	}
	for _, s := range appEval[[]stageTile](p, stageJS) {
		if s.Peer == id {
			screen = s
		}
	}
	cam := appEval[[]float64](p, `(() => { const v = document.querySelector('.tile[data-kind="camera"][data-peer=`+js(id)+`] video');
		return [v.videoWidth, v.videoHeight]; })()`)
	return screen, cam[0], cam[1]
}

// TestCallScreenShare: in a call of three pages the one in the middle of the peer ids (so it
// offers to one peer and answers the other) presents the "Slides" tab; a fourth page joins
// while it presents, at a phone's width. Every other page shows the screen on a tile of its
// own in the spotlight, captioned "P is presenting", as a second video of another size than
// the presenter's camera, decoded, while the presenter's camera tile keeps its camera. Closing
// the captured tab (the browser ends the capture, as its "Stop sharing" button does) removes
// it everywhere; a second share (reusing each pair's transceiver) arrives again and the page's
// own "Stop sharing" removes it. A screenshot of the four-person call with a presenter is
// saved, and axe-core audits that page.
func TestCallScreenShare(t *testing.T) {
	requireChromium(t)
	axeSrc := requireAxe(t)
	base := testserver.Start(t, nil)
	browser := startChromium(t, 150*time.Second, presenterFlags...)
	t0 := time.Now()
	room := "share-test"
	tabs := joinCall(t, browser, base, room, "P", 3, "")
	for _, p := range tabs {
		p.waitVideos(2)
	}
	ids := map[*appTab]string{}
	for _, p := range tabs {
		ids[p] = appEval[string](p, `window.switchboardApp.client.id`)
	}
	byID := slices.Clone(tabs)
	slices.SortFunc(byID, func(a, b *appTab) int { return strings.Compare(ids[a], ids[b]) })
	presenter := byID[1] // polite towards the first, impolite towards the last
	pid := ids[presenter]
	t.Logf("three pages in the call after %v; %s presents (polite to %s, offers to %s)",
		time.Since(t0).Round(time.Millisecond), presenter.name, byID[0].name, byID[2].name)

	slides := openApp(t, browser, "Slides", slidesURL, 1280, 800)
	share := func() {
		t.Helper()
		evalGesture[bool](presenter, `window.switchboardApp.callMedia.share.start()`)
		presenter.waitFor(`document.querySelector('.tile[data-kind="screen"][data-local]') && document.querySelector('#share').getAttribute('aria-pressed') === 'true'`, "own share shown")
	}
	share()
	p4 := openApp(t, browser, "P4", base+"/r/"+room+"?name=P4", 390, 844) // a phone
	p4.waitFor(`document.body.dataset.joined === 'true'`, "joined")
	tabs = append(tabs, p4)
	ids[p4] = appEval[string](p4, `window.switchboardApp.client.id`)

	checkShown := func(round string) {
		t.Helper()
		for _, p := range tabs {
			if p == presenter {
				continue
			}
			p.waitVideos(3)
			s, cw, ch := p.waitScreen(pid)
			t.Logf("%s %s: %q %vx%v (%v frames); camera tile %vx%v", round, p.name, s.Caption, s.Width, s.Height, s.Frames, cw, ch)
			if s.Caption != presenter.name+" is presenting" {
				t.Errorf("%s: caption %q", p.name, s.Caption)
			}
			if s.Width == cw && s.Height == ch {
				t.Errorf("%s: the screen (%vx%v) has the camera's size: the camera was shown as the screen", p.name, s.Width, s.Height)
			}
			if got := appEval[string](p, `document.body.dataset.presenting || ''`); got != "1" {
				t.Errorf("%s: body[data-presenting] %q, want 1", p.name, got)
			}
			if got := appEval[string](p, `(document.querySelector('#grid').dataset.layout || '') + ' ' + (document.querySelector('.tile.spot') || {dataset: {}}).dataset.kind`); got != "spotlight screen" {
				t.Errorf("%s: layout and spotlit tile %q, want the screen in the spotlight", p.name, got)
			}
		}
	}
	checkShown("first share")
	if w := appEval[[]int](p4, `[document.documentElement.scrollWidth, window.innerWidth]`); w[0] > w[1] {
		t.Errorf("phone width while presenting: page %d px wide in a %d px viewport", w[0], w[1])
	}
	if box := appEval[[]float64](p4, `(() => { const r = document.querySelector('.tile[data-kind="screen"]').getBoundingClientRect(); return [r.width, r.height]; })()`); box[0] < 300 || box[1] < 150 {
		t.Errorf("phone width: the screen is shown %vx%v px", box[0], box[1])
	}
	t.Logf("shown everywhere after %v", time.Since(t0).Round(time.Millisecond))

	dir := artifactsDir(t)
	viewer := byID[0]
	shot, err := chromedp.Run(viewer.ctx, chromedp.CaptureScreenshot())
	if err != nil {
		t.Fatalf("screenshot: %v", err)
	}
	file := filepath.Join(dir, "webapp-call-presenting.png")
	if err := os.WriteFile(file, shot, 0o644); err != nil {
		t.Fatal(err)
	}
	checkScreenshot(t, file)
	// The page as a presenter's audience sees it, a quality's details open: no serious or
	// critical accessibility violation.
	viewer.waitFor(`document.querySelector('.tile[data-kind="camera"] button.quality:not([hidden])')`, "a quality badge")
	appEval[bool](viewer, `(document.querySelector('.tile[data-kind="camera"] button.quality:not([hidden])').click(), true)`)
	if v := viewer.axe(axeSrc); len(v) > 0 {
		t.Errorf("a call with a presenter: accessibility violations:\n%s", strings.Join(v, "\n"))
	}

	gone := func(round string) {
		t.Helper()
		for _, p := range tabs {
			ok := appEval[bool](p, waitJS+`(async () => !document.querySelector('.tile[data-kind="screen"]') && !document.body.dataset.presenting && document.querySelector('#grid').dataset.layout !== 'spotlight',
				20000, 'stage').then(() => true, () => false)`)
			if !ok {
				t.Fatalf("%s: %s: the screen stays: %v, share state %v", p.name, round, appEval[any](p, stageJS), appEval[any](p, `window.switchboardApp.callMedia.share.state()`))
			}
		}
		if got := appEval[string](presenter, `document.querySelector('#share .lbl').textContent + '/' + document.querySelector('#share').getAttribute('aria-pressed')`); got != "Share screen/false" {
			t.Errorf("presenter's share button after the share ended: %q", got)
		}
		// The cameras go on.
		for _, p := range tabs {
			if !appEval[bool](p, `(async () => { try { await `+waitVideosJS(3)+`; return true; } catch { return false; } })()`) {
				t.Fatalf("%s: %s: the cameras are not all shown: %v, share state %v", p.name, round,
					appEval[any](p, `[...document.querySelectorAll('.tile.remote')].map((t) => [t.dataset.peer, t.dataset.state, t.querySelector('video').videoWidth, t.querySelector('video').srcObject && t.querySelector('video').srcObject.id])`),
					appEval[any](p, `window.switchboardApp.callMedia.share.state()`))
			}
		}
	}
	// The browser ends the capture: the captured tab closes.
	slides.cancel()
	gone("captured tab closed")
	t.Logf("the closed tab ended the share everywhere after %v", time.Since(t0).Round(time.Millisecond))

	// Again, on the transceivers of the first share; stopped from the page this time.
	transceivers := `[...window.switchboardApp.client.peers.values()].map((p) => p.pc.getTransceivers().length)`
	before := appEval[[]int](presenter, transceivers)
	openApp(t, browser, "Slides2", slidesURL, 1280, 800)
	share()
	checkShown("second share")
	if after := appEval[[]int](presenter, transceivers); !slices.Equal(before, after) {
		t.Errorf("presenter: transceivers per pair %v after the second share, %v before: the share's were not reused", after, before)
	}
	appEval[bool](presenter, `(document.querySelector('.tile[data-kind="screen"] .stop-share').click(), true)`)
	gone("stop presenting")

	for _, p := range tabs {
		if errs := p.errors(); len(errs) > 0 {
			t.Errorf("%s console errors: %v", p.name, errs)
		}
	}
	t.Logf("done in %v", time.Since(t0).Round(time.Millisecond))
}

// artifactsDir is $SWITCHBOARD_ARTIFACTS (made if missing), else a temporary directory.
func artifactsDir(t *testing.T) string {
	t.Helper()
	dir := os.Getenv("SWITCHBOARD_ARTIFACTS")
	if dir == "" {
		return t.TempDir()
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// writeWAV writes seconds of mono 48 kHz 16-bit audio for Chromium's
// --use-file-for-fake-audio-capture (which loops it): with amp 0, digital silence; else
// something like a voice at peak amplitude amp (0..1): a pitch gliding around freq Hz with
// four harmonics, in syllables of about 250 ms. A steady tone would not do: the browser's
// noise suppression takes it for noise and lowers it to a tenth.
func writeWAV(t *testing.T, path string, freq, amp float64, seconds int) {
	t.Helper()
	const rate = 48000
	n := rate * seconds
	b := make([]byte, 44+2*n)
	copy(b[0:], "RIFF")
	binary.LittleEndian.PutUint32(b[4:], uint32(36+2*n))
	copy(b[8:], "WAVEfmt ")
	binary.LittleEndian.PutUint32(b[16:], 16)
	binary.LittleEndian.PutUint16(b[20:], 1) // PCM
	binary.LittleEndian.PutUint16(b[22:], 1) // mono
	binary.LittleEndian.PutUint32(b[24:], rate)
	binary.LittleEndian.PutUint32(b[28:], rate*2)
	binary.LittleEndian.PutUint16(b[32:], 2)
	binary.LittleEndian.PutUint16(b[34:], 16)
	copy(b[36:], "data")
	binary.LittleEndian.PutUint32(b[40:], uint32(2*n))
	phase := 0.0
	for i := range n {
		x := float64(i) / rate
		f := freq * (1 + 0.25*math.Sin(2*math.Pi*0.7*x)) // intonation
		phase += 2 * math.Pi * f / rate
		syllable := math.Abs(math.Sin(2 * math.Pi * 2 * x)) // 4 syllables a second
		v := 0.0
		for h := 1.0; h <= 4; h++ {
			v += math.Sin(h*phase) / h
		}
		v *= amp * syllable / 2.1
		binary.LittleEndian.PutUint16(b[44+2*i:], uint16(int16(v*32767)))
	}
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// speakingJS lists the remote tiles the page highlights: "name" for speaking, "name*" for
// the active speaker.
const speakingJS = `[...document.querySelectorAll('.tile.remote[data-speaking]')].map((t) =>
	t.querySelector('.name').textContent + (t.dataset.activeSpeaker ? '*' : '')).sort()`

// TestCallActiveSpeaker: one page speaks (a Chromium whose fake microphone plays a voice-like
// sound, writeWAV), two
// are silent (another Chromium, whose microphone plays silence). Both silent pages highlight
// the speaker's tile as the active speaker and never the other silent page; the speaker
// highlights nobody. When the speaker mutes, the highlight goes.
func TestCallActiveSpeaker(t *testing.T) {
	requireChromium(t)
	dir := t.TempDir()
	tone, silence := filepath.Join(dir, "tone.wav"), filepath.Join(dir, "silence.wav")
	writeWAV(t, tone, 160, 0.7, 4)
	writeWAV(t, silence, 0, 0, 4)
	base := testserver.Start(t, nil)
	loud := startChromium(t, 90*time.Second, chromedp.Flag("use-file-for-fake-audio-capture", tone))
	quiet := startChromium(t, 90*time.Second, chromedp.Flag("use-file-for-fake-audio-capture", silence))
	t0 := time.Now()
	room := "speaker-test"
	speaker := joinCall(t, loud, base, room, "Speaker", 1, "")[0]
	silent := joinCall(t, quiet, base, room, "Quiet", 2, "")
	all := append([]*appTab{speaker}, silent...)
	for _, p := range all {
		p.waitAudio(2)
	}
	t.Logf("three pages hear each other after %v", time.Since(t0).Round(time.Millisecond))

	for _, p := range silent {
		p.waitFor(`JSON.stringify(`+speakingJS+`) === '["Speaker1*"]'`, "the speaker highlighted alone")
	}
	t.Logf("the speaker is highlighted on both silent pages after %v", time.Since(t0).Round(time.Millisecond))
	// For two seconds (eight polls), nobody else lights up anywhere.
	for end := time.Now().Add(2 * time.Second); time.Now().Before(end); {
		for _, p := range silent {
			if got := appEval[[]string](p, speakingJS); !slices.Equal(got, []string{"Speaker1*"}) {
				t.Fatalf("%s highlights %v, want only Speaker1 (levels %v)", p.name, got, appEval[map[string]float64](p, `window.switchboardApp.callMedia.speakers.levels()`))
			}
		}
		if got := appEval[[]string](speaker, speakingJS); len(got) > 0 {
			t.Fatalf("the speaker highlights %v, but the others are silent (levels %v)", got, appEval[map[string]float64](speaker, `window.switchboardApp.callMedia.speakers.levels()`))
		}
		appEval[bool](speaker, `new Promise((r) => setTimeout(() => r(true), 250))`)
	}
	t.Logf("levels on %s: %v", silent[0].name, appEval[map[string]float64](silent[0], `window.switchboardApp.callMedia.speakers.levels()`))

	appEval[bool](speaker, `(document.querySelector('#mic').click(), true)`)
	for _, p := range silent {
		p.waitFor(`(`+speakingJS+`).length === 0`, "the highlight to go after the speaker muted")
	}
	t.Logf("muted: no highlight after %v", time.Since(t0).Round(time.Millisecond))
	for _, p := range all {
		if errs := p.errors(); len(errs) > 0 {
			t.Errorf("%s console errors: %v", p.name, errs)
		}
	}
}
