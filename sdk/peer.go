package sdk

import (
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/pion/datachannel"
	"github.com/pion/webrtc/v4"
)

// controlLabel is the data channel the impolite side of a pair opens so that every pair
// negotiates a connection even before the application adds anything. It is not shown to
// OnDataChannel.
const controlLabel = "switchboard"

// Errors reported for a pair.
var (
	// ErrBadSignal means the remote peer sent a description or candidate that could not be
	// decoded or applied.
	ErrBadSignal = errors.New("sdk: bad signaling message from peer")
	// ErrPeerClosed is returned by operations on a peer that has left.
	ErrPeerClosed = errors.New("sdk: peer closed")
)

// Peer is one remote peer of the room and the RTCPeerConnection to it.
type Peer struct {
	c        *Client
	id       string
	identity string
	polite   bool
	// newcomer: this side found the remote in the room when it joined (the remote was
	// there first); it decides the QUIC session's roles (quicRoles).
	newcomer bool
	pc       *webrtc.PeerConnection

	ops       chan func()
	quit      chan struct{}
	closeOnce sync.Once
	connected chan struct{}
	connOnce  sync.Once

	// Negotiation state, touched only by the ops goroutine.
	askedToNegotiate   bool // polite side: a negotiate request is out, no offer yet
	renegotiatePending bool // impolite side: negotiation was asked for mid-exchange
	pending            []webrtc.ICECandidateInit
	// Exchanges made so far (offers on the impolite side, answers on the polite side), read
	// also by Pion's goroutine when it fires negotiationneeded: an exchange made after the
	// event already covers what the event was for (Pion may fire it late, from its own queue).
	exchanges atomic.Uint64

	mu        sync.Mutex
	name      string          // changed by peer-updated
	meta      json.RawMessage // changed by peer-updated
	onDC      func(*webrtc.DataChannel)
	onTrack   func(*webrtc.TrackRemote, *webrtc.RTPReceiver)
	onState   func(webrtc.PeerConnectionState)
	onMessage func(json.RawMessage)

	// The control channel (control.go) and the QUIC exchange (quic_signal.go).
	detached       datachannel.ReadWriteCloser // the control channel, detached (DetachDataChannels)
	detachedClosed bool
	detachedWG     sync.WaitGroup
	inbox          *quicInbox
	quic           *quicState
}

func newPeer(c *Client, info peerInfo, newcomer bool) (*Peer, error) {
	pc, err := c.api.NewPeerConnection(webrtc.Configuration{
		ICEServers:         c.ice,
		ICETransportPolicy: c.opts.ICETransportPolicy,
	})
	if err != nil {
		return nil, fmt.Errorf("sdk: new peer connection: %w", err)
	}
	p := &Peer{
		c:         c,
		id:        info.ID,
		identity:  info.Identity,
		name:      info.Name,
		meta:      info.Meta,
		polite:    c.id > info.ID,
		newcomer:  newcomer,
		pc:        pc,
		ops:       make(chan func(), 64),
		quit:      make(chan struct{}),
		connected: make(chan struct{}),
		inbox:     newQUICInbox(),
		quic:      &quicState{done: make(chan struct{})},
	}
	pc.OnICECandidate(func(cand *webrtc.ICECandidate) {
		if cand == nil {
			return
		}
		if err := c.send("ice-candidate", p.id, cand.ToJSON()); err != nil && c.ctx.Err() == nil {
			c.report(p, err)
		}
	})
	pc.OnNegotiationNeeded(func() {
		seen := p.exchanges.Load()
		p.do(func() { p.onNegotiationNeeded(seen) })
	})
	pc.OnConnectionStateChange(func(s webrtc.PeerConnectionState) {
		if s == webrtc.PeerConnectionStateConnected {
			p.connOnce.Do(func() { close(p.connected) })
		}
		if s == webrtc.PeerConnectionStateFailed {
			c.report(p, fmt.Errorf("sdk: connection to %s failed", p.id))
		}
		p.mu.Lock()
		f := p.onState
		p.mu.Unlock()
		if f != nil {
			f(s)
		}
	})
	pc.OnDataChannel(func(dc *webrtc.DataChannel) {
		if dc.Label() == controlLabel {
			p.watchControl(dc)
			return
		}
		p.mu.Lock()
		f := p.onDC
		p.mu.Unlock()
		if f != nil {
			f(dc)
		}
	})
	pc.OnTrack(func(t *webrtc.TrackRemote, r *webrtc.RTPReceiver) {
		p.mu.Lock()
		f := p.onTrack
		p.mu.Unlock()
		if f != nil {
			f(t, r)
		} else {
			drainTrack(t) // keep Pion's buffers moving for tracks nobody asked for
		}
	})
	return p, nil
}

func drainTrack(t *webrtc.TrackRemote) {
	buf := make([]byte, 1500)
	for {
		if _, _, err := t.Read(buf); err != nil {
			return
		}
	}
}

// start runs the peer's negotiation goroutine. The offering (impolite) side opens the control
// channel and sends the first offer, with what OnPeer added; the other side waits for it.
func (p *Peer) start() {
	go p.run()
	if !p.polite {
		p.do(func() {
			dc, err := p.pc.CreateDataChannel(controlLabel, nil)
			if err != nil {
				p.c.report(p, fmt.Errorf("sdk: control channel: %w", err))
				return
			}
			p.watchControl(dc)
			// The first offer goes now, with what OnPeer added; Pion's negotiationneeded,
			// queued meanwhile, finds this exchange under way (onNegotiationNeeded).
			p.negotiate()
		})
	}
}

func (p *Peer) run() {
	defer p.c.wg.Done()
	for {
		select {
		case op := <-p.ops:
			op()
		case <-p.quit:
			return
		}
	}
}

// do queues op on the peer's negotiation goroutine.
func (p *Peer) do(op func()) {
	select {
	case p.ops <- op:
	case <-p.quit:
	}
}

// signal handles an offer, answer or candidate from the remote peer, in order.
func (p *Peer) signal(typ string, data json.RawMessage) {
	p.do(func() {
		var err error
		switch typ {
		case "offer", "answer":
			err = p.description(data)
		case "ice-candidate":
			err = p.candidate(data)
		}
		if err != nil && p.c.ctx.Err() == nil { // errors while closing are not news
			p.c.report(p, err)
		}
	})
}

func (p *Peer) description(data json.RawMessage) error {
	var desc webrtc.SessionDescription
	if err := json.Unmarshal(data, &desc); err != nil {
		return fmt.Errorf("%w: description: %w", ErrBadSignal, err)
	}
	switch {
	case desc.Type == webrtc.SDPTypeOffer && !p.polite:
		return fmt.Errorf("%w: an offer from the answering side of the pair", ErrBadSignal)
	case desc.Type == webrtc.SDPTypeAnswer && p.polite:
		return fmt.Errorf("%w: an answer to the answering side of the pair", ErrBadSignal)
	case desc.Type != webrtc.SDPTypeOffer && desc.Type != webrtc.SDPTypeAnswer:
		return fmt.Errorf("%w: description type %q", ErrBadSignal, desc.Type)
	}
	if desc.Type == webrtc.SDPTypeAnswer && p.pc.SignalingState() == webrtc.SignalingStateStable {
		// The answer to an offer sent twice after lost signaling events: the first one
		// completed the exchange.
		p.c.log.Debug("answer while stable ignored", "peer", p.id)
		return nil
	}
	if err := p.pc.SetRemoteDescription(desc); err != nil {
		return fmt.Errorf("%w: %s: %w", ErrBadSignal, desc.Type, err)
	}
	for _, c := range p.pending {
		if err := p.pc.AddICECandidate(c); err != nil {
			p.c.report(p, fmt.Errorf("%w: queued candidate: %w", ErrBadSignal, err))
		}
	}
	p.pending = nil
	if desc.Type == webrtc.SDPTypeAnswer {
		if p.renegotiatePending {
			p.negotiate()
		}
		return nil
	}
	p.askedToNegotiate = false
	answer, err := p.pc.CreateAnswer(nil)
	if err != nil {
		return fmt.Errorf("sdk: create answer: %w", err)
	}
	if err := p.pc.SetLocalDescription(answer); err != nil {
		return fmt.Errorf("sdk: set local answer: %w", err)
	}
	p.exchanges.Add(1)
	if err := p.c.send("answer", p.id, p.pc.LocalDescription()); err != nil {
		return err
	}
	// Tracks added before the offer that it had no m-line for (negotiationneeded kept quiet),
	// or changed while it was under way.
	p.askIfNeeded()
	return nil
}

// iceUp reports whether the pair's ICE transport is connected.
func (p *Peer) iceUp() bool {
	s := p.pc.ICEConnectionState()
	return s == webrtc.ICEConnectionStateConnected || s == webrtc.ICEConnectionStateCompleted
}

// recoverNegotiation runs after signaling events may have been lost (a resumed welcome with
// gap or restored, or the other side asking with resend): the offering side sends its
// unanswered offer again, or offers anew (restarting ICE unless connected), which also
// answers a lost negotiate request; the answering side asks it to. Ops goroutine only.
func (p *Peer) recoverNegotiation() {
	if p.polite {
		p.askedToNegotiate = true
		req := negotiateRequest{Switchboard: "negotiate", Resend: true, Restart: !p.iceUp()}
		if err := p.c.send("message", p.id, req); err != nil && p.c.ctx.Err() == nil {
			p.c.report(p, err)
		}
		return
	}
	if p.pc.SignalingState() == webrtc.SignalingStateHaveLocalOffer {
		if err := p.c.send("offer", p.id, p.pc.LocalDescription()); err != nil && p.c.ctx.Err() == nil {
			p.c.report(p, err)
		}
		return
	}
	p.offer(!p.iceUp())
}

func (p *Peer) candidate(data json.RawMessage) error {
	var c webrtc.ICECandidateInit
	if err := json.Unmarshal(data, &c); err != nil {
		return fmt.Errorf("%w: candidate: %w", ErrBadSignal, err)
	}
	if p.pc.RemoteDescription() == nil {
		p.pending = append(p.pending, c)
		return nil
	}
	if err := p.pc.AddICECandidate(c); err != nil {
		return fmt.Errorf("%w: candidate: %w", ErrBadSignal, err)
	}
	return nil
}

func (p *Peer) message(data json.RawMessage, broadcast bool) {
	if isQUICMsg(data) {
		p.quicMessage(data, broadcast) // the SDK's own; never surfaced
		return
	}
	var req negotiateRequest
	if json.Unmarshal(data, &req) == nil && req.Switchboard == "negotiate" {
		p.do(func() { p.renegotiate(req) })
		return
	}
	p.mu.Lock()
	f := p.onMessage
	p.mu.Unlock()
	if f != nil {
		f(data)
	}
}

func (p *Peer) close() {
	p.closeOnce.Do(func() {
		close(p.quit)
		p.closeQUIC()
		if err := p.pc.Close(); err != nil {
			p.c.log.Debug("close peer connection", "peer", p.id, "err", err)
		}
		p.stopDetachedControl()
	})
}

// ID returns the remote peer's id.
func (p *Peer) ID() string { return p.id }

// Identity returns the user the remote peer's access token names (its sub), or "" on a
// server without access control. A room holds one presence per identity.
func (p *Peer) Identity() string { return p.identity }

// Name returns the remote peer's display name.
func (p *Peer) Name() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.name
}

// Meta returns the remote peer's metadata as raw JSON, or nil.
func (p *Peer) Meta() json.RawMessage {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.meta
}

// update applies a peer-updated event.
func (p *Peer) update(info peerInfo) {
	p.mu.Lock()
	p.name, p.meta = info.Name, info.Meta
	p.mu.Unlock()
}

// Polite reports whether this side is the pair's answering side: it never makes an offer but
// asks the other side to renegotiate when it needs to. Exactly one side of a pair is polite.
func (p *Peer) Polite() bool { return p.polite }

// PeerConnection returns the underlying Pion peer connection. Add tracks and channels through
// the Peer's methods (or the connection's own: negotiation follows either way).
func (p *Peer) PeerConnection() *webrtc.PeerConnection { return p.pc }

// Connected is closed once the peer connection first reaches the connected state.
func (p *Peer) Connected() <-chan struct{} { return p.connected }

// Closed is closed once the peer has left or the client closed.
func (p *Peer) Closed() <-chan struct{} { return p.quit }

// OnDataChannel sets the handler for data channels the remote peer opens.
func (p *Peer) OnDataChannel(f func(*webrtc.DataChannel)) {
	p.mu.Lock()
	p.onDC = f
	p.mu.Unlock()
}

// OnTrack sets the handler for remote media tracks. Tracks with no handler are read and
// dropped so they never stall.
func (p *Peer) OnTrack(f func(*webrtc.TrackRemote, *webrtc.RTPReceiver)) {
	p.mu.Lock()
	p.onTrack = f
	p.mu.Unlock()
}

// OnConnectionState sets the handler for connection state changes.
func (p *Peer) OnConnectionState(f func(webrtc.PeerConnectionState)) {
	p.mu.Lock()
	p.onState = f
	p.mu.Unlock()
}

// OnMessage sets the handler for `message` frames the remote peer relays through the server.
func (p *Peer) OnMessage(f func(json.RawMessage)) {
	p.mu.Lock()
	p.onMessage = f
	p.mu.Unlock()
}

// CreateDataChannel opens a data channel to the peer; negotiation follows by itself.
func (p *Peer) CreateDataChannel(label string, init *webrtc.DataChannelInit) (*webrtc.DataChannel, error) {
	if label == controlLabel {
		return nil, fmt.Errorf("sdk: data channel label %q is reserved", controlLabel)
	}
	select {
	case <-p.quit:
		return nil, ErrPeerClosed
	default:
	}
	dc, err := p.pc.CreateDataChannel(label, init)
	if err != nil {
		return nil, fmt.Errorf("sdk: create data channel: %w", err)
	}
	return dc, nil
}

// RemoveTrack stops sending the track of s (added with AddTrack); negotiation follows by
// itself. Use it rather than PeerConnection().RemoveTrack: on the polite side of a pair Pion
// may not announce that change (negotiate.go's askIfNeeded).
func (p *Peer) RemoveTrack(s *webrtc.RTPSender) error {
	select {
	case <-p.quit:
		return ErrPeerClosed
	default:
	}
	if err := p.pc.RemoveTrack(s); err != nil {
		return fmt.Errorf("sdk: remove track: %w", err)
	}
	p.checkAsk()
	return nil
}

// AddTrack sends a local track to the peer; negotiation follows by itself.
func (p *Peer) AddTrack(t webrtc.TrackLocal) (*webrtc.RTPSender, error) {
	select {
	case <-p.quit:
		return nil, ErrPeerClosed
	default:
	}
	s, err := p.pc.AddTrack(t)
	if err != nil {
		return nil, fmt.Errorf("sdk: add track: %w", err)
	}
	p.checkAsk()
	p.c.wg.Add(1)
	go func() { // read RTCP so the sender's interceptors keep working; ends when pc closes
		defer p.c.wg.Done()
		buf := make([]byte, 1500)
		for {
			if _, _, err := s.Read(buf); err != nil {
				return
			}
		}
	}()
	return s, nil
}

// SendMessage relays data (any JSON value) to the peer through the signaling server. It
// returns once the relay is queued: it goes out at once, or after the signaling connection is
// back, and again after a resume until the server acks it (an error answer goes to
// Options.OnError). ErrSendQueueFull when too many wait.
func (p *Peer) SendMessage(data any) error { return p.c.send("message", p.id, data) }
