package browsertest

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/switchboard-rtc/switchboard/internal/config"
	"github.com/switchboard-rtc/switchboard/internal/testserver"
)

// lossyUDP stands between TURN clients and the embedded TURN server's UDP port, as a bad
// network path would: it forwards datagrams both ways and drops each with the probability
// SetLoss sets (0 at first). Each client address gets a socket of its own towards the server.
// Everything stops when the test ends.
type lossyUDP struct {
	front *net.UDPConn
	to    *net.UDPAddr
	loss  atomic.Uint64 // math.Float64bits of the probability
	wg    sync.WaitGroup

	dropped, passed atomic.Int64

	mu    sync.Mutex
	backs map[string]*net.UDPConn
	done  bool
}

// maxLossyClients bounds the client addresses a lossyUDP serves.
const maxLossyClients = 64

func newLossyUDP(t *testing.T, to *net.UDPAddr) *lossyUDP {
	t.Helper()
	front, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	l := &lossyUDP{front: front, to: to, backs: map[string]*net.UDPConn{}}
	l.wg.Add(1)
	go l.serve()
	t.Cleanup(l.close)
	return l
}

// Port is the port clients send to.
func (l *lossyUDP) Port() int { return l.front.LocalAddr().(*net.UDPAddr).Port }

// SetLoss sets the probability (0..1) that a datagram is dropped, each way.
func (l *lossyUDP) SetLoss(p float64) { l.loss.Store(math.Float64bits(p)) }

func (l *lossyUDP) drop() bool {
	if p := math.Float64frombits(l.loss.Load()); p > 0 && rand.Float64() < p {
		l.dropped.Add(1)
		return true
	}
	l.passed.Add(1)
	return false
}

func (l *lossyUDP) serve() {
	defer l.wg.Done()
	buf := make([]byte, 64<<10)
	for {
		n, from, err := l.front.ReadFromUDP(buf)
		if err != nil {
			return
		}
		if l.drop() {
			continue
		}
		if back := l.back(from); back != nil {
			_, _ = back.Write(buf[:n])
		}
	}
}

// back returns the socket towards the server for client from, made on first use.
func (l *lossyUDP) back(from *net.UDPAddr) *net.UDPConn {
	l.mu.Lock()
	defer l.mu.Unlock()
	if c, ok := l.backs[from.String()]; ok || l.done || len(l.backs) >= maxLossyClients {
		return c
	}
	c, err := net.DialUDP("udp4", nil, l.to)
	if err != nil {
		return nil
	}
	l.backs[from.String()] = c
	l.wg.Add(1)
	go func() {
		defer l.wg.Done()
		buf := make([]byte, 64<<10)
		for {
			n, err := c.Read(buf)
			if err != nil {
				var ne net.Error
				if errors.As(err, &ne) && !errors.Is(err, net.ErrClosed) {
					continue // an ICMP refusal from the server's side; go on
				}
				return
			}
			if !l.drop() {
				_, _ = l.front.WriteToUDP(buf[:n], from)
			}
		}
	}()
	return c
}

func (l *lossyUDP) close() {
	l.mu.Lock()
	l.done = true
	_ = l.front.Close()
	for _, c := range l.backs {
		_ = c.Close()
	}
	l.mu.Unlock()
	l.wg.Wait()
}

// relayThrough is a script for openAppWith: the page's peer connections use only TURN
// relays, reached through the UDP port `via` instead of the server's own TURN port `real`
// (the credentials from the welcome still hold: the TURN server behind is the same).
func relayThrough(real, via int) string {
	return `{
	const RPC = window.RTCPeerConnection;
	const fix = (cfg) => {
		cfg = Object.assign({}, cfg || {}, { iceTransportPolicy: 'relay' });
		cfg.iceServers = (cfg.iceServers || []).map((s) => Object.assign({}, s, {
			urls: [].concat(s.urls).filter((u) => u.startsWith('turn:') && u.includes(':` + strconv.Itoa(real) + `') && !u.includes('transport=tcp'))
				.map((u) => u.replace(':` + strconv.Itoa(real) + `', ':` + strconv.Itoa(via) + `')),
		})).filter((s) => s.urls.length > 0);
		return cfg;
	};
	window.RTCPeerConnection = class extends RPC {
		constructor(cfg, ...rest) { super(fix(cfg), ...rest); }
		setConfiguration(cfg) { return super.setConfiguration(fix(cfg)); }
	};
}`
}

// qualityJS is the page's quality label of the tile of peer id (” before the first one).
func qualityJS(id string) string {
	return `((document.querySelector('.tile[data-kind="camera"][data-peer=` + js(id) + `]') || {dataset: {}}).dataset.quality || '')`
}

// TestCallQualityPoor: two pages in a call, one of them reaching the other only through the
// embedded TURN server, behind a UDP path that the test makes lossy. The label of the pair
// says "good" on both pages while nothing is lost, "poor" once 30 % of the datagrams are
// dropped each way, and leaves "poor" when the loss stops. The details a click away say the
// route is a relay and name the codecs, the resolution and the bitrates.
func TestCallQualityPoor(t *testing.T) {
	requireChromium(t)
	srv := testserver.Run(t, func(c *config.Config) {
		c.TURN = true
		c.TURNAllowPeers = []string{"127.0.0.0/8"}
	})
	base := "http://" + srv.Addr().String()
	path := newLossyUDP(t, srv.TURN().Addr())
	browser := startChromium(t, 120*time.Second)
	t0 := time.Now()
	room := "quality-test"
	far := openAppWith(t, browser, "Far", base+"/r/"+room+"?name=Far", 1024, 768, relayThrough(srv.TURN().Addr().Port, path.Port()))
	far.waitFor(`document.body.dataset.joined === 'true'`, "joined")
	near := joinCall(t, browser, base, room, "Near", 1, "")[0]
	tabs := []*appTab{far, near}
	for _, p := range tabs {
		p.waitVideos(1)
	}
	idFar := appEval[string](far, `window.switchboardApp.client.id`)
	idNear := appEval[string](near, `window.switchboardApp.client.id`)
	other := map[*appTab]string{far: idNear, near: idFar}
	t.Logf("connected through the lossy path after %v (%d datagrams so far)", time.Since(t0).Round(time.Millisecond), path.passed.Load())

	for _, p := range tabs {
		p.waitFor(qualityJS(other[p])+` === 'good'`, "good quality while nothing is lost")
	}
	path.SetLoss(0.3)
	tLoss := time.Now()
	for _, p := range tabs {
		p.waitFor(qualityJS(other[p])+` === 'poor'`, "poor quality with 30 % loss")
		t.Logf("%s: poor %v after the loss began: %v", p.name, time.Since(tLoss).Round(time.Millisecond),
			appEval[map[string]any](p, `window.switchboardApp.callMedia.quality.samples()[`+js(other[p])+`]`))
	}
	t.Logf("dropped %d of %d datagrams", path.dropped.Load(), path.dropped.Load()+path.passed.Load())

	// The details, a click away.
	details := appEval[map[string]string](near, `(async () => {
		const tile = document.querySelector('.tile[data-kind="camera"][data-peer=`+js(idFar)+`]');
		const b = tile.querySelector('button.quality');
		const dl = tile.querySelector('.quality-details');
		if (!dl.hidden) throw new Error('details shown before the click');
		b.click();
		if (dl.hidden || b.getAttribute('aria-expanded') !== 'true') throw new Error('the click did not open the details');
		const out = {label: b.textContent};
		for (const dd of dl.querySelectorAll('dd')) out[dd.dataset.key] = dd.textContent;
		return out;
	})()`)
	t.Logf("details on Near: %v", details)
	if !strings.HasPrefix(details["route"], "relay") {
		t.Errorf("route %q, want relay", details["route"])
	}
	if !strings.Contains(details["codecs"], "VP8") && !strings.Contains(details["codecs"], "VP9") && !strings.Contains(details["codecs"], "H264") && !strings.Contains(details["codecs"], "AV1") {
		t.Errorf("codecs %q name no video codec", details["codecs"])
	}
	if !strings.Contains(details["codecs"], "opus") {
		t.Errorf("codecs %q do not name opus", details["codecs"])
	}
	for _, k := range []string{"video", "bitrate", "round-trip", "packet-loss"} {
		if details[k] == "" || details[k] == "—" {
			t.Errorf("details: %s is %q", k, details[k])
		}
	}

	path.SetLoss(0)
	tBack := time.Now()
	for _, p := range tabs {
		p.waitFor(qualityJS(other[p])+` !== 'poor'`, "the label to recover when the loss stops")
	}
	t.Logf("recovered %v after the loss stopped", time.Since(tBack).Round(time.Millisecond))
	for _, p := range tabs {
		if errs := p.errors(); len(errs) > 0 {
			t.Errorf("%s console errors: %v", p.name, errs)
		}
	}
}

// TestCallBitrateCap: five pages in a call; each sends its camera to four peers, so each
// sender carries the cap for four (bitrate.js capFor: 625 kbit/s, the picture down to 360
// lines). On every page, what arrives from each other page (inbound-rtp bytes over 5 s, the
// frame size) stays within it.
func TestCallBitrateCap(t *testing.T) {
	base, browser := appBrowser(t, 150*time.Second)
	t0 := time.Now()
	tabs := joinCall(t, browser, base, "cap-test", "P", 5, "")
	for _, p := range tabs {
		p.waitVideos(4)
	}
	t.Logf("five pages decode each other after %v", time.Since(t0).Round(time.Millisecond))
	const maxKbps, maxLines = 625, 360
	for _, p := range tabs {
		params := appEval[[]map[string]float64](p, `Promise.all([...window.switchboardApp.client.peers.values()].flatMap((peer) =>
			peer.pc.getSenders().filter((s) => s.track && s.track.kind === 'video').map((s) => {
				const e = s.getParameters().encodings[0] || {};
				return {maxBitrate: e.maxBitrate || 0, scale: e.scaleResolutionDownBy || 1};
			})))`)
		for _, e := range params {
			if e["maxBitrate"] != maxKbps*1000 || math.Abs(e["scale"]-480.0/maxLines) > 0.01 {
				t.Errorf("%s: a sender carries %v, want maxBitrate %d and scale %.3f", p.name, e, maxKbps*1000, 480.0/maxLines)
			}
		}
	}
	// Let the encoders settle on the cap (they start at 300 kbit/s and ramp up), then measure.
	appEval[bool](tabs[0], `new Promise((r) => setTimeout(() => r(true), 4000))`)
	type rx struct {
		Name   string  `json:"name"`
		Kbps   float64 `json:"kbps"`
		Height float64 `json:"height"`
		Width  float64 `json:"width"`
		FPS    float64 `json:"fps"`
	}
	measure := `(async () => {
		const peers = [...window.switchboardApp.client.peers.values()];
		const read = async () => Promise.all(peers.map(async (peer) => {
			let bytes = 0, width = 0, height = 0, fps = 0;
			(await peer.pc.getStats()).forEach((s) => {
				if (s.type !== 'inbound-rtp' || s.kind !== 'video') return;
				bytes += s.bytesReceived || 0;
				width = Math.max(width, s.frameWidth || 0); height = Math.max(height, s.frameHeight || 0);
				fps = Math.max(fps, s.framesPerSecond || 0);
			});
			return {name: peer.name, bytes, width, height, fps, t: performance.now()};
		}));
		const a = await read();
		await new Promise((r) => setTimeout(r, 5000));
		const b = await read();
		return b.map((x, i) => ({name: x.name, kbps: (x.bytes - a[i].bytes) * 8 / (x.t - a[i].t), width: x.width, height: x.height, fps: x.fps}));
	})()`
	var total, count float64
	for _, p := range tabs {
		got := appEval[[]rx](p, measure)
		var line []string
		for _, r := range got {
			line = append(line, fmt.Sprintf("%s %.0f kbit/s %vx%v %.0f fps", r.Name, r.Kbps, r.Width, r.Height, r.FPS))
			total += r.Kbps
			count++
			// Payload bytes against the encoder's target: 10 % for rate control overshoot.
			if r.Kbps > maxKbps*1.1 {
				t.Errorf("%s receives %.0f kbit/s of video from %s, over the cap of %d", p.name, r.Kbps, r.Name, maxKbps)
			}
			if r.Height > maxLines || r.Height <= 0 {
				t.Errorf("%s receives %vx%v from %s, want at most %d lines", p.name, r.Width, r.Height, r.Name, maxLines)
			}
		}
		t.Logf("%s receives: %s", p.name, strings.Join(line, "; "))
	}
	t.Logf("mean %.0f kbit/s per stream (cap %d)", total/count, maxKbps)
	for _, p := range tabs {
		if errs := p.errors(); len(errs) > 0 {
			t.Errorf("%s console errors: %v", p.name, errs)
		}
	}
}
