package browsertest

import (
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/switchboard-rtc/switchboard/internal/config"
	"github.com/switchboard-rtc/switchboard/internal/testenv"
	"github.com/switchboard-rtc/switchboard/internal/testserver"
)

// sioBundle is the official socket.io-client browser bundle, from the npm install that
// scripts/install-test-deps.sh makes for internal/sioserver's tests.
var sioBundle = filepath.Join("..", "sioserver", "nodetest", "node_modules", "socket.io-client", "dist", "socket.io.min.js")

// seedPage is the seed guide's browser code, unchanged in its WebRTC steps (RTCPeerConnection,
// createOffer/setLocalDescription, getUserMedia, addTrack, ontrack into a MediaStream shown in
// a video element), with the signaling the seed's server relays: "offer", "answer" and
// "ice-candidate" emitted with data.target = the other socket's id. The seed's guide shows no
// client signaling code, so the payload shape ({target, from, offer|answer|candidate}) is the
// obvious one for its server, which passes data through; "from" is the sender's own socket.id,
// which Switchboard also stamps (the same value).
const seedPage = `<!doctype html>
<html><body>
<video id="remote" autoplay playsinline muted></video>
<script src="/socket.io.min.js"></script>
<script>
const log = [];
const errors = [];
window.onerror = (m) => errors.push(String(m));
const socket = io(new URL(location.href).searchParams.get("server"));
const configuration = {};
const remoteVideoElement = document.getElementById("remote");
let pc;
let target;

async function setup() {
  pc = new RTCPeerConnection(configuration);
  pc.onicecandidate = (e) => {
    if (e.candidate) socket.emit("ice-candidate", { target, from: socket.id, candidate: e.candidate });
  };
  const stream = await navigator.mediaDevices.getUserMedia({ video: true, audio: true });
  stream.getTracks().forEach((track) => { pc.addTrack(track, stream); });
  pc.ontrack = (event) => {
    const remoteStream = new MediaStream();
    event.streams[0].getTracks().forEach((track) => { remoteStream.addTrack(track); });
    // Assign the remote stream to a video element
    remoteVideoElement.srcObject = remoteStream;
  };
}

// Browser 1: create the offer, set it locally, send it.
async function call(peer) {
  target = peer;
  await setup();
  const offer = await pc.createOffer();
  await pc.setLocalDescription(offer);
  socket.emit("offer", { target, from: socket.id, offer });
}

// Browser 2: receive the offer, set it remotely, answer.
socket.on("offer", async (data) => {
  log.push("offer from " + data.from);
  target = data.from;
  await setup();
  await pc.setRemoteDescription(data.offer);
  drain();
  const answer = await pc.createAnswer();
  await pc.setLocalDescription(answer);
  socket.emit("answer", { target, from: socket.id, answer });
});

// Browser 1: receive the answer.
socket.on("answer", async (data) => {
  log.push("answer from " + data.from);
  await pc.setRemoteDescription(data.answer);
  drain();
});

// Candidates can arrive while this side is still in getUserMedia: keep them until the remote
// description is set.
let pending = [];
const addCandidate = async (c) => {
  try { await pc.addIceCandidate(c); } catch (e) { errors.push(String(e)); }
};
const drain = () => { pending.forEach(addCandidate); pending = []; };
socket.on("ice-candidate", (data) => {
  if (pc && pc.remoteDescription) addCandidate(data.candidate); else pending.push(data.candidate);
});

// Test hooks.
let firstTransport = "";
socket.io.once("open", () => { firstTransport = socket.io.engine.transport.name; });
window.transports = () => new Promise((resolve) => {
  const done = () => resolve(firstTransport + ">" + socket.io.engine.transport.name);
  if (socket.io.engine.transport.name === "websocket") return done();
  socket.io.engine.once("upgrade", done);
  setTimeout(done, 10000);
});
window.socketId = () => new Promise((resolve) => socket.connected ? resolve(socket.id) : socket.once("connect", () => resolve(socket.id)));
window.framesDecoded = async () => {
  const end = Date.now() + 20000;
  for (;;) {
    let frames = 0;
    if (pc) (await pc.getStats()).forEach((s) => {
      if (s.type === "inbound-rtp" && s.kind === "video") frames += s.framesDecoded || 0;
    });
    if (frames > 0 && remoteVideoElement.videoWidth > 0) return frames;
    if (Date.now() > end) throw new Error("no video decoded; log: " + log.join("; ") + "; errors: " + errors.join("; "));
    await new Promise((r) => setTimeout(r, 50));
  }
};
</script>
</body></html>`

// seedRoutes adds to mux the seed page at /seed.html and the socket.io-client bundle it loads
// (and an empty favicon, so that the browser logs no 404); a missing bundle ends the test
// through testenv.Missing.
func seedRoutes(t *testing.T, mux *http.ServeMux) {
	t.Helper()
	bundle, err := os.ReadFile(sioBundle)
	if err != nil {
		testenv.Missing(t, "the socket.io-client bundle is missing ("+err.Error()+")", "run scripts/install-test-deps.sh")
	}
	mux.HandleFunc("GET /favicon.ico", func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusNoContent) })
	mux.HandleFunc("GET /socket.io.min.js", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/javascript")
		_, _ = w.Write(bundle)
	})
	mux.HandleFunc("GET /seed.html", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		_, _ = w.Write([]byte(seedPage))
	})
}

// TestSeedClientThroughSocketIO: two pages running the seed's code on the official
// socket.io-client bundle make a call through switchboard serve's /socket.io/; each page
// decodes the other's video.
func TestSeedClientThroughSocketIO(t *testing.T) {
	requireChromium(t)
	mux := http.NewServeMux()
	seedRoutes(t, mux)
	pages := httptest.NewServer(mux)
	t.Cleanup(pages.Close)
	base := testserver.Start(t, func(c *config.Config) {
		c.AllowedOrigins = append(c.AllowedOrigins, pages.URL) // the pages are on another port
	})
	browser := startChromium(t, 60*time.Second)
	open := func(name string) *page {
		ctx, cancel := chromedp.NewContext(browser)
		t.Cleanup(cancel)
		p := &page{t: t, ctx: ctx, name: name}
		if err := chromedp.Do(ctx, chromedp.Navigate(pages.URL+"/seed.html?server="+base)); err != nil {
			t.Fatalf("%s: navigate: %v", name, err)
		}
		return p
	}
	a, b := open("A"), open("B")
	idA, idB := eval[string](a, `socketId()`), eval[string](b, `socketId()`)
	if idA == "" || idB == "" || idA == idB {
		t.Fatalf("socket ids %q and %q", idA, idB)
	}
	t0 := time.Now()
	eval[bool](a, `call(`+js(idB)+`).then(() => true)`)
	fa, fb := eval[float64](a, `framesDecoded()`), eval[float64](b, `framesDecoded()`)
	t.Logf("call through /socket.io/ in %v: A decoded %v frames of B's video, B %v of A's",
		time.Since(t0).Round(time.Millisecond), fa, fb)
	for _, p := range []*page{a, b} {
		// The client's default: long-polling first (cross-origin here, so through CORS), then
		// the upgrade to WebSocket.
		if got := eval[string](p, `transports()`); got != "polling>websocket" {
			t.Errorf("%s: transports %s, want polling>websocket", p.name, got)
		}
	}
	for _, p := range []*page{a, b} {
		if errs := eval[[]string](p, `errors`); len(errs) > 0 {
			t.Errorf("%s: page errors: %s", p.name, strings.Join(errs, "; "))
		}
	}
}
