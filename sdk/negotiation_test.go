package sdk_test

import (
	"encoding/json"
	"strings"
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

// TestPoliteRemovesTrack: the polite side that stops sending (RemoveTrack on its
// PeerConnection) has no track without an m-line, but sends where its last answer said it
// would: it asks, the impolite side offers once more, the answer says it no longer sends, and
// nothing follows (a message relayed after that is the barrier: the server relays a peer's
// frames in order).
func TestPoliteRemovesTrack(t *testing.T) {
	url := testserver.Start(t, nil)
	var offers atomic.Int32
	answered := make(chan struct{}, 1) // the polite side answered the third offer
	arrived := make(chan struct{}, 1)
	heard := make(chan struct{}, 1)
	peers := make(chan *sdk.Peer, 2)
	onPeer := func(p *sdk.Peer) {
		p.PeerConnection().OnSignalingStateChange(func(s webrtc.SignalingState) {
			switch {
			case s == webrtc.SignalingStateHaveLocalOffer:
				offers.Add(1)
			case s == webrtc.SignalingStateStable && p.Polite() && offers.Load() == 3:
				select {
				case answered <- struct{}{}:
				default:
				}
			}
		})
		p.OnTrack(func(tr *webrtc.TrackRemote, _ *webrtc.RTPReceiver) {
			if _, _, err := tr.ReadRTP(); err == nil {
				arrived <- struct{}{}
			}
		})
		p.OnMessage(func(json.RawMessage) { heard <- struct{}{} })
		if p.Polite() {
			sendOpus(t, p)
		}
		peers <- p
	}
	dial(t, url, "remove", sdk.Options{Name: "a", OnPeer: onPeer})
	dial(t, url, "remove", sdk.Options{Name: "b", OnPeer: onPeer})
	polite := waitChan(t, peers, "a peer")
	if other := waitChan(t, peers, "the other peer"); other.Polite() {
		polite = other
	}
	waitChan(t, arrived, "packets from the polite side")
	pc := polite.PeerConnection()
	if err := pc.RemoveTrack(pc.GetSenders()[0]); err != nil {
		t.Fatal(err)
	}
	waitChan(t, answered, "the polite side's answer to the offer after it stopped sending")
	if _, audio, _ := strings.Cut(pc.CurrentLocalDescription().SDP, "m=audio"); strings.Contains(audio, "a=sendrecv") || strings.Contains(audio, "a=sendonly") {
		t.Fatalf("the polite side's answer still sends: %q", audio)
	}
	if err := polite.SendMessage("barrier"); err != nil {
		t.Fatal(err)
	}
	waitChan(t, heard, "the barrier")
	if n := offers.Load(); n != 3 {
		t.Fatalf("%d offers, want 3 (the first, the polite side's track, its removal)", n)
	}
}
