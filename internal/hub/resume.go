package hub

import (
	"context"
	"errors"
	"fmt"
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
//
// Single use without a shared table a client could fill: a presence keeps the ids of its
// tokens not used yet (jtis), and a resume on the node that holds it must present one of
// them (it is then crossed off). Only a restore, of a presence this node does not hold,
// spends its token in the ledger (and counts as a join of its client). The tokens of a
// presence that ends are recorded in the ledger so that none re-creates it: always when the
// server ended it against its client's will (removed, replaced, room closed: kick) or handed
// it to another node; within its client's share of the ledger when the client ended it (a
// leave, a close, the grace passing) — past that share a client could revive a presence it
// ended itself, which is no worse than joining again, and others are unaffected.

// tokenClaims is what the tokens of a presence say (resume.Claims without the token's own
// id and times).
type tokenClaims = resume.Claims

// jtiRef is a minted token not used yet.
type jtiRef struct {
	id  string
	exp time.Time
}

// maxJTIs is how many unused tokens a presence keeps track of: with a refresh at half the
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
		// Expired ones are no use to anyone; an unexpired one that must make room is recorded
		// spent now, else it could re-create the presence after it ended.
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
	client := r.client
	r.mu.Unlock()
	if evicted != nil {
		h.recordRefs(evicted, client)
	}
	return tok
}

// use crosses jti off r's unused tokens; it reports false when jti is not one of them (used
// already, recorded, or minted elsewhere). A presence restored from a state file that has no
// token ids (open) takes any of its tokens once.
func (r *resumeSink) use(jti string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.open {
		r.open = false
		return true
	}
	for i, j := range r.jtis {
		if j.id == jti {
			r.jtis = append(r.jtis[:i], r.jtis[i+1:]...)
			return true
		}
	}
	return false
}

// takeTokens returns r's unused tokens and its client, and forgets them.
func (r *resumeSink) takeTokens() ([]jtiRef, string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	jtis := r.jtis
	r.jtis, r.open = nil, false
	return jtis, r.client
}

// tokenRefs returns a copy of r's unused tokens.
func (r *resumeSink) tokenRefs() []jtiRef {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]jtiRef(nil), r.jtis...)
}

// setClient makes client (a clientaddr key, or "") the one r's ledger entries are
// attributed to: the client of its latest connection.
func (r *resumeSink) setClient(client string) {
	r.mu.Lock()
	r.client = client
	r.mu.Unlock()
}

// recordAll records the unused tokens of a presence the server ended (or handed over) as
// spent, so none of them can re-create it. The ledger may be on the network: it runs on its
// own goroutine.
func (h *Hub) recordAll(r *resumeSink) {
	jtis, client := r.takeTokens()
	h.recordRefs(jtis, client)
}

// recordOwn records the unused tokens of a presence its client ended (a leave, a close, the
// grace passing, an overflow) within the client's share of the ledger (resume.SelfEnded).
func (h *Hub) recordOwn(r *resumeSink) {
	jtis, client := r.takeTokens()
	if len(jtis) == 0 {
		return
	}
	h.mu.Lock()
	h.endingLocked(jtis)
	h.mu.Unlock()
	h.spendEnding(jtis, client, resume.SelfEnded)
}

// recordRefs records jtis on their own goroutine, attributed to client; until the ledger has
// them, a resume on this node finds them in h.ending.
func (h *Hub) recordRefs(jtis []jtiRef, client string) {
	if len(jtis) == 0 {
		return
	}
	h.mu.Lock()
	h.endingLocked(jtis)
	h.mu.Unlock()
	h.spendEnding(jtis, client, resume.Record)
}

// WaitSpends waits until no token spend is under way (the ledger may be on the network: a
// draining server waits for them before it closes the bus), or ctx ends.
func (h *Hub) WaitSpends(ctx context.Context) error {
	for {
		h.mu.Lock()
		n, spent := len(h.ending), h.spent
		h.mu.Unlock()
		if n == 0 {
			return nil
		}
		select {
		case <-spent:
		case <-ctx.Done():
			return fmt.Errorf("hub: token spends under way: %w", ctx.Err())
		}
	}
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

// spendEnding records jtis, marked by endingLocked, in the ledger on its own goroutine. One a
// restore had spent first, or one the ledger refused (full), stays marked, in h.contested,
// until it expires: that restore may not have looked for the presence yet, and must not
// re-create it (endedLocked); a refused one can at least not re-create it here.
//
// A SelfEnded token past its client's share, or with the ledger full, is let go: its client
// may revive the presence it ended itself.
func (h *Hub) spendEnding(jtis []jtiRef, client string, kind resume.SpendKind) {
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
			close(h.spent) // WaitSpends looks again
			h.spent = make(chan struct{})
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
			err := h.tokens.Spend(ctx, resume.Claims{ID: j.id, Expires: j.exp}, client, kind)
			switch {
			case errors.Is(err, resume.ErrSpent):
				contested = append(contested, j)
			case kind == resume.SelfEnded && (errors.Is(err, resume.ErrClientShare) || errors.Is(err, resume.ErrLedgerFull)):
			case err != nil:
				contested = append(contested, j)
				h.log.Warn("record the resume tokens of a presence the server ended", "err", err)
			}
		}
	}()
}

// endedLocked reports whether jti is a token of a presence that ended here: being recorded,
// or spent by a restore while its presence ended. h.mu is held.
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

// take hands over the presence of key, if jti is one of its unused tokens (crossed off
// then): a parked one, or one whose connection is still open (returned as old, already
// detached from its session). m is nil when there is none; held is set when there is one
// but jti is not its (used already, or minted elsewhere). jti "" takes it whatever its tokens.
func (h *Hub) take(key, jti string) (m *bus.Member, rs *resumeSink, old bus.Sink, turn bool, o *owner, held bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if p := h.parked[key]; p != nil {
		if jti != "" && !p.sink.use(jti) {
			return nil, nil, nil, false, nil, true
		}
		delete(h.parked, key)
		p.timer.Stop()
		h.stats.Parked.Add(-1)
		return p.member, p.sink, nil, p.turn, h.taken(p.member), true
	}
	s := h.holders[key]
	if s == nil {
		return nil, nil, nil, false, nil, false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.member == nil {
		return nil, nil, nil, false, nil, false
	}
	if jti != "" && !s.rsink.use(jti) {
		return nil, nil, nil, false, nil, true
	}
	delete(h.holders, key)
	m, rs = s.member, s.rsink
	s.member, s.rsink, s.key = nil, nil, ""
	return m, rs, s.sink, s.turn, h.taken(m), true
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
	h.recordOwn(p.sink)
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
// the token must be one of the presence's unused ones. Else, on a valid token unspent in the
// ledger, the presence is re-created (restore). It reports false when the token cannot be
// used: the join goes on as a new presence.
func (s *Session) resume(token, room string, id []byte, last uint64) bool {
	h := s.hub
	c, err := h.tokens.Verify(token, time.Now())
	if err != nil || (room != "" && c.Room != room) {
		h.stats.ResumesRefused.Add(1)
		h.log.Debug("resume token refused", "err", err)
		return false
	}
	key := presenceKey(c.Room, c.Peer)
	m, rs, old, turn, o, held := h.take(key, c.ID)
	if m == nil {
		if held {
			h.stats.ResumesRefused.Add(1)
			h.log.Debug("resume token refused: not an unused token of its presence", "room", c.Room, "peer", c.Peer)
			return false
		}
		if last > maxRestoreLast {
			h.stats.ResumesRefused.Add(1)
			h.log.Debug("restore refused: last beyond any counter", "room", c.Room, "peer", c.Peer, "last", last)
			return false
		}
		return s.restoreFrom(c, id, last)
	}
	rs.setClient(s.clientKey())
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
		h.recordOwn(rs)
		h.bus.Leave(m, "slow")
		return false
	}
	if ok, code := h.adopt(s, m, o, rs, key, turn); !ok {
		// The server ended the presence while we took it (removed, replaced): the client
		// hears why, after its welcome, and goes.
		rs.forget()
		h.recordAll(rs)
		s.sendKicked(code)
		return true
	}
	h.scheduleRefresh(rs)
	h.stats.Resumes.Add(1)
	h.log.Debug("peer resumed", "room", room, "peer", m.Info.ID, "replaced", old != nil, "last", last, "seq", welcome.Welcome.Seq)
	return true
}

// restoreFrom re-creates the presence of c, a valid token of a presence this node does not
// hold, if its client may make a new presence now (a restore is a join of its client) and the
// token is unspent: it is spent in the ledger, as an entry of this session's client.
func (s *Session) restoreFrom(c resume.Claims, id []byte, last uint64) bool {
	h := s.hub
	if s.admitJoin() != nil {
		h.stats.ResumesRefused.Add(1)
		return false // the join that follows is refused as well, rate-limited
	}
	h.mu.Lock()
	ended := h.endedLocked(c.ID)
	h.mu.Unlock()
	var err error
	if ended {
		err = resume.ErrSpent
	} else {
		err = h.tokens.Spend(context.Background(), c, s.clientKey(), resume.Restore)
	}
	if err == nil {
		h.mu.Lock()
		ended = h.endedLocked(c.ID)
		h.mu.Unlock()
		if ended {
			// Its presence ended here (removed, replaced) while this restore spent the
			// token: it is not re-created.
			err = resume.ErrSpent
		}
	}
	if err != nil {
		h.stats.ResumesRefused.Add(1)
		h.log.Debug("restore refused", "room", c.Room, "peer", c.Peer, "client", s.client, "err", err)
		return false
	}
	return s.restore(c, id, last)
}

// maxRestoreLast is the highest last a restore takes: a restored presence's counter starts
// there when no node can tell it, so a forged one near 2^64 would wrap it; and 2^53 is as
// far as a browser counts exactly (a JavaScript number), more than any presence ever gets.
const maxRestoreLast = 1<<53 - 1

// clientKey returns the session's client key as the ledger's entries name it ("" for none).
func (s *Session) clientKey() string {
	if !s.client.IsValid() {
		return ""
	}
	return s.client.String()
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
