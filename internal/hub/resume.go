package hub

import (
	"context"
	"errors"
	"time"

	"github.com/switchboard-rtc/switchboard/internal/bus"
	"github.com/switchboard-rtc/switchboard/internal/resume"
	"github.com/switchboard-rtc/switchboard/protocol"
)

// Resumption: when a connection is lost (EOF or missed pings, not a close frame or a leave),
// its presence stays in the room for ResumeGrace. Its events are kept in its outbox
// (outbox.go), and the client may take the presence back by joining with a resume token
// (signed, single use: internal/resume) and the last seq it received: the new connection gets
// the same peer id, a welcome marked resumed, then the kept events after last in order. The
// other peers see nothing. If the grace period ends or the outbox overflows, the presence
// leaves with the reason the connection was lost for. A valid token for a presence this node
// does not hold (it restarted) re-creates it (restore, restore.go).

// tokenClaims is what the tokens of a presence say (resume.Claims without the token's own
// id and times).
type tokenClaims = resume.Claims

// jtiRef is a minted token not spent yet: spent when its presence ends, so that a presence
// that left cannot be re-created from it.
type jtiRef struct {
	id  string
	exp time.Time
}

// maxJTIs is how many unspent tokens a presence keeps track of: with a refresh at half the
// TTL, at most three are unexpired at once.
const maxJTIs = 4

// presenceKey names a presence in the hub's maps.
func presenceKey(room string, peer protocol.PeerID) string { return room + "\x00" + string(peer) }

// mint returns a fresh resume token for the presence of r ("" if signing failed).
func (h *Hub) mint(r *resumeSink) string {
	tok, c, err := h.tokens.Mint(r.claims, time.Now())
	if err != nil {
		h.log.Warn("mint resume token", "err", err)
		return ""
	}
	var evicted []jtiRef
	r.mu.Lock()
	if len(r.jtis) == maxJTIs {
		// Expired ones are no use to anyone; an unexpired one that must make room is spent
		// now, else it could re-create the presence after it ended.
		now := time.Now()
		live := r.jtis[:0]
		for _, j := range r.jtis {
			if j.exp.After(now) {
				live = append(live, j)
			}
		}
		r.jtis = live
		if len(r.jtis) == maxJTIs {
			evicted = []jtiRef{r.jtis[0]}
			r.jtis = append(r.jtis[:0], r.jtis[1:]...)
		}
	}
	r.jtis = append(r.jtis, jtiRef{id: c.ID, exp: c.Expires})
	r.mu.Unlock()
	if evicted != nil {
		h.spendRefs(evicted)
	}
	return tok
}

// spent forgets jti, a token of r just spent by a resume: it needs no spending when the
// presence ends, and keeps no room among those that do.
func (r *resumeSink) spent(jti string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for i, j := range r.jtis {
		if j.id == jti {
			r.jtis = append(r.jtis[:i], r.jtis[i+1:]...)
			return
		}
	}
}

// spendAll spends the tokens still unspent of a presence that ended for good, so none of them
// can re-create it. The ledger may be on the network: it runs on its own goroutine.
func (h *Hub) spendAll(r *resumeSink) {
	r.mu.Lock()
	jtis := r.jtis
	r.jtis = nil
	r.mu.Unlock()
	h.spendRefs(jtis)
}

// spendRefs spends jtis on their own goroutine; until the ledger has them, a resume on this
// node finds them in h.ending.
func (h *Hub) spendRefs(jtis []jtiRef) {
	if len(jtis) == 0 {
		return
	}
	h.mu.Lock()
	h.endingLocked(jtis)
	h.mu.Unlock()
	h.spendEnding(jtis)
}

// maxContested bounds h.contested.
const maxContested = 1 << 16

// endingLocked records jtis, the tokens of a presence that ends, as being spent: a resume on
// this node that finds them here (h.ending) is refused. h.mu is held.
func (h *Hub) endingLocked(jtis []jtiRef) {
	for _, j := range jtis {
		h.ending[j.id] = struct{}{}
	}
}

// spendEnding spends jtis, recorded by endingLocked, on its own goroutine. One a resume had
// spent first stays recorded, in h.contested, until it expires: that resume may not have
// looked for the presence yet, and must not re-create it (endedLocked).
func (h *Hub) spendEnding(jtis []jtiRef) {
	if len(jtis) == 0 {
		return
	}
	h.bg.Add(1)
	go func() {
		defer h.bg.Done()
		var contested []jtiRef
		defer func() {
			now := time.Now()
			h.mu.Lock()
			for _, j := range jtis {
				delete(h.ending, j.id)
			}
			if len(contested) > 0 {
				for id, exp := range h.contested {
					if !exp.After(now) {
						delete(h.contested, id)
					}
				}
				for _, j := range contested {
					if len(h.contested) < maxContested {
						h.contested[j.id] = j.exp
					}
				}
			}
			h.mu.Unlock()
		}()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		for _, j := range jtis {
			err := h.tokens.Spend(ctx, resume.Claims{ID: j.id, Expires: j.exp})
			switch {
			case errors.Is(err, resume.ErrSpent):
				contested = append(contested, j)
			case err != nil:
				h.log.Warn("spend the resume tokens of a presence that left", "err", err)
			}
		}
	}()
}

// endedLocked reports whether jti is a token of a presence that ended here: being spent, or
// spent by a resume while its presence ended. h.mu is held.
func (h *Hub) endedLocked(jti string) bool {
	if _, ok := h.ending[jti]; ok {
		return true
	}
	exp, ok := h.contested[jti]
	return ok && exp.After(time.Now())
}

// scheduleRefresh sends the connected presence a fresh token at half the TTL, and again.
func (h *Hub) scheduleRefresh(r *resumeSink) {
	half := h.tokens.TTL() / 2
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.refresh == nil {
		r.refresh = time.AfterFunc(half, func() { h.refreshToken(r) })
		return
	}
	r.refresh.Reset(half)
}

func (h *Hub) refreshToken(r *resumeSink) {
	r.mu.Lock()
	live := r.cur != nil && !r.over
	r.mu.Unlock()
	if !live {
		return
	}
	tok := h.mint(r)
	r.mu.Lock()
	if r.cur != nil && !r.over && tok != "" {
		r.cur.Send(&protocol.Event{Type: protocol.TypeResumeToken, Resume: tok})
		h.stats.ResumeTokensRefreshed.Add(1)
		r.refresh.Reset(h.tokens.TTL() / 2)
	}
	r.mu.Unlock()
}

// parked is a lost connection's presence waiting to be resumed.
type parked struct {
	key    string
	member *bus.Member
	sink   *resumeSink
	timer  *time.Timer
	turn   bool // the presence's grant includes TURN
}

// park keeps the presence m of s for the grace period. It reports false, keeping nothing,
// once the hub drains or when another connection took it over.
func (h *Hub) park(s *Session, key string, m *bus.Member, rs *resumeSink, reason string) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	select {
	case <-h.draining:
		return false
	default:
	}
	if h.holders[key] != s {
		return false
	}
	s.mu.Lock()
	if s.member != m {
		s.mu.Unlock()
		return false // taken over meanwhile
	}
	turn := s.turn
	s.member, s.rsink, s.key = nil, nil, ""
	s.mu.Unlock()
	delete(h.holders, key)
	h.parkLocked(key, m, rs, turn, h.cfg.ResumeGrace, reason)
	h.log.Debug("peer connection lost; presence kept for resumption", "room", m.Room, "peer", m.Info.ID, "reason", reason)
	return true
}

// parkLocked keeps m under key for grace; then it leaves with reason. h.mu is held.
func (h *Hub) parkLocked(key string, m *bus.Member, rs *resumeSink, turn bool, grace time.Duration, reason string) {
	p := &parked{key: key, member: m, sink: rs, turn: turn}
	o := h.owners[m]
	if o == nil {
		o = &owner{}
		h.owners[m] = o
	}
	o.s, o.p = nil, p
	// Keep events from now on, so none is lost to the dead connection. An overflow happens
	// inside a bus delivery, under the bus's locks: leaving from there would deadlock, so the
	// timer's goroutine does it (Reset on a fired or stopped timer runs it again; expire
	// tolerates that).
	p.timer = time.AfterFunc(grace, func() { h.expire(p, reason) })
	rs.park(func() { p.timer.Reset(0) })
	h.parked[key] = p
	h.stats.Parked.Add(1)
}

// take hands over the presence of key: a parked one, or one whose connection is still open
// (returned as old, already detached from its session). m is nil when there is none.
func (h *Hub) take(key string) (m *bus.Member, rs *resumeSink, old bus.Sink, turn bool, o *owner) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if p := h.parked[key]; p != nil {
		delete(h.parked, key)
		p.timer.Stop()
		h.stats.Parked.Add(-1)
		return p.member, p.sink, nil, p.turn, h.taken(p.member)
	}
	s := h.holders[key]
	if s == nil {
		return nil, nil, nil, false, nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.member == nil {
		return nil, nil, nil, false, nil
	}
	delete(h.holders, key)
	m, rs = s.member, s.rsink
	s.member, s.rsink, s.key = nil, nil, ""
	return m, rs, s.sink, s.turn, h.taken(m)
}

// taken marks m as held by no one while a resume takes it over, and returns its record.
// Caller holds h.mu.
func (h *Hub) taken(m *bus.Member) *owner {
	o := h.owners[m]
	if o == nil {
		o = &owner{}
		h.owners[m] = o
	}
	o.s, o.p = nil, nil
	return o
}

// expire gives up a parked presence: it leaves its room with the reason it was lost for.
func (h *Hub) expire(p *parked, reason string) {
	h.mu.Lock()
	if h.parked[p.key] != p {
		h.mu.Unlock()
		return // resumed, or expired already
	}
	delete(h.parked, p.key)
	if o := h.owners[p.member]; o != nil && o.p == p {
		delete(h.owners, p.member)
	}
	h.mu.Unlock()
	p.sink.forget()
	h.spendAll(p.sink)
	h.stats.Parked.Add(-1)
	h.stats.ResumesExpired.Add(1)
	h.bus.Leave(p.member, reason)
	h.log.Debug("peer left", "room", p.member.Room, "peer", p.member.Info.ID, "reason", reason, "resumed", false)
}

// expireAll gives up every parked presence now.
func (h *Hub) expireAll() {
	h.mu.Lock()
	ps := make([]*parked, 0, len(h.parked))
	for _, p := range h.parked {
		ps = append(ps, p)
		p.timer.Stop()
	}
	h.mu.Unlock()
	for _, p := range ps {
		h.expire(p, "shutdown")
	}
}

// resume takes back the presence a resume token names, for this session, welcoming it with
// the join's id: a presence this node keeps after its connection was lost, or one whose
// connection still looks open (the client saw it die first) — that connection is then closed;
// else, on a valid unspent token, the presence is re-created (restore). It reports false when
// the token cannot be used: the join goes on as a new presence.
func (s *Session) resume(token, room string, id []byte, last uint64) bool {
	h := s.hub
	c, err := h.tokens.Verify(token, time.Now())
	if err != nil || (room != "" && c.Room != room) {
		h.stats.ResumesRefused.Add(1)
		h.log.Debug("resume token refused", "err", err)
		return false
	}
	h.mu.Lock()
	ended := h.endedLocked(c.ID)
	h.mu.Unlock()
	if ended {
		err = resume.ErrSpent
	} else {
		err = h.tokens.Spend(context.Background(), c)
	}
	if err != nil {
		h.stats.ResumesRefused.Add(1)
		h.log.Debug("resume token refused", "err", err)
		return false
	}
	key := presenceKey(c.Room, c.Peer)
	m, rs, old, turn, o := h.take(key)
	if m == nil {
		h.mu.Lock()
		ended = h.endedLocked(c.ID)
		h.mu.Unlock()
		if ended {
			// Its presence ended here (removed, replaced) while this resume spent the
			// token: it is not re-created.
			h.stats.ResumesRefused.Add(1)
			h.log.Debug("resume token refused: its presence ended meanwhile", "room", c.Room, "peer", c.Peer)
			return false
		}
		return s.restore(c, id, last)
	}
	rs.spent(c.ID)
	room = m.Room
	since := rs.counter()
	others := h.peersNow(m)
	newToken := h.mint(rs)
	welcome := &protocol.Event{
		Type: protocol.TypeWelcome,
		ID:   id,
		Welcome: &protocol.Welcome{
			Self:         m.Info.ID,
			Room:         room,
			Peers:        others,
			ICEServers:   s.iceFor(m.Info.ID, turn),
			Resume:       newToken,
			ResumeMillis: h.cfg.ResumeGrace.Milliseconds(),
			Resumed:      true,
		},
	}
	if old != nil {
		if cl, ok := old.(Closer); ok {
			cl.CloseConn("replaced")
		}
	}
	if !rs.attach(s.sink, welcome, last, since) {
		// Its outbox overflowed while we took it: it is gone.
		h.mu.Lock()
		if h.owners[m] == o {
			delete(h.owners, m)
		}
		h.mu.Unlock()
		h.spendAll(rs)
		h.bus.Leave(m, "slow")
		return false
	}
	if ok, code := h.adopt(s, m, o, rs, key, turn); !ok {
		// The server ended the presence while we took it (removed, replaced): the client
		// hears why, after its welcome, and goes.
		rs.forget()
		h.spendAll(rs)
		s.sendKicked(code)
		return true
	}
	h.scheduleRefresh(rs)
	h.stats.Resumes.Add(1)
	h.log.Debug("peer resumed", "room", room, "peer", m.Info.ID, "replaced", old != nil, "last", last, "seq", welcome.Welcome.Seq)
	return true
}

// peersNow lists m's room's other members now, in join order (none if the bus cannot say).
func (h *Hub) peersNow(m *bus.Member) []protocol.PeerInfo {
	ds, err := h.bus.Peers(context.Background(), m.Room)
	if err != nil && !errors.Is(err, bus.ErrNoRoom) {
		h.log.Warn("list peers for a resumed welcome", "room", m.Room, "err", err)
	}
	out := make([]protocol.PeerInfo, 0, len(ds))
	for _, d := range ds {
		if d.Info.ID != m.Info.ID {
			out = append(out, d.Info)
		}
	}
	return out
}
