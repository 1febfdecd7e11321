package hub

import (
	"context"
	"time"

	"github.com/switchboard-rtc/switchboard/internal/bus"
	"github.com/switchboard-rtc/switchboard/internal/resume"
	"github.com/switchboard-rtc/switchboard/protocol"
)

// restore re-creates, for this session, the presence a valid unspent token names when this
// node does not hold it (it restarted, or the presence lived on another node): the node that
// held it, if alive, hands over the events after last (bus.TakeOver); then the presence joins
// its room again under its id (bus.Member.Resumed: no peer-joined where the room still has
// it, peer-joined resumed where it does not). The welcome says restored, and gap when nobody
// could vouch for every event after last. It reports false when the room will not take it.
func (s *Session) restore(c resume.Claims, id []byte, last uint64) bool {
	h := s.hub
	ctx := context.Background()
	ho, err := h.bus.TakeOver(ctx, c.Room, c.Peer, last)
	if err != nil {
		h.log.Info("take over a presence for a restore", "room", c.Room, "peer", c.Peer, "err", err)
		ho = nil
	}
	seq, gap := last, true
	if ho != nil {
		// A client cannot have read more than was sent (attach clamps the same way).
		last = min(last, ho.Seq)
		seq, gap = ho.Seq, ho.Gap
	}
	m := &bus.Member{
		Room:    c.Room,
		Info:    protocol.PeerInfo{ID: c.Peer, Identity: c.Identity, Name: c.Name},
		Joined:  time.Now(),
		Resumed: true,
		Lost:    gap, // no handover, or one with a gap: the others send their recent relays again
	}
	if len(c.Meta) > 0 {
		m.Info.Meta = append([]byte(nil), c.Meta...)
	}
	rs := h.newResumeSink(s.sink, seq)
	rs.claims = claimsOf(m, c.TURN, h.cfg.Node)
	rs.client = s.clientKey()
	if ho != nil {
		rs.ids.load(ho.RetryIDs)
	}
	m.Sink = rs
	m.Kick = h.kickFunc(m)
	m.Handover = h.handoverFunc(m)
	key := presenceKey(m.Room, m.Info.ID)
	token := h.mint(rs)
	idc := append([]byte(nil), id...)
	ice := s.iceFor(m.Info.ID, c.TURN)
	welcome := func(others []protocol.PeerInfo) {
		h.adopt(s, m, nil, rs, key, c.TURN) // a new presence here: no Kick can precede it
		w := &protocol.Event{Type: protocol.TypeWelcome, ID: idc, Welcome: &protocol.Welcome{
			Self: m.Info.ID, Room: m.Room, Peers: others, ICEServers: ice, Resume: token,
			ResumeMillis: h.cfg.ResumeGrace.Milliseconds(), Resumed: true, Restored: true, Gap: gap,
		}}
		var evs []*protocol.Event
		if ho != nil {
			evs = ho.Events
		}
		rs.replay(s.sink, w, evs, last)
	}
	if err := h.bus.Join(ctx, m, h.cfg.MaxPeersPerRoom, welcome); err != nil {
		h.log.Info("restore refused by the room", "room", m.Room, "peer", m.Info.ID, "err", err)
		return false
	}
	h.scheduleRefresh(rs)
	h.stats.Restores.Add(1)
	h.log.Debug("peer restored", "room", m.Room, "peer", m.Info.ID, "last", last, "handover", ho != nil)
	return true
}

// claimsOf returns what the tokens of presence m say.
func claimsOf(m *bus.Member, turn bool, node string) tokenClaims {
	return tokenClaims{Room: m.Room, Peer: m.Info.ID, Name: m.Info.Name, Meta: m.Info.Meta, Identity: m.Info.Identity, TURN: turn, Node: node}
}

// replay sends a restored presence's welcome (Seq set here) and the events handed over from
// its earlier node (those after last, kept as the outbox's), before any live event.
func (r *resumeSink) replay(sink bus.Sink, welcome *protocol.Event, evs []*protocol.Event, last uint64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	welcome.Welcome.Seq = r.seq
	sink.Send(welcome)
	prev := last
	for _, e := range evs {
		if e.Seq <= prev {
			continue // read already, or out of order
		}
		prev = e.Seq
		// Every event goes out (the connection is live); the outbox keeps the newest within
		// its bound, as a connected one does, and remembers the gap before them.
		r.seq = max(r.seq, e.Seq)
		sink.Send(e)
		size := eventSize(e)
		if size > r.maxBytes || r.maxEvents == 0 {
			r.dropped = e.Seq
			continue
		}
		for len(r.kept) > 0 && (len(r.kept) >= r.maxEvents || r.keptBytes+size > r.maxBytes) {
			r.dropped = r.kept[0].ev.Seq
			r.popLocked()
		}
		r.appendKept(kept{ev: *e, size: size})
		r.keptBytes += size
	}
}

// handoverFunc returns m's bus.Member.Handover: the presence is given up to the node it
// resumes on, silently (no leave: that node's Resumed join replaces it).
func (h *Hub) handoverFunc(m *bus.Member) func(last uint64) *bus.Handover {
	return func(last uint64) *bus.Handover {
		key := presenceKey(m.Room, m.Info.ID)
		got, rs, old, _, o, _ := h.take(key, "")
		if got == nil {
			// Muted by a restart of this node: its client resumes elsewhere.
			if rs := h.takeMuted(m); rs != nil {
				ho := rs.handOver(last)
				h.recordAll(rs) // as below: its tokens are the new node's to mint now
				return ho
			}
			return nil
		}
		h.mu.Lock()
		if h.owners[got] == o {
			delete(h.owners, got)
		}
		h.mu.Unlock()
		if cl, ok := old.(Closer); ok {
			cl.CloseConn("replaced")
		}
		ho := rs.handOver(last)
		// The node it resumes on mints its tokens from now on: those minted here die, else
		// one of them could re-create the presence once it has left there.
		h.recordAll(rs)
		return ho
	}
}

// handOver returns the kept events after last and ends the outbox.
func (r *resumeSink) handOver(last uint64) *bus.Handover {
	r.mu.Lock()
	defer r.mu.Unlock()
	ho := &bus.Handover{Seq: r.seq, Gap: r.over || r.dropped > last, RetryIDs: r.ids.list()}
	for i := range r.kept {
		if e := r.kept[i].ev; e.Seq > last {
			ho.Events = append(ho.Events, &e)
		}
	}
	r.letGoKept()
	r.over, r.onOver = true, nil
	r.acct.Release()
	r.charged = 0
	if r.refresh != nil {
		r.refresh.Stop()
	}
	return ho
}
