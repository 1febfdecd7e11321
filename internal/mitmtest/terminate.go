package mitmtest

import (
	"encoding/json"
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/pion/ice/v4"
	"github.com/pion/webrtc/v4"

	"github.com/switchboard-rtc/switchboard/sdk"
)

// How the proxy terminates a pair: the peer that offers (o) and the one that answers (a)
// each get a PeerConnection of the proxy's, facing them and impersonating the other. The
// proxy answers o's offer on its side at once; it offers to a as soon as o's first data
// channel reaches it, with that channel's mirror (so the offer has the data section o's
// has). Candidates go to the side facing their sender; the proxy's own go to the peer its
// side faces, "from" the peer it impersonates.

// targetWait bounds the wait for the target of a first offer to be welcomed.
const targetWait = 5 * time.Second

// pair is one terminated pair.
type pair struct {
	p      *Proxy
	mu     sync.Mutex // serializes the signaling of both sides
	sides  [2]*side   // [0] faces the offering peer, [1] the answering one
	closed bool
	once   sync.Once
}

// side is the proxy's PeerConnection facing one peer of a pair.
type side struct {
	pr      *pair
	pc      *webrtc.PeerConnection
	peer    string // the peer it faces
	as      string // the peer it impersonates
	c       *conn  // the connection of peer
	offers  bool   // the proxy makes the offers on this side
	pending []webrtc.ICECandidateInit
}

// terminate takes a pair's signaling frame f from c's peer; it reports false when the pair
// is not one the proxy terminates (the frame is relayed then).
func (p *Proxy) terminate(c *conn, f frame) bool {
	from := c.peerID()
	key := pairKey(from, f.Target)
	p.mu.Lock()
	pr := p.pairs[key]
	p.mu.Unlock()
	if pr == nil {
		if f.Type != "offer" {
			return false // a pair that began before the proxy took it, or a peer not behind it
		}
		other := p.peerConn(f.Target, targetWait)
		if other == nil {
			return false
		}
		var err error
		if pr, err = p.newPair(c, other); err != nil {
			p.fail(err)
			return false
		}
		p.mu.Lock()
		if p.closed || p.pairs[key] != nil {
			p.mu.Unlock()
			pr.close()
			return false
		}
		p.pairs[key] = pr
		p.stats.Pairs++
		p.mu.Unlock()
	}
	if err := pr.signal(from, f); err != nil {
		p.fail(fmt.Errorf("mitmtest: %s from %s: %w", f.Type, from, err))
	}
	return true
}

// newPair makes the two sides of the pair of o (the offering peer) and a.
func (p *Proxy) newPair(o, a *conn) (*pair, error) {
	pr := &pair{p: p}
	api := webrtc.NewAPI(webrtc.WithSettingEngine(loopbackEngine()))
	for i, c := range []*conn{o, a} {
		pc, err := api.NewPeerConnection(webrtc.Configuration{})
		if err != nil {
			pr.close()
			return nil, fmt.Errorf("mitmtest: peer connection: %w", err)
		}
		other := a
		if i == 1 {
			other = o
		}
		s := &side{pr: pr, pc: pc, peer: c.peerID(), as: other.peerID(), c: c, offers: i == 1}
		pr.sides[i] = s
		pc.OnICECandidate(func(cand *webrtc.ICECandidate) {
			if cand != nil {
				s.c.inject("ice-candidate", s.as, cand.ToJSON())
			}
		})
		pc.OnDataChannel(func(dc *webrtc.DataChannel) { pr.mirror(s, dc) })
	}
	return pr, nil
}

// loopbackEngine keeps the proxy's ICE on 127.0.0.1, as the peers' --loopback does.
func loopbackEngine() webrtc.SettingEngine {
	var se webrtc.SettingEngine
	sdk.TuneTransport(&se) // the SDK's buffers and handshake, as the peers have them
	se.SetIncludeLoopbackCandidate(true)
	se.SetNetworkTypes([]webrtc.NetworkType{webrtc.NetworkTypeUDP4})
	se.SetInterfaceFilter(func(name string) bool { return name == "lo" })
	se.SetIPFilter(func(ip net.IP) bool { return ip.IsLoopback() })
	se.SetICEMulticastDNSMode(ice.MulticastDNSModeDisabled)
	return se
}

// signal applies the frame f of peer from to the side facing it.
func (pr *pair) signal(from string, f frame) error {
	pr.mu.Lock()
	defer pr.mu.Unlock()
	if pr.closed {
		return nil
	}
	s := pr.sides[0]
	if s.peer != from {
		s = pr.sides[1]
	}
	switch f.Type {
	case "offer":
		if s.offers {
			return nil // from the answering peer (it never offers): dropped
		}
		var d webrtc.SessionDescription
		if err := json.Unmarshal(f.Data, &d); err != nil {
			return err
		}
		if err := s.pc.SetRemoteDescription(d); err != nil {
			return err
		}
		if err := s.flush(); err != nil {
			return err
		}
		answer, err := s.pc.CreateAnswer(nil)
		if err != nil {
			return err
		}
		if err := s.pc.SetLocalDescription(answer); err != nil {
			return err
		}
		s.c.inject("answer", s.as, s.pc.LocalDescription())
	case "answer":
		if !s.offers {
			return nil
		}
		var d webrtc.SessionDescription
		if err := json.Unmarshal(f.Data, &d); err != nil {
			return err
		}
		if err := s.pc.SetRemoteDescription(d); err != nil {
			return err
		}
		return s.flush()
	case "ice-candidate":
		var cand webrtc.ICECandidateInit
		if err := json.Unmarshal(f.Data, &cand); err != nil {
			return err
		}
		if s.pc.RemoteDescription() == nil {
			s.pending = append(s.pending, cand)
			return nil
		}
		return s.pc.AddICECandidate(cand)
	case "message": // the SDK's renegotiation request, from the answering peer
		if s.offers && s.pc.LocalDescription() != nil && s.pc.SignalingState() == webrtc.SignalingStateStable {
			return s.offer()
		}
	}
	return nil
}

// flush adds the candidates that came before the remote description. Under pair.mu.
func (s *side) flush() error {
	for _, c := range s.pending {
		if err := s.pc.AddICECandidate(c); err != nil {
			return err
		}
	}
	s.pending = nil
	return nil
}

// offer makes an offer to the peer s faces. Under pair.mu.
func (s *side) offer() error {
	o, err := s.pc.CreateOffer(nil)
	if err != nil {
		return err
	}
	if err := s.pc.SetLocalDescription(o); err != nil {
		return err
	}
	s.c.inject("offer", s.as, s.pc.LocalDescription())
	return nil
}

// mirror opens dc, a channel the peer of side from opened, towards the other peer and pipes
// the two; the first one on the answering peer's side makes the proxy's first offer to it.
func (pr *pair) mirror(from *side, dc *webrtc.DataChannel) {
	pr.mu.Lock()
	defer pr.mu.Unlock()
	if pr.closed {
		_ = dc.Close()
		return
	}
	to := pr.sides[0]
	if to == from {
		to = pr.sides[1]
	}
	ordered, proto := dc.Ordered(), dc.Protocol()
	m, err := to.pc.CreateDataChannel(dc.Label(), &webrtc.DataChannelInit{
		Ordered: &ordered, Protocol: &proto,
		MaxRetransmits: dc.MaxRetransmits(), MaxPacketLifeTime: dc.MaxPacketLifeTime(),
	})
	if err != nil {
		pr.p.fail(fmt.Errorf("mitmtest: mirror channel %q: %w", dc.Label(), err))
		_ = dc.Close()
		return
	}
	pr.p.mu.Lock()
	pr.p.stats.Channels = append(pr.p.stats.Channels, dc.Label())
	pr.p.mu.Unlock()
	pipe(dc, m, pr.p)
	pipe(m, dc, pr.p)
	if to.offers && to.pc.LocalDescription() == nil {
		if err := to.offer(); err != nil {
			pr.p.fail(fmt.Errorf("mitmtest: offer: %w", err))
		}
	}
}

// close closes both sides.
func (pr *pair) close() {
	pr.once.Do(func() {
		pr.mu.Lock()
		pr.closed = true
		sides := pr.sides
		pr.mu.Unlock()
		for _, s := range sides {
			if s != nil {
				_ = s.pc.Close()
			}
		}
	})
}

// pipeState carries one direction of a piped channel: what src delivers goes to dst, in
// order, once dst is open; when src closes, dst closes after it.
type pipeState struct {
	p      *Proxy
	dst    *webrtc.DataChannel
	mu     sync.Mutex
	open   bool
	ended  bool // src closed
	queue  []webrtc.DataChannelMessage
	closed bool // dst closed by the pipe
}

// pipe pipes src to dst (one direction).
func pipe(src, dst *webrtc.DataChannel, p *Proxy) {
	ps := &pipeState{p: p, dst: dst}
	src.OnMessage(ps.push)
	dst.OnOpen(ps.opened)
	src.OnClose(ps.srcClosed)
}

func (ps *pipeState) push(m webrtc.DataChannelMessage) {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	if !ps.open {
		ps.queue = append(ps.queue, m)
		return
	}
	ps.send(m)
}

func (ps *pipeState) opened() {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	ps.open = true
	for _, m := range ps.queue {
		ps.send(m)
	}
	ps.queue = nil
	if ps.ended {
		ps.closeDst()
	}
}

func (ps *pipeState) srcClosed() {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	ps.ended = true
	if ps.open {
		ps.closeDst()
	}
}

// send writes m to dst as it came: text as text, binary as binary. Under mu.
func (ps *pipeState) send(m webrtc.DataChannelMessage) {
	var err error
	if m.IsString {
		err = ps.dst.SendText(string(m.Data))
	} else {
		err = ps.dst.Send(m.Data)
	}
	if err == nil {
		ps.p.bytes.Add(int64(len(m.Data)))
	}
}

// closeDst closes dst once. Under mu.
func (ps *pipeState) closeDst() {
	if !ps.closed {
		ps.closed = true
		_ = ps.dst.Close()
	}
}
