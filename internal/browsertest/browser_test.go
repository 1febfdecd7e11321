package browsertest

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http/httptest"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/pion/webrtc/v4"

	"github.com/switchboard-rtc/switchboard/internal/config"
	"github.com/switchboard-rtc/switchboard/internal/testenv"
	"github.com/switchboard-rtc/switchboard/internal/testserver"
	"github.com/switchboard-rtc/switchboard/internal/web"
	"github.com/switchboard-rtc/switchboard/sdk"
)

const chromiumPath = "/usr/bin/chromium"

// env is one test's server, SDK page server and browser.
type env struct {
	t       *testing.T
	wsURL   string // ws://127.0.0.1:PORT/ws of the real server
	pageURL string // http://127.0.0.1:PORT/sdk/test.html?ws=...
	browser context.Context
}

// setup starts the real server, serves web.Handler on another loopback port (the lead mounts
// it in the server's mux; until then the page gets the signaling URL as ?ws=) and launches
// headless Chromium. Everything stops when the test ends; the whole test is bounded by
// timeout.
func setup(t *testing.T, timeout time.Duration) *env {
	t.Helper()
	return setupWith(t, timeout, nil)
}

// setupWith is setup with the server's defaults changed by mod.
func setupWith(t *testing.T, timeout time.Duration, mod func(*config.Config)) *env {
	t.Helper()
	requireChromium(t)
	pages := httptest.NewServer(web.Handler())
	t.Cleanup(pages.Close)
	base := testserver.Start(t, func(c *config.Config) {
		c.AllowedOrigins = append(c.AllowedOrigins, pages.URL) // the page is on another port
		if mod != nil {
			mod(c)
		}
	})
	e := &env{t: t, wsURL: "ws" + strings.TrimPrefix(base, "http") + "/ws"}
	e.pageURL = pages.URL + "/sdk/test.html?ws=" + e.wsURL

	e.browser = startChromium(t, timeout)
	return e
}

// requireChromium skips the test loudly when Debian's chromium is missing, and fails it under
// CI=true, where a missing browser must never pass unnoticed.
func requireChromium(t *testing.T) {
	t.Helper()
	if _, err := os.Stat(chromiumPath); err != nil {
		testenv.Missing(t, chromiumPath+" is missing", "run scripts/install-test-deps.sh to install Debian's chromium")
	}
}

// startChromium launches headless Chromium with a fake camera and microphone, bounded by
// timeout and stopped when the test ends, and returns its browser context. extra adds to or
// overrides the options (https_test.go: a HOME with its own certificate store, host mapping).
func startChromium(t *testing.T, timeout time.Duration, extra ...chromedp.ExecAllocatorOption) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	t.Cleanup(cancel)
	opts := append(chromedp.DefaultExecAllocatorOptions[:0:0], chromedp.DefaultExecAllocatorOptions[:]...)
	opts = append(opts,
		chromedp.ExecPath(chromiumPath),
		chromedp.Flag("headless", true),
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.Flag("use-fake-device-for-media-stream", true),
		chromedp.Flag("use-fake-ui-for-media-stream", true),
		chromedp.Flag("allow-loopback-in-peer-connection", true),
		chromedp.Flag("autoplay-policy", "no-user-gesture-required"),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.NoFirstRun,
		// Replaces chromedp's own list, so repeat it: a second flag would override the first.
		chromedp.Flag("disable-features", "Translate,BlinkGenPropertyTrees,WebRtcHideLocalIpsWithMdns"),
	)
	opts = append(opts, extra...)
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(ctx, opts...)
	t.Cleanup(cancelAlloc)
	browser, cancelBrowser := chromedp.NewContext(allocCtx)
	t.Cleanup(cancelBrowser)
	start := time.Now()
	if err := chromedp.Do(browser); err != nil { // starts the browser
		t.Fatalf("start chromium: %v", err)
	}
	t.Logf("chromium started in %v", time.Since(start).Round(time.Millisecond))
	return browser
}

// page opens a new tab on the test page.
func (e *env) page(name string) *page {
	e.t.Helper()
	ctx, cancel := chromedp.NewContext(e.browser)
	e.t.Cleanup(cancel)
	p := &page{t: e.t, ctx: ctx, name: name}
	if err := chromedp.Do(ctx, chromedp.Navigate(e.pageURL)); err != nil {
		e.t.Fatalf("%s: navigate: %v", name, err)
	}
	if _, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`new Promise((resolve, reject) => {
		const end = Date.now() + 5000;
		(function poll() {
			if (window.TReady) return resolve(true);
			if (Date.now() > end) return reject(new Error("test page did not load"));
			setTimeout(poll, 20);
		})();
	})`, chromedp.EvalAwaitPromise)); err != nil {
		e.t.Fatalf("%s: %v", name, err)
	}
	return p
}

type page struct {
	t    *testing.T
	ctx  context.Context
	name string
}

// eval runs a JavaScript expression (awaiting a promise) and decodes its JSON result.
func eval[T any](p *page, expr string) T {
	p.t.Helper()
	v, err := chromedp.Run(p.ctx, chromedp.Evaluate[T](expr, chromedp.EvalAwaitPromise))
	if err != nil {
		p.t.Fatalf("%s: %s: %v\npage log:\n%s", p.name, expr, err, p.log())
	}
	return v
}

func (p *page) log() string {
	v, err := chromedp.Run(p.ctx, chromedp.Evaluate[[]string](`window.T ? T.log : []`))
	if err != nil {
		return "(" + err.Error() + ")"
	}
	return strings.Join(v, "\n")
}

func (p *page) errors() []string {
	return eval[[]string](p, `T.errors`)
}

func js(s string) string { return strconv.Quote(s) }

func TestBrowserToBrowser(t *testing.T) {
	e := setup(t, 45*time.Second)
	room := "browser-pair"
	a, b := e.page("A"), e.page("B")
	t0 := time.Now()
	idA := eval[string](a, `T.join(null, `+js(room)+`, "A")`)
	idB := eval[string](b, `T.join(null, `+js(room)+`, "B")`)
	politeA := eval[bool](a, `T.waitConnected(`+js(idB)+`)`)
	politeB := eval[bool](b, `T.waitConnected(`+js(idA)+`)`)
	if politeA == politeB {
		t.Fatalf("both sides polite=%v: exactly one side must be polite", politeA)
	}
	t.Logf("connected in %v (A polite=%v)", time.Since(t0).Round(time.Millisecond), politeA)

	// (a) Data channels, opened from each side: A → B and back, B → A and back.
	t1 := time.Now()
	if got := eval[string](a, `T.chat(`+js(idB)+`, "a2b", "ping from A")`); got != "echo:ping from A" {
		t.Fatalf("A got %q back on a2b", got)
	}
	if got := eval[string](b, `T.waitReceived("a2b")`); got != "ping from A" {
		t.Fatalf("B got %q on a2b", got)
	}
	if got := eval[string](b, `T.chat(`+js(idA)+`, "b2a", "ping from B")`); got != "echo:ping from B" {
		t.Fatalf("B got %q back on b2a", got)
	}
	t.Logf("data channels both ways in %v", time.Since(t1).Round(time.Millisecond))

	// Relayed messages reach the app; the SDK's own negotiate requests never do (checked below).
	eval[bool](a, `T.send(`+js(idB)+`, {text: "relayed"})`)
	if got := eval[map[string]any](b, `T.waitMessage()`); got["text"] != "relayed" {
		t.Fatalf("B got relayed message %v", got)
	}

	// (b) Video both ways, added after the first negotiation: the polite side's track goes
	// through a negotiate request, the impolite side's through its own offer.
	t2 := time.Now()
	eval[bool](a, `T.startVideo(`+js(idB)+`)`)
	eval[bool](b, `T.startVideo(`+js(idA)+`)`)
	va := eval[map[string]float64](a, `T.waitVideo(`+js(idB)+`)`)
	vb := eval[map[string]float64](b, `T.waitVideo(`+js(idA)+`)`)
	for name, v := range map[string]map[string]float64{"A": va, "B": vb} {
		if v["width"] <= 0 || v["framesDecoded"] <= 0 {
			t.Fatalf("%s decoded no video: %v", name, v)
		}
	}
	t.Logf("video both ways in %v: A sees %vx%v (%v frames), B sees %vx%v (%v frames)",
		time.Since(t2).Round(time.Millisecond), va["width"], va["height"], va["framesDecoded"],
		vb["width"], vb["height"], vb["framesDecoded"])

	for _, p := range []*page{a, b} {
		if n := eval[int](p, `T.messages.filter(m => m.data && m.data.switchboard).length`); n != 0 {
			t.Errorf("%s: %d SDK negotiate messages surfaced to the app", p.name, n)
		}
		if errs := p.errors(); len(errs) > 0 {
			t.Errorf("%s reported errors: %v", p.name, errs)
		}
	}
}

// TestGoInterop connects Go SDK clients (Loopback) to one page and exchanges data-channel
// messages both ways, with the browser on each side of the pair: Go clients join until one
// is polite and one impolite towards the page.
func TestGoInterop(t *testing.T) {
	e := setup(t, 40*time.Second)
	room := "go-interop"
	pg := e.page("page")
	idPage := eval[string](pg, `T.join(null, `+js(room)+`, "page")`)

	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	covered := map[bool]bool{} // browser polite?
	for i := 0; i < 30 && len(covered) < 2; i++ {
		ctx, cancel := context.WithTimeout(e.browser, 15*time.Second)
		var (
			got      = make(chan string, 4)
			goPeerCh = make(chan *sdk.Peer, 1)
			rtp      = make(chan string, 1)
		)
		c, err := sdk.Dial(ctx, e.wsURL, room, &sdk.Options{
			Name: fmt.Sprintf("go%d", i), Loopback: true, Logger: quiet,
			OnPeer: func(p *sdk.Peer) {
				if p.ID() != idPage {
					return
				}
				p.OnDataChannel(func(dc *webrtc.DataChannel) {
					dc.OnMessage(func(m webrtc.DataChannelMessage) {
						got <- dc.Label() + ":" + string(m.Data)
						_ = dc.SendText("echo:" + string(m.Data))
					})
				})
				p.OnTrack(func(tr *webrtc.TrackRemote, _ *webrtc.RTPReceiver) {
					pkt, _, err := tr.ReadRTP()
					if err == nil && len(pkt.Payload) > 0 {
						select {
						case rtp <- tr.Kind().String():
						default:
						}
					}
					buf := make([]byte, 1500)
					for {
						if _, _, err := tr.Read(buf); err != nil {
							return
						}
					}
				})
				goPeerCh <- p
			},
			OnError: func(p *sdk.Peer, err error) { t.Logf("go client %d: %v", i, err) },
		})
		if err != nil {
			cancel()
			t.Fatalf("dial: %v", err)
		}
		browserPolite := idPage > c.ID()
		t.Logf("go client %d: id %s, page %s, browser polite=%v", i, c.ID(), idPage, browserPolite)
		if covered[browserPolite] {
			// Ids are random, but a page id near either end of the alphabet makes one role
			// rare: rejoin the page too, with a fresh id.
			_ = c.Close()
			cancel()
			idPage = eval[string](pg, `(T.client.close(), T.join(null, `+js(room)+`, "page"))`)
			continue
		}
		covered[browserPolite] = true
		t.Run(fmt.Sprintf("browser-polite=%v", browserPolite), func(t *testing.T) {
			defer cancel()
			defer func() { _ = c.Close() }()
			var gp *sdk.Peer
			select {
			case gp = <-goPeerCh:
			case <-ctx.Done():
				t.Fatal("the Go client never saw the page")
			}
			t0 := time.Now()
			if polite := eval[bool](pg, `T.waitConnected(`+js(c.ID())+`)`); polite != browserPolite {
				t.Fatalf("page polite=%v, want %v", polite, browserPolite)
			}
			select {
			case <-gp.Connected():
			case <-ctx.Done():
				t.Fatal("Go side never connected")
			}
			t.Logf("connected in %v", time.Since(t0).Round(time.Millisecond))

			// Browser → Go and back, on a channel the browser opens.
			label := fmt.Sprintf("b2g%d", i)
			if r := eval[string](pg, `T.chat(`+js(c.ID())+`, `+js(label)+`, "hi from browser")`); r != "echo:hi from browser" {
				t.Fatalf("page got %q back", r)
			}
			select {
			case m := <-got:
				if m != label+":hi from browser" {
					t.Fatalf("Go got %q", m)
				}
			case <-ctx.Done():
				t.Fatal("Go got nothing")
			}

			// Go → browser and back, on a channel Go opens.
			label = fmt.Sprintf("g2b%d", i)
			dc, err := gp.CreateDataChannel(label, nil)
			if err != nil {
				t.Fatal(err)
			}
			reply := make(chan string, 1)
			dc.OnMessage(func(m webrtc.DataChannelMessage) { reply <- string(m.Data) })
			dc.OnOpen(func() { _ = dc.SendText("hi from go") })
			select {
			case r := <-reply:
				if r != "echo:hi from go" {
					t.Fatalf("Go got %q back", r)
				}
			case <-ctx.Done():
				t.Fatalf("no reply from the page on %s\npage log:\n%s", label, pg.log())
			}
			if m := eval[string](pg, `T.waitReceived(`+js(label)+`)`); m != "hi from go" {
				t.Fatalf("page got %q", m)
			}
			t.Logf("data channels both ways in %v", time.Since(t0).Round(time.Millisecond))

			// Browser camera → Go: a track added after the first negotiation reaches Pion
			// (through a negotiate request when the browser is polite).
			t1 := time.Now()
			eval[bool](pg, `T.startVideo(`+js(c.ID())+`)`)
			select {
			case kind := <-rtp:
				if kind != "video" {
					t.Fatalf("Go got a %s track", kind)
				}
			case <-ctx.Done():
				t.Fatalf("no RTP from the page's camera\npage log:\n%s", pg.log())
			}
			t.Logf("first RTP from the browser camera after %v", time.Since(t1).Round(time.Millisecond))
		})
	}
	if len(covered) < 2 {
		t.Fatalf("could not cover both roles: %v", covered)
	}
	// Clients that left at once (their role was covered) may leave the page's last candidates
	// without a target: unknown-target is expected then, nothing else is.
	for _, msg := range pg.errors() {
		if !strings.Contains(msg, "unknown-target") {
			t.Errorf("page reported error: %s", msg)
		}
	}
}
