package browsertest

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/switchboard-rtc/switchboard/internal/config"
	"github.com/switchboard-rtc/switchboard/internal/testserver"
)

// The call benchmarks (issue 17, docs/benchmarks.md) run only with SWITCHBOARD_BENCH_CALL=1:
// they take minutes and report figures, they do not pass or fail on them. bench/call-media.sh
// runs them.
func benchCall(t *testing.T) {
	t.Helper()
	if os.Getenv("SWITCHBOARD_BENCH_CALL") != "1" {
		t.Skip("a benchmark: set SWITCHBOARD_BENCH_CALL=1 (bench/call-media.sh)")
	}
	requireChromium(t)
}

// firstFrameJS makes the page note when the first frame of a remote video is presented
// (requestVideoFrameCallback on every video element matching sel, now and as they appear):
// window.firstFrame is its performance.now().
func firstFrameJS(sel string) string {
	return `(() => {
	window.firstFrame = 0;
	const watch = (v) => {
		if (v.dataset.benchWatched) return;
		v.dataset.benchWatched = '1';
		v.requestVideoFrameCallback((now) => { if (!window.firstFrame) window.firstFrame = now; });
	};
	const scan = () => document.querySelectorAll(` + js(sel) + `).forEach(watch);
	scan();
	new MutationObserver(scan).observe(document.body, {subtree: true, childList: true});
	return true;
})()`
}

// waitFirstFrameJS resolves to the milliseconds from window.t0 to the first frame.
const waitFirstFrameJS = `new Promise((resolve, reject) => {
	const end = Date.now() + 30000;
	(function poll() {
		if (window.firstFrame) return resolve(window.firstFrame - window.t0);
		if (Date.now() > end) return reject(new Error('no remote frame'));
		setTimeout(poll, 5);
	})();
})`

// TestBenchJoinToFirstFrame: the time from clicking Join to the first remote video frame
// presented, in the web app (the page in the room has its camera on; the joining page's
// pre-join screen has opened its camera, and the click on Join starts the signaling
// connection, the join and the negotiation) and in the seed's bare page
// through /socket.io/ (the page in the room holds its camera open already, as the app's does;
// the joining page's call() opens its camera and offers). Ten runs of each, interleaved, in
// one browser; p50 and each run's figure are logged. The app also runs without its bitrate
// caps (?cap=off), to see what they cost the first frame.
func TestBenchJoinToFirstFrame(t *testing.T) {
	benchCall(t)
	mux := http.NewServeMux()
	seedRoutes(t, mux)
	pages := httptest.NewServer(mux)
	t.Cleanup(pages.Close)
	base := testserver.Start(t, func(c *config.Config) { c.AllowedOrigins = append(c.AllowedOrigins, pages.URL) })
	browser := startChromium(t, 10*time.Minute)
	const runs = 10
	var app, uncapped, seed []float64

	// q is added to both pages' URLs ("&cap=off": without the bitrate caps).
	runApp := func(i int, q string) float64 {
		room := fmt.Sprintf("bench-app-%d-%d", i, len(q))
		a := openApp(t, browser, "A", base+"/r/"+room+"?name=A"+q, 800, 600)
		defer a.cancel()
		a.waitFor(`document.body.dataset.joined === 'true'`, "joined")
		b := openApp(t, browser, "B", base+"/r/"+room+"?"+q, 800, 600)
		defer b.cancel()
		b.waitFor(`document.body.dataset.view === 'prejoin' && document.body.dataset.media`, "the pre-join screen, its camera open")
		appEval[bool](b, firstFrameJS(".tile.remote video"))
		appEval[bool](b, `(document.querySelector('#name-input').value = 'B', window.t0 = performance.now(), document.querySelector('#name-submit').click(), true)`)
		return appEval[float64](b, waitFirstFrameJS)
	}
	runSeed := func(i int) float64 {
		open := func(name string) *appTab {
			return openApp(t, browser, name, pages.URL+"/seed.html?server="+base, 800, 600)
		}
		a := open("seedA")
		defer a.cancel()
		b := open("seedB")
		defer b.cancel()
		idA := appEval[string](a, `socketId()`)
		appEval[string](b, `socketId()`)
		appEval[bool](a, `navigator.mediaDevices.getUserMedia({video: true, audio: true}).then((s) => { window.warm = s; return true; })`)
		appEval[bool](b, firstFrameJS("#remote"))
		appEval[bool](b, `(window.t0 = performance.now(), call(`+js(idA)+`), true)`)
		return appEval[float64](b, waitFirstFrameJS)
	}
	for i := range runs {
		// Interleaved, each first in turn: the machine's noise falls on both alike.
		if i%2 == 0 {
			app = append(app, runApp(i, ""))
			seed = append(seed, runSeed(i))
			uncapped = append(uncapped, runApp(i, "&cap=off"))
		} else {
			uncapped = append(uncapped, runApp(i, "&cap=off"))
			seed = append(seed, runSeed(i))
			app = append(app, runApp(i, ""))
		}
		t.Logf("run %d: app %.0f ms, app without caps %.0f ms, seed %.0f ms", i+1, app[i], uncapped[i], seed[i])
	}
	pa, pu, ps := median(app), median(uncapped), median(seed)
	t.Logf("RESULT join-to-first-frame p50: app %.0f ms, seed %.0f ms, app-seed %+.0f ms (goal <= +150 ms); app without caps %.0f ms; app runs %v, without caps %v, seed runs %v",
		pa, ps, pa-ps, pu, rounded(app), rounded(uncapped), rounded(seed))
}

func median(v []float64) float64 {
	s := slices.Clone(v)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func rounded(v []float64) []int {
	out := make([]int, len(v))
	for i, x := range v {
		out[i] = int(x + 0.5)
	}
	return out
}

// cpuTicks is the CPU time (user and system, clock ticks) of pid and its descendants.
func cpuTicks(t *testing.T, pid int) int64 {
	t.Helper()
	entries, err := os.ReadDir("/proc")
	if err != nil {
		t.Fatal(err)
	}
	parent := map[int]int{}
	ticks := map[int]int64{}
	for _, e := range entries {
		p, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue // gone meanwhile
		}
		// pid (comm) state ppid ... utime(14) stime(15): comm may hold spaces, so split after ')'.
		s := string(b)
		f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
		if len(f) < 13 {
			continue
		}
		pp, _ := strconv.Atoi(f[1])
		ut, _ := strconv.ParseInt(f[11], 10, 64)
		st, _ := strconv.ParseInt(f[12], 10, 64)
		parent[p] = pp
		ticks[p] = ut + st
	}
	var sum int64
	for p, tk := range ticks {
		for q := p; q > 1; q = parent[q] {
			if q == pid {
				sum += tk
				break
			}
		}
	}
	return sum
}

// TestBenchMeshCPU: Chromium's CPU for a four-page mesh call (one browser, four tabs: each
// sends its camera three times and decodes three), with the bitrate caps (bitrate.js) and
// without (?cap=off), two rounds of each, interleaved; with what each page receives.
func TestBenchMeshCPU(t *testing.T) {
	benchCall(t)
	base := testserver.Start(t, nil)
	const window = 20 * time.Second
	type result struct {
		cpu          float64 // cores
		kbps, height float64 // per received stream, mean
		fps          float64
		frames       float64 // frames encoded and decoded, all pages, per second
		load         string  // /proc/loadavg's first figure at the end of the window
	}
	// Each round in a subtest of its own, so that its browser is gone before the next starts.
	round := func(t *testing.T, i int, capped bool) result {
		browser := startChromium(t, 3*time.Minute)
		pid := chromedp.FromContext(browser).Browser.Process().Pid
		q := ""
		if !capped {
			q = "&cap=off"
		}
		tabs := joinCall(t, browser, base, fmt.Sprintf("bench-cpu-%d", i), "P", 4, q)
		defer func() {
			for _, p := range tabs {
				p.cancel()
			}
		}()
		for _, p := range tabs {
			p.waitVideos(3)
		}
		appEval[bool](tabs[0], `new Promise((r) => setTimeout(() => r(true), 8000))`) // ramp-up
		statsJS := `(async () => { let bytes = 0, h = 0, fps = 0, n = 0, frames = 0;
			for (const peer of window.switchboardApp.client.peers.values()) (await peer.pc.getStats()).forEach((s) => {
				if (s.type === 'outbound-rtp' && s.kind === 'video') frames += s.framesEncoded || 0;
				if (s.type !== 'inbound-rtp' || s.kind !== 'video') return;
				bytes += s.bytesReceived || 0; h += s.frameHeight || 0; fps += s.framesPerSecond || 0; n++;
				frames += s.framesDecoded || 0;
			});
			return [bytes, h, fps, n, frames]; })()`
		var before [][]float64
		for _, p := range tabs {
			before = append(before, appEval[[]float64](p, statsJS))
		}
		c0, t0 := cpuTicks(t, pid), time.Now()
		appEval[bool](tabs[0], fmt.Sprintf(`new Promise((r) => setTimeout(() => r(true), %d))`, window.Milliseconds()))
		c1, el := cpuTicks(t, pid), time.Since(t0)
		var r result
		var streams float64
		for i, p := range tabs {
			a := appEval[[]float64](p, statsJS)
			r.kbps += (a[0] - before[i][0]) * 8 / el.Seconds() / 1000
			r.height += a[1]
			r.fps += a[2]
			streams += a[3]
			r.frames += (a[4] - before[i][4]) / el.Seconds()
		}
		if b, err := os.ReadFile("/proc/loadavg"); err == nil {
			r.load = strings.Fields(string(b))[0]
		}
		r.kbps /= streams
		r.height /= streams
		r.fps /= streams
		r.cpu = float64(c1-c0) / 100 / el.Seconds() // USER_HZ is 100 on Linux
		return r
	}
	var rs [2][]result
	for i := range 4 {
		capped := i%2 == 0
		var r result
		t.Run(fmt.Sprintf("round%d", i+1), func(t *testing.T) { r = round(t, i, capped) })
		if t.Failed() {
			return
		}
		k := 0
		if !capped {
			k = 1
		}
		rs[k] = append(rs[k], r)
		t.Logf("round %d capped=%v: Chromium %.2f cores, %.1f ms of CPU per frame encoded or decoded (%.0f frames/s); per stream %.0f kbit/s, %.0f lines, %.1f fps; load average %s",
			i+1, capped, r.cpu, r.cpu*1000/r.frames, r.frames, r.kbps, r.height, r.fps, r.load)
	}
	for k, name := range []string{"capped", "uncapped"} {
		var cpu, kbps, h, fps, frames float64
		for _, r := range rs[k] {
			cpu += r.cpu / 2
			kbps += r.kbps / 2
			h += r.height / 2
			fps += r.fps / 2
			frames += r.frames / 2
		}
		t.Logf("RESULT mesh-4 %s: Chromium %.2f cores, %.1f ms of CPU per frame encoded or decoded; per received stream %.0f kbit/s, %.0f lines, %.1f fps",
			name, cpu, cpu*1000/frames, kbps, h, fps)
	}
}
