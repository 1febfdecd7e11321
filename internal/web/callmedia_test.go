package web

import (
	"context"
	"encoding/json"
	"errors"
	"io/fs"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/switchboard-rtc/switchboard/internal/testenv"
)

// callMediaNode is run by Node against the app's pure functions (bitrate.js, quality.js,
// speaker.js import nothing, so Node loads them as they are served) and prints their results
// as JSON.
const callMediaNode = `
const dir = process.argv[1];
const b = await import(dir + '/bitrate.js');
const q = await import(dir + '/quality.js');
const s = await import(dir + '/speaker.js');
const good = {loss: 0, lossIn: 0, lossOut: 0, rtt: 0.02, frozen: 0, fps: 20, resolution: '640×480', route: 'direct', codecs: 'VP8, opus', kbpsIn: 500, kbpsOut: 500, packets: 100};
const stats = (recv, lost, relay) => new Map([
	['T', {type: 'transport', selectedCandidatePairId: 'P'}],
	['P', {type: 'candidate-pair', localCandidateId: 'L', remoteCandidateId: 'R', currentRoundTripTime: 0.05}],
	['L', {type: 'local-candidate', candidateType: relay ? 'relay' : 'host'}],
	['R', {type: 'remote-candidate', candidateType: 'host'}],
	['C', {type: 'codec', mimeType: 'video/VP8'}],
	['I', {type: 'inbound-rtp', kind: 'video', codecId: 'C', packetsReceived: recv, packetsLost: lost, bytesReceived: recv * 1000,
		totalFreezesDuration: 0, frameWidth: 640, frameHeight: 480, framesPerSecond: 20}],
]);
const first = q.sampleOf(stats(100, 0, true), undefined, 1000);
const second = q.sampleOf(stats(190, 10, true), first.totals, 2000);
console.log(JSON.stringify({
	cap: [1, 2, 3, 4, 5, 10, 20].map((n) => b.capFor(n, 480)),
	cap720: b.capFor(4, 720),
	capPortrait: b.capFor(4, 0),
	screen: [1, 4, 20].map((n) => b.screenCapFor(n)),
	classify: {
		good: q.classify(good),
		lossUnstable: q.classify({...good, loss: 0.05}),
		lossPoor: q.classify({...good, loss: 0.1}),
		rttUnstable: q.classify({...good, rtt: 0.3}),
		rttPoor: q.classify({...good, rtt: 0.7}),
		rttUnknown: q.classify({...good, rtt: null}),
		frozenUnstable: q.classify({...good, frozen: 0.15}),
		frozenPoor: q.classify({...good, frozen: 0.35}),
		nothingToJudge: q.classify({...good, loss: 1, packets: 0}),
	},
	first: first.sample,
	second: second.sample,
	level: [s.levelBetween(undefined, {energy: 1, duration: 1}), s.levelBetween({energy: 0, duration: 0}, {energy: 0.09, duration: 1}),
		s.levelBetween({energy: 1, duration: 1}, {energy: 1, duration: 1})],
}));
`

// TestCallMediaPure checks the numbers of the call's media modules under Node: the bitrate caps
// by the number of peers, the quality thresholds, a stats sample's loss, bitrate and route,
// and the speaker's RMS level.
func TestCallMediaPure(t *testing.T) {
	node, err := exec.LookPath("node")
	if err != nil {
		testenv.Missing(t, "node is missing", "install Node.js 20 or later (scripts/install-test-deps.sh needs it too)")
	}
	dir := t.TempDir()
	for _, name := range []string{"bitrate.js", "quality.js", "speaker.js"} {
		b, err := fs.ReadFile(static, "static/app/"+name)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, node, "--input-type=module", "-e", callMediaNode, "file://"+dir).Output()
	if err != nil {
		var stderr string
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			stderr = string(ee.Stderr)
		}
		t.Fatalf("node: %v\n%s", err, stderr)
	}
	type capT struct {
		MaxBitrate            float64 `json:"maxBitrate"`
		ScaleResolutionDownBy float64 `json:"scaleResolutionDownBy"`
		MaxHeight             float64 `json:"maxHeight"`
	}
	var got struct {
		Cap         []capT            `json:"cap"`
		Cap720      capT              `json:"cap720"`
		CapPortrait capT              `json:"capPortrait"`
		Screen      []capT            `json:"screen"`
		Classify    map[string]string `json:"classify"`
		First       map[string]any    `json:"first"`
		Second      map[string]any    `json:"second"`
		Level       []float64         `json:"level"`
	}
	if err := json.Unmarshal(out, &got); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	want := []capT{
		{1_500_000, 1, 720}, {1_250_000, 1, 720}, {833_333, 1.333, 360}, {625_000, 1.333, 360},
		{500_000, 2, 240}, {250_000, 2, 240}, {150_000, 2, 240},
	}
	for i, w := range want {
		if got.Cap[i] != w {
			t.Errorf("capFor(%d, 480) = %+v, want %+v", []int{1, 2, 3, 4, 5, 10, 20}[i], got.Cap[i], w)
		}
	}
	if w := (capT{625_000, 2, 360}); got.Cap720 != w {
		t.Errorf("capFor(4, 720) = %+v, want %+v", got.Cap720, w)
	}
	if w := (capT{625_000, 1, 360}); got.CapPortrait != w {
		t.Errorf("capFor(4, unknown size) = %+v, want %+v", got.CapPortrait, w)
	}
	for i, w := range []float64{2_500_000, 750_000, 300_000} {
		if got.Screen[i].MaxBitrate != w || got.Screen[i].ScaleResolutionDownBy != 1 {
			t.Errorf("screenCapFor(%d) = %+v, want %v at scale 1", []int{1, 4, 20}[i], got.Screen[i], w)
		}
	}
	for k, w := range map[string]string{
		"good": "good", "lossUnstable": "unstable", "lossPoor": "poor", "rttUnstable": "unstable", "rttPoor": "poor",
		"rttUnknown": "good", "frozenUnstable": "unstable", "frozenPoor": "poor", "nothingToJudge": "good",
	} {
		if got.Classify[k] != w {
			t.Errorf("classify %s = %q, want %q", k, got.Classify[k], w)
		}
	}
	if got.First["packets"] != 0.0 || got.First["route"] != "relay" {
		t.Errorf("first sample (no previous reading) %v: want nothing to judge, route relay", got.First)
	}
	// 90 received and 10 lost in the second: 10 % in, 720 kbit/s over one second.
	if got.Second["lossIn"] != 0.1 || got.Second["kbpsIn"] != 720.0 || got.Second["codecs"] != "VP8" || got.Second["resolution"] != "640×480" || got.Second["rtt"] != 0.05 {
		t.Errorf("second sample %v", got.Second)
	}
	if got.Level[0] != 0 || math.Abs(got.Level[1]-0.3) > 1e-9 || got.Level[2] != 0 {
		t.Errorf("levels %v, want [0 0.3 0]", got.Level)
	}
}
