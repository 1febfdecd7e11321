package bench

import (
	"encoding/json"
	"math/rand/v2"
	"strings"
	"testing"
)

func TestGenerateSDPSize(t *testing.T) {
	tests := []struct {
		target int
		answer bool
	}{
		{2900, false}, {3000, false}, {3000, true}, {4000, false}, {5300, true},
	}
	for _, tt := range tests {
		r := rand.New(rand.NewPCG(1, 2))
		sdp := generateSDP(r, tt.answer, tt.target)
		if len(sdp) > tt.target || len(sdp) < tt.target-450 {
			t.Errorf("target %d: got %d bytes, want within (target-450, target]", tt.target, len(sdp))
		}
		if !strings.HasPrefix(sdp, "v=0\r\n") || !strings.HasSuffix(sdp, "\r\n") {
			t.Errorf("target %d: not a CRLF SDP starting with v=0", tt.target)
		}
		for _, want := range []string{"m=audio ", "m=video ", "m=application ", "a=fingerprint:sha-256 ", "a=rtpmap:96 VP8/90000"} {
			if !strings.Contains(sdp, want) {
				t.Errorf("target %d: missing %q", tt.target, want)
			}
		}
		setup := "a=setup:actpass"
		if tt.answer {
			setup = "a=setup:active"
		}
		if !strings.Contains(sdp, setup) {
			t.Errorf("target %d answer=%v: missing %q", tt.target, tt.answer, setup)
		}
	}
}

func TestGenerateSDPHugeTarget(t *testing.T) {
	sdp := generateSDP(rand.New(rand.NewPCG(1, 2)), false, 60000)
	if len(sdp) > 6000 || !strings.Contains(sdp, "a=rtpmap:112 H264/90000") {
		t.Errorf("want every codec and no padding, got %d bytes", len(sdp))
	}
}

func TestGenerateSDPTinyTarget(t *testing.T) {
	// Below the fixed part the generator still returns a valid SDP with one video codec.
	sdp := generateSDP(rand.New(rand.NewPCG(1, 2)), false, 100)
	if !strings.Contains(sdp, "m=video 9 UDP/TLS/RTP/SAVPF 96 97\r\n") {
		t.Errorf("want exactly VP8 and its rtx, got m-line in %q", sdp[:200])
	}
}

func TestFrameSizes(t *testing.T) {
	for _, p := range []protoKind{protoNative, protoSocketIO} {
		r := rand.New(rand.NewPCG(3, 4))
		m, err := buildRoundMessages(p, r, "offer", "Vb4k7hVd0S2v0w9Jv1qgXA", "q3m8sXoLqv1yCpTtNd3h1w", defaultSDPBytes)
		if err != nil {
			t.Fatal(err)
		}
		if n := len(m.desc); n < 3000 || n > 3600 {
			t.Errorf("%s: offer frame %d bytes, want ~3 KB", p, n)
		}
		for i, c := range m.cands {
			if n := len(c); n < 200 || n > 320 {
				t.Errorf("%s: candidate %d frame %d bytes, want ~250", p, i, n)
			}
		}
	}
}

func TestBuildRoundMessagesNative(t *testing.T) {
	m, err := buildRoundMessages(protoNative, rand.New(rand.NewPCG(5, 6)), "answer", "me", "you", 2500)
	if err != nil {
		t.Fatal(err)
	}
	var desc struct {
		Type, Target string
		Data         sessionDescription
	}
	if err := json.Unmarshal(m.desc, &desc); err != nil {
		t.Fatal(err)
	}
	if desc.Type != "answer" || desc.Target != "you" || desc.Data.Type != "answer" || !strings.HasPrefix(desc.Data.SDP, "v=0\r\n") {
		t.Errorf("answer frame decodes to %+v", desc)
	}
	var cand struct {
		Type, Target string
		Data         iceCandidate
	}
	if err := json.Unmarshal(m.cands[1], &cand); err != nil {
		t.Fatal(err)
	}
	if cand.Type != "ice-candidate" || cand.Target != "you" || !strings.HasPrefix(cand.Data.Candidate, "candidate:") || cand.Data.SDPMid != "0" {
		t.Errorf("candidate frame decodes to %+v", cand)
	}
	if got := classify(protoNative, m.desc); got != kindAnswer {
		t.Errorf("classify(answer frame) = %v", got)
	}
}

func TestBuildRoundMessagesSocketIO(t *testing.T) {
	m, err := buildRoundMessages(protoSocketIO, rand.New(rand.NewPCG(5, 6)), "offer", "me", "you", 2500)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(string(m.desc), `42["offer",{"target":"you","from":"me","type":"offer","sdp":"v=0\r\n`) {
		t.Errorf("offer frame starts %q", m.desc[:80])
	}
	var ev []json.RawMessage
	if err := json.Unmarshal(m.cands[0][2:], &ev); err != nil || len(ev) != 2 {
		t.Fatalf("candidate event %q: %v", m.cands[0], err)
	}
	var c sioCandidate
	if err := json.Unmarshal(ev[1], &c); err != nil {
		t.Fatal(err)
	}
	if c.Target != "you" || c.From != "me" || !strings.HasPrefix(c.Candidate, "candidate:") {
		t.Errorf("candidate data %+v", c)
	}
	if got := classify(protoSocketIO, m.cands[0]); got != kindCandidate {
		t.Errorf("classify(candidate event) = %v", got)
	}
}
