package browsertest

import (
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/switchboard-rtc/switchboard/internal/config"
	"github.com/switchboard-rtc/switchboard/internal/testserver"
)

// waitMetric polls base's /metrics until the unlabelled metric name has value want.
func waitMetric(t *testing.T, base, name, want string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		resp, err := http.Get(base + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(resp.Body)
		_ = resp.Body.Close()
		if err != nil {
			t.Fatal(err)
		}
		for _, line := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(line, name+" "); ok && v == want {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s never became %s", name, want)
		}
		time.Sleep(5 * time.Millisecond) // polling a gauge with a deadline, not waiting for an event
	}
}

// The signaling socket of a page in a call is cut. The SDK reconnects and resumes: same peer
// id, the peer connection and its data channel never close, a message relayed while away
// arrives, and the other page never sees it leave.
func TestBrowserSignalingResume(t *testing.T) {
	e := setup(t, 60*time.Second)
	proxy := testserver.NewCutter(t, strings.TrimSuffix(strings.TrimPrefix(e.wsURL, "ws://"), "/ws"))
	viaProxy := "ws://" + proxy.Addr() + "/ws"
	room := "resume"
	a, b := e.page("A"), e.page("B")
	idA := eval[string](a, `T.join(`+js(viaProxy)+`, `+js(room)+`, "A")`)
	idB := eval[string](b, `T.join(null, `+js(room)+`, "B")`)
	eval[bool](a, `T.waitConnected(`+js(idB)+`)`)
	if got := eval[string](a, `T.chat(`+js(idB)+`, "a2b", "before")`); got != "echo:before" {
		t.Fatalf("A got %q before the cut", got)
	}

	start := time.Now()
	if n := proxy.Cut(); n != 1 {
		t.Fatalf("cut %d connections, want A's one", n)
	}
	// Once the server has seen A's connection go, B's relay to A is accepted and held.
	waitMetric(t, "http"+strings.TrimSuffix(strings.TrimPrefix(e.wsURL, "ws"), "/ws"), "switchboard_resumable_peers", "1")
	eval[bool](b, `T.send(`+js(idA)+`, {text: "while away"})`)
	got := eval[map[string]any](a, `T.waitReconnect("reconnected")`)
	t.Logf("resumed %v after the cut: %v", time.Since(start).Round(time.Millisecond), got)
	if got["resumed"] != true || got["id"] != idA {
		t.Fatalf("reconnected %v, want resumed as %s", got, idA)
	}
	if id := eval[string](a, `T.client.id`); id != idA {
		t.Fatalf("A's id is %s after resuming, want %s", id, idA)
	}
	if m := eval[map[string]any](a, `T.waitMessage()`); m["text"] != "while away" {
		t.Fatalf("A got %v, want the message held while away", m)
	}
	// The peer connection was never touched: the same data channel still works.
	if got := eval[string](a, `T.chatAgain("a2b", "after")`); got != "echo:after" {
		t.Fatalf("A got %q on the old channel after resuming", got)
	}
	eval[bool](a, `T.send(`+js(idB)+`, {text: "back"})`)
	if m := eval[map[string]any](b, `T.waitMessage()`); m["text"] != "back" {
		t.Fatalf("B got %v", m)
	}
	if log := b.log(); strings.Contains(log, "left ") {
		t.Fatalf("B saw A leave:\n%s", log)
	}
	for _, p := range []*page{a, b} {
		if errs := p.errors(); len(errs) > 0 {
			t.Fatalf("%s errors: %v", p.name, errs)
		}
	}
}

// Without resumption (off on the server, as after a restart or on another node) the SDK
// joins anew: its old pairs are reported left with reason "reconnect" and it connects to the
// room again under its new id, with working data channels.
func TestBrowserSignalingRejoin(t *testing.T) {
	e := setupWith(t, 60*time.Second, func(c *config.Config) { c.ResumeGrace = 0 })
	proxy := testserver.NewCutter(t, strings.TrimSuffix(strings.TrimPrefix(e.wsURL, "ws://"), "/ws"))
	viaProxy := "ws://" + proxy.Addr() + "/ws"
	room := "rejoin"
	a, b := e.page("A"), e.page("B")
	idA := eval[string](a, `T.join(`+js(viaProxy)+`, `+js(room)+`, "A")`)
	idB := eval[string](b, `T.join(null, `+js(room)+`, "B")`)
	eval[bool](a, `T.waitConnected(`+js(idB)+`)`)

	proxy.Cut()
	got := eval[map[string]any](a, `T.waitReconnect("reconnected")`)
	newA, _ := got["id"].(string)
	if got["resumed"] != false || newA == "" || newA == idA {
		t.Fatalf("reconnected %v, want a new presence", got)
	}
	if log := a.log(); !strings.Contains(log, "left "+idB+" reconnect") {
		t.Fatalf("A did not report its old pair gone:\n%s", log)
	}
	eval[bool](a, `T.waitConnected(`+js(idB)+`)`)
	eval[bool](b, `T.waitConnected(`+js(newA)+`)`)
	if got := eval[string](a, `T.chat(`+js(idB)+`, "again", "hello")`); got != "echo:hello" {
		t.Fatalf("A got %q after rejoining", got)
	}
	if log := b.log(); !strings.Contains(log, "left "+idA+" closed") {
		t.Fatalf("B did not see A's old id leave:\n%s", log)
	}
}
