package sdk_test

import (
	"encoding/json"
	"strings"
	"sync"
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
			arrived := make(chan bool, 2) // the receiving side's Polite()
			pr := dialPair(t, "first-"+tc.name, func(p *sdk.Peer) {
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
			})
			if polite := waitChan(t, arrived, "packets"); polite {
				if tc.name != "both" {
					t.Fatal("the polite side received a track, but only it sends one")
				}
			}
			if tc.name == "both" {
				waitChan(t, arrived, "packets both ways")
			}
			if n := pr.offers.Load(); n != tc.offers {
				t.Errorf("%d offers for the first negotiation, want %d", n, tc.offers)
			}
			for _, p := range []*sdk.Peer{pr.polite, pr.impolite} {
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

// TestPoliteRemovesTrack: the polite side that stops sending (Peer.RemoveTrack) has no track
// without an m-line, but its transceiver no longer sends where its last answer said it would:
// it asks, the impolite side offers once more, the answer says it no longer sends, and
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
	if err := polite.RemoveTrack(pc.GetSenders()[0]); err != nil {
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

// pair is two connected Go peers of one pair, seen from each side, with what each heard.
type pair struct {
	polite, impolite *sdk.Peer
	offers           *atomic.Int32 // offers made (have-local-offer on the impolite side)
	heard            map[*sdk.Peer]chan json.RawMessage
}

// dialPair connects two Go clients in a room; onPeer (may be nil) runs in each OnPeer after
// the pair's own hooks. It returns once each side has its Peer.
func dialPair(t *testing.T, room string, onPeer func(*sdk.Peer)) *pair {
	t.Helper()
	url := testserver.Start(t, nil)
	pr := &pair{offers: new(atomic.Int32), heard: map[*sdk.Peer]chan json.RawMessage{}}
	peers := make(chan *sdk.Peer, 2)
	var mu sync.Mutex
	hook := func(p *sdk.Peer) {
		p.PeerConnection().OnSignalingStateChange(func(s webrtc.SignalingState) {
			if s == webrtc.SignalingStateHaveLocalOffer {
				pr.offers.Add(1)
			}
		})
		heard := make(chan json.RawMessage, 16)
		mu.Lock()
		pr.heard[p] = heard
		mu.Unlock()
		p.OnMessage(func(m json.RawMessage) { heard <- m })
		if onPeer != nil {
			onPeer(p)
		}
		peers <- p
	}
	dial(t, url, room, sdk.Options{Name: "a", OnPeer: hook})
	dial(t, url, room, sdk.Options{Name: "b", OnPeer: hook})
	a, b := waitChan(t, peers, "a peer"), waitChan(t, peers, "the other peer")
	if a.Polite() == b.Polite() {
		t.Fatalf("both sides polite=%v", a.Polite())
	}
	pr.polite, pr.impolite = a, b
	if b.Polite() {
		pr.polite, pr.impolite = b, a
	}
	waitChan(t, a.Connected(), "connected")
	waitChan(t, b.Connected(), "connected")
	return pr
}

// roundTrip relays a message from the polite side to the impolite side and one back, each
// waited for: what either side sent before arrived before it (the server relays a peer's
// frames in order).
func (pr *pair) roundTrip(t *testing.T) {
	t.Helper()
	heard := func(p *sdk.Peer) chan json.RawMessage { return pr.heard[p] }
	if err := pr.polite.SendMessage("ping"); err != nil {
		t.Fatal(err)
	}
	waitChan(t, heard(pr.impolite), "ping")
	if err := pr.impolite.SendMessage("pong"); err != nil {
		t.Fatal(err)
	}
	waitChan(t, heard(pr.polite), "pong")
}

// settled waits until two round trips in a row see no offer made (a request still on its way
// may bring one more), at most five times, and returns the offers. A pair that renegotiates
// without end makes about one offer per round trip.
func (pr *pair) settled(t *testing.T) int32 {
	t.Helper()
	n := pr.offers.Load()
	for range 5 {
		pr.roundTrip(t)
		pr.roundTrip(t)
		m := pr.offers.Load()
		if m == n {
			return n
		}
		n = m
	}
	t.Fatalf("offers still growing after ten round trips with nothing changing (%d): a renegotiation loop", n)
	return n
}

// TestNoRenegotiationLoop: exchanges that leave the polite side a transceiver Pion made for
// an m-line none of its tracks takes (sendonly, no track) end. Before, the polite side asked
// after every answer (Pion's check reports a need for that transceiver) and the pair
// renegotiated without end: 200-odd offers in 2 s.
func TestNoRenegotiationLoop(t *testing.T) {
	t.Run("recvonly-offered", func(t *testing.T) {
		// The impolite side offers to receive audio; the polite side has none to send.
		pr := dialPair(t, "loop-recvonly", func(p *sdk.Peer) {
			if p.Polite() {
				return
			}
			if _, err := p.PeerConnection().AddTransceiverFromKind(webrtc.RTPCodecTypeAudio, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionRecvonly}); err != nil {
				t.Error(err)
			}
		})
		if n := pr.settled(t); n != 1 {
			t.Errorf("%d offers, want 1", n)
		}
	})
	t.Run("both-add-later", func(t *testing.T) {
		// Both sides add audio once connected: the polite side's request may come after the
		// impolite side's own offer already gave its track an m-line, and the recvonly m-line
		// made for the request then gets a transceiver with no track.
		arrived := make(chan bool, 2)
		pr := dialPair(t, "loop-later", func(p *sdk.Peer) {
			p.OnTrack(func(tr *webrtc.TrackRemote, _ *webrtc.RTPReceiver) {
				if _, _, err := tr.ReadRTP(); err == nil {
					arrived <- p.Polite()
				}
			})
		})
		sendOpus(t, pr.impolite)
		sendOpus(t, pr.polite)
		waitChan(t, arrived, "packets one way")
		waitChan(t, arrived, "packets both ways")
		if n := pr.settled(t); n < 2 || n > 3 {
			t.Errorf("%d offers, want 2 or 3", n)
		}
	})
}

// TestPoliteTrackAfterRemoved: the polite side adds and removes a track before the first
// offer (a transceiver with neither m-line nor track is left), then adds one once connected:
// the track gets an m-line and its packets arrive. Pion, still thinking a negotiation is
// needed for the first, fires no negotiationneeded for the second; AddTrack checks itself.
func TestPoliteTrackAfterRemoved(t *testing.T) {
	arrived := make(chan struct{}, 1)
	pr := dialPair(t, "after-removed", func(p *sdk.Peer) {
		p.OnTrack(func(tr *webrtc.TrackRemote, _ *webrtc.RTPReceiver) {
			if _, _, err := tr.ReadRTP(); err == nil {
				arrived <- struct{}{}
			}
		})
		if !p.Polite() {
			return
		}
		tr, err := webrtc.NewTrackLocalStaticSample(webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeVP8, ClockRate: 90000}, "video", "sb")
		if err != nil {
			t.Error(err)
			return
		}
		s, err := p.AddTrack(tr)
		if err != nil {
			t.Error(err)
			return
		}
		if err := p.RemoveTrack(s); err != nil {
			t.Error(err)
		}
	})
	sendOpus(t, pr.polite)
	waitChan(t, arrived, "the polite side's track, added once connected")
	pr.settled(t)
}
