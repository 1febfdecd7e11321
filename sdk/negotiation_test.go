package sdk_test

import (
	"sync/atomic"
	"testing"
	"time"

	"github.com/pion/webrtc/v4"
	"github.com/pion/webrtc/v4/pkg/media"

	"github.com/switchboard-rtc/switchboard/internal/testserver"
	"github.com/switchboard-rtc/switchboard/sdk"
)

// TestFirstNegotiation: peers that add their media in OnPeer negotiate no more than they
// must (internal/browsertest's TestFirstNegotiation is the same for the browser SDK). With a
// track on both sides the impolite side's first offer, sent from start, carries both and is
// the only one; with a track on the polite side only, that offer has no m-line for it and the
// polite side asks once it has answered: two offers, and the packets arrive; the same when the
// polite side adds its track once connected. Each side ends with one transceiver (no m-line
// asked for that the first offer already gave), and no exchange follows that changes nothing
// (Pion's negotiation-needed check, on the polite side, reported a need after every answer
// that narrowed a transceiver's direction: a request, an offer, an answer, again, endlessly).
func TestFirstNegotiation(t *testing.T) {
	for _, tc := range []struct {
		name   string
		sends  func(*sdk.Peer) bool
		later  bool // the track is added once the pair is connected
		offers int32
	}{
		{"both", func(*sdk.Peer) bool { return true }, false, 1},
		{"polite-only", (*sdk.Peer).Polite, false, 2},
		{"polite-later", (*sdk.Peer).Polite, true, 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			url := testserver.Start(t, nil)
			var offers atomic.Int32
			arrived := make(chan bool, 2) // the receiving side's Polite()
			peers := make(chan *sdk.Peer, 2)
			onPeer := func(p *sdk.Peer) {
				p.PeerConnection().OnSignalingStateChange(func(s webrtc.SignalingState) {
					if s == webrtc.SignalingStateHaveLocalOffer {
						offers.Add(1)
					}
				})
				p.OnTrack(func(tr *webrtc.TrackRemote, _ *webrtc.RTPReceiver) {
					if _, _, err := tr.ReadRTP(); err == nil {
						arrived <- p.Polite()
					}
				})
				switch {
				case tc.sends(p) && tc.later:
					go func() {
						select {
						case <-p.Connected():
							sendOpus(t, p)
						case <-p.Closed():
						}
					}()
				case tc.sends(p):
					sendOpus(t, p)
				}
				peers <- p
			}
			dial(t, url, "first", sdk.Options{Name: "a", OnPeer: onPeer})
			dial(t, url, "first", sdk.Options{Name: "b", OnPeer: onPeer})
			a, b := waitChan(t, peers, "a's peer"), waitChan(t, peers, "b's peer")
			if a.Polite() == b.Polite() {
				t.Fatalf("both sides polite=%v", a.Polite())
			}
			if polite := waitChan(t, arrived, "packets"); polite {
				if tc.name != "both" {
					t.Fatal("the polite side received a track, but only it sends one")
				}
			}
			if tc.name == "both" {
				waitChan(t, arrived, "packets both ways")
			}
			if n := offers.Load(); n != tc.offers {
				t.Errorf("%d offers for the first negotiation, want %d", n, tc.offers)
			}
			for _, p := range []*sdk.Peer{a, b} {
				if n := len(p.PeerConnection().GetTransceivers()); n != 1 {
					t.Errorf("polite=%v: %d transceivers, want 1", p.Polite(), n)
				}
			}
		})
	}
}

// sendOpus adds an Opus track to p and sends a short silent frame on it every 20 ms (at most
// 500) from the moment p connects until it closes. Called from OnPeer: errors are t.Error.
func sendOpus(t *testing.T, p *sdk.Peer) {
	track, err := webrtc.NewTrackLocalStaticSample(webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeOpus, ClockRate: 48000, Channels: 2}, "audio", "sb")
	if err != nil {
		t.Error(err)
		return
	}
	if _, err := p.AddTrack(track); err != nil {
		t.Error(err)
		return
	}
	go func() {
		select {
		case <-p.Connected():
		case <-p.Closed():
			return
		}
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		for range 500 {
			select {
			case <-tick.C:
			case <-p.Closed():
				return
			}
			if err := track.WriteSample(media.Sample{Data: []byte{0xfc, 0xff, 0xfe}, Duration: 20 * time.Millisecond}); err != nil {
				return
			}
		}
	}()
}
