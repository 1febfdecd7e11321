package sdk

// The negotiation rules of a pair (docs/browser-sdk.md "Negotiation rules", shared with the
// browser SDK's sdk-peer.js): the impolite side makes every offer, the first one as soon as
// the pair exists; the polite side asks for one with a negotiate message.

import (
	"fmt"

	"github.com/pion/sdp/v3"
	"github.com/pion/webrtc/v4"
)

// onNegotiationNeeded runs when Pion asks for a negotiation. Only the impolite side of a pair
// ever makes offers, so offers never collide (Pion v4.2.26 cannot roll back a local offer,
// which browser-style perfect negotiation relies on). The polite side asks the other to
// renegotiate instead, saying which kinds of media it needs m-lines for.
func (p *Peer) onNegotiationNeeded(seen uint64) {
	if p.exchanges.Load() != seen {
		// An exchange made since the event covers it: an offer made after it carries what it
		// was for (Pion fires again at stable if not), and after an answer description asks
		// for what is left.
		return
	}
	if !p.polite {
		// Fired before start's first offer (for what OnPeer added: that offer carries it), or
		// while an exchange was under way (Pion checks again when the answer makes the pair
		// stable, and fires anew if still needed).
		if p.exchanges.Load() == 0 || p.pc.SignalingState() != webrtc.SignalingStateStable {
			return
		}
		p.negotiate()
		return
	}
	if p.askedToNegotiate {
		return // an offer is on its way; Pion asks again after it if still needed
	}
	// Before the first offer, the other side offers on its own (start) and its m-lines take
	// our tracks; mid-exchange, an answer is coming. What they leave out is asked for once the
	// offer is answered (description).
	if p.pc.RemoteDescription() == nil || p.pc.SignalingState() != webrtc.SignalingStateStable {
		return
	}
	p.askIfNeeded()
}

// askIfNeeded asks the impolite side for an offer when the polite side has tracks without an
// m-line, or a transceiver whose direction is not what its last answer says (a track removed,
// or added again on a transceiver that had stopped sending). Pion's own negotiation-needed
// check is not asked: for the transceiver Pion makes to answer an m-line that none of our
// tracks takes (sendonly, no track) it reports a need after every exchange, and asking on
// that renegotiated without end (TestNoRenegotiationLoop). It is also why AddTrack and
// RemoveTrack check for themselves: while Pion thinks a negotiation is needed it fires no
// new negotiationneeded.
func (p *Peer) askIfNeeded() {
	req := p.unsent()
	if req.Audio > 0 || req.Video > 0 || p.sendingChanged() {
		p.ask(req)
	}
}

// sendingChanged reports whether a transceiver with an m-line has a sending direction where
// the current local description says it does not send, or the other way round. (Pion sets a
// transceiver's direction when it applies an offer and writes that direction in the answer;
// RemoveTrack and AddTrack change it.)
func (p *Peer) sendingChanged() bool {
	desc := p.pc.CurrentLocalDescription()
	if desc == nil {
		return false
	}
	parsed, err := desc.Unmarshal()
	if err != nil {
		return false
	}
	sends := make(map[string]bool, len(parsed.MediaDescriptions))
	for _, m := range parsed.MediaDescriptions {
		mid, _ := m.Attribute(sdp.AttrKeyMID)
		_, sendrecv := m.Attribute(sdp.AttrKeySendRecv)
		_, sendonly := m.Attribute(sdp.AttrKeySendOnly)
		sends[mid] = sendrecv || sendonly
	}
	for _, t := range p.pc.GetTransceivers() {
		said, ok := sends[t.Mid()]
		if t.Mid() == "" || !ok {
			continue
		}
		d := t.Direction()
		does := d == webrtc.RTPTransceiverDirectionSendrecv || d == webrtc.RTPTransceiverDirectionSendonly
		if does != said {
			return true
		}
	}
	return false
}

// unsent counts, by kind, the polite side's tracks that have no m-line yet.
func (p *Peer) unsent() negotiateRequest {
	req := negotiateRequest{Switchboard: "negotiate"}
	for _, t := range p.pc.GetTransceivers() {
		if t.Mid() != "" || t.Sender() == nil || t.Sender().Track() == nil {
			continue
		}
		switch t.Kind() {
		case webrtc.RTPCodecTypeAudio:
			req.Audio++
		case webrtc.RTPCodecTypeVideo:
			req.Video++
		}
	}
	return req
}

// ask relays req to the impolite side: an offer with m-lines for what we want to send.
func (p *Peer) ask(req negotiateRequest) {
	p.askedToNegotiate = true
	if err := p.c.send("message", p.id, req); err != nil && p.c.ctx.Err() == nil {
		p.c.report(p, err)
	}
}

// maxTransceivers bounds what a remote peer's negotiate requests can make us allocate.
const maxTransceivers = 64

// negotiateRequest is the SDK's own relayed message asking the offering side to renegotiate.
type negotiateRequest struct {
	Switchboard string `json:"switchboard"`
	Audio       int    `json:"audio,omitempty"`
	Video       int    `json:"video,omitempty"`
	// Resend: the asking side may have missed an offer (its signaling lost events): an offer
	// still unanswered goes again. Restart: its ICE is not connected; the offer restarts ICE.
	Resend  bool `json:"resend,omitempty"`
	Restart bool `json:"restart,omitempty"`
}

// renegotiate answers a negotiateRequest on the offering side: it adds receive-only
// transceivers for the media the other side wants to send, then offers.
func (p *Peer) renegotiate(req negotiateRequest) {
	if p.polite {
		return // only the offering side honours requests
	}
	if req.Resend || req.Restart {
		p.recoverNegotiation()
		if req.Audio+req.Video == 0 {
			return
		}
	}
	if len(p.pc.GetTransceivers())+req.Audio+req.Video > maxTransceivers {
		p.c.report(p, fmt.Errorf("%w: renegotiation would exceed %d transceivers", ErrBadSignal, maxTransceivers))
		return
	}
	add := func(kind webrtc.RTPCodecType, n int) {
		for i := 0; i < n && i < 16; i++ {
			if _, err := p.pc.AddTransceiverFromKind(kind, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionRecvonly}); err != nil {
				p.c.report(p, fmt.Errorf("sdk: add transceiver: %w", err))
				return
			}
		}
	}
	add(webrtc.RTPCodecTypeAudio, req.Audio)
	add(webrtc.RTPCodecTypeVideo, req.Video)
	p.negotiate()
}

// negotiate makes and sends an offer.
func (p *Peer) negotiate() { p.offer(false) }

// offer makes and sends an offer, restarting ICE if iceRestart.
func (p *Peer) offer(iceRestart bool) {
	if p.pc.SignalingState() != webrtc.SignalingStateStable {
		p.renegotiatePending = true // offer again once the current exchange completes
		return
	}
	p.renegotiatePending = false
	p.exchanges.Add(1)
	var opts *webrtc.OfferOptions
	if iceRestart {
		opts = &webrtc.OfferOptions{ICERestart: true}
	}
	offer, err := p.pc.CreateOffer(opts)
	if err != nil {
		p.c.report(p, fmt.Errorf("sdk: create offer: %w", err))
		return
	}
	if err := p.pc.SetLocalDescription(offer); err != nil {
		p.c.report(p, fmt.Errorf("sdk: set local offer: %w", err))
		return
	}
	if err := p.c.send("offer", p.id, p.pc.LocalDescription()); err != nil && p.c.ctx.Err() == nil {
		p.c.report(p, err)
	}
}

// checkAsk has the polite side check, on the pair's goroutine, whether it must ask for an
// offer (after AddTrack or RemoveTrack): not before the first offer, nor while an exchange or
// a request is under way (description checks again after the answer).
func (p *Peer) checkAsk() {
	if !p.polite {
		return // the impolite side's changes fire Pion's negotiationneeded
	}
	p.do(func() {
		if !p.askedToNegotiate && p.pc.RemoteDescription() != nil && p.pc.SignalingState() == webrtc.SignalingStateStable {
			p.askIfNeeded()
		}
	})
}
