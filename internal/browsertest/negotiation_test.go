package browsertest

import (
	"testing"
	"time"
)

// TestFirstNegotiation: a pair whose pages add their camera in onPeer, as the web app does,
// negotiates no more than it must. With a camera on both sides the impolite side's first
// offer (sent from _start, without waiting for negotiationneeded) carries both and is the
// only one; with a camera on the polite side only, that offer has no m-line for it, and the
// polite side asks for one once it has answered: two offers, and the video arrives. Either
// way each page ends with one transceiver (no m-line asked for that the first offer already
// gave). Before the SDK waited for negotiationneeded, ignored it mid-exchange and held the
// polite side's request until the answer, a pair made two exchanges and four m-lines.
func TestFirstNegotiation(t *testing.T) {
	e := setup(t, 60*time.Second)
	for _, tc := range []struct {
		name   string
		camera string // JavaScript: whether a page sends its camera to peer
		offers int
	}{
		{"both", "true", 1},
		{"polite-only", "peer.polite", 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			room := "first-negotiation-" + tc.name
			a, b := e.page(tc.name+"-A"), e.page(tc.name+"-B")
			for _, p := range []*page{a, b} {
				eval[bool](p, `(async () => {
					window.offers = 0;
					const sld = RTCPeerConnection.prototype.setLocalDescription;
					RTCPeerConnection.prototype.setLocalDescription = function (d) {
						if (d && d.type === 'offer') window.offers++;
						return sld.apply(this, arguments);
					};
					const cam = await navigator.mediaDevices.getUserMedia({ video: true });
					T.onPeer = (peer) => { if (`+tc.camera+`) peer.addTrack(cam.getVideoTracks()[0], cam); };
					return true;
				})()`)
			}
			idA := eval[string](a, `T.join(null, `+js(room)+`, "A")`)
			idB := eval[string](b, `T.join(null, `+js(room)+`, "B")`)
			politeA := eval[bool](a, `T.waitConnected(`+js(idB)+`)`)
			eval[bool](b, `T.waitConnected(`+js(idA)+`)`)
			polite, impolite, politeID, impoliteID := a, b, idA, idB
			if !politeA {
				polite, impolite, politeID, impoliteID = b, a, idB, idA
			}
			if v := eval[map[string]float64](impolite, `T.waitVideo(`+js(politeID)+`)`); v["framesDecoded"] <= 0 {
				t.Fatalf("the impolite side decoded no video from the polite side: %v", v)
			}
			if tc.name == "both" {
				if v := eval[map[string]float64](polite, `T.waitVideo(`+js(impoliteID)+`)`); v["framesDecoded"] <= 0 {
					t.Fatalf("the polite side decoded no video from the impolite side: %v", v)
				}
			}
			for _, p := range []*page{a, b} {
				other := idB
				if p == b {
					other = idA
				}
				eval[bool](p, `T.until(() => T.peer(`+js(other)+`).pc.signalingState === 'stable', 5000, 'a stable pair')`)
			}
			offers := eval[int](polite, `window.offers`) + eval[int](impolite, `window.offers`)
			if eval[int](polite, `window.offers`) != 0 {
				t.Errorf("the polite side made %d offers", eval[int](polite, `window.offers`))
			}
			if offers != tc.offers {
				t.Errorf("%d offers for the first negotiation, want %d", offers, tc.offers)
			}
			for _, p := range []*page{polite, impolite} {
				other := politeID
				if p == polite {
					other = impoliteID
				}
				if n := eval[int](p, `T.peer(`+js(other)+`).pc.getTransceivers().length`); n != 1 {
					t.Errorf("%s has %d transceivers, want 1", p.name, n)
				}
				if errs := p.errors(); len(errs) > 0 {
					t.Errorf("%s reported errors: %v", p.name, errs)
				}
			}
		})
	}
}
