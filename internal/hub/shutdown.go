package hub

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/switchboard-rtc/switchboard/internal/bus"
	"github.com/switchboard-rtc/switchboard/internal/resume"
	"github.com/switchboard-rtc/switchboard/protocol"
)

// SavedPresence is a presence muted by a restart (Shutdown), as a state file keeps it for the
// next start (Restore).
type SavedPresence struct {
	Room     string          `json:"room"`
	ID       protocol.PeerID `json:"id"`
	Name     string          `json:"name,omitempty"`
	Meta     json.RawMessage `json:"meta,omitempty"`
	Identity string          `json:"identity,omitempty"`
	Joined   time.Time       `json:"joined"`
	Seq      uint64          `json:"seq"`
	TURN     bool            `json:"turn,omitempty"`
	// Tokens are the presence's unused resume tokens: a resume after the restart must
	// present one. A state file without them (an older one) lets any token of the presence
	// take it once.
	Tokens []SavedToken `json:"tokens"`
}

// SavedToken is an unused resume token of a saved presence.
type SavedToken struct {
	ID      string    `json:"id"`
	Expires time.Time `json:"exp"`
}

// Shutdown makes the hub refuse joins. Without restart it is Drain. With restart (a graceful
// restart or a drain whose clients are to come back), every resumable presence of this node
// is muted: it leaves its room telling nobody (bus.ReasonRestart), its session keeps no
// presence (its connection is then closed 1012 by the transport), and its tokens stay good
// for a resume on the restarted node or another. It returns the muted presences, in join
// order, for a state file.
func (h *Hub) Shutdown(restart bool) []SavedPresence {
	if !restart {
		h.Drain()
		return nil
	}
	h.mu.Lock()
	select {
	case <-h.draining:
	default:
		close(h.draining)
	}
	h.restarting = true
	type muted struct {
		m    *bus.Member
		rs   *resumeSink
		turn bool
	}
	var ms []muted
	for key, s := range h.holders {
		s.mu.Lock()
		if s.member != nil {
			ms = append(ms, muted{s.member, s.rsink, s.turn})
			delete(h.owners, s.member)
			s.member, s.rsink, s.key = nil, nil, ""
			s.muted = true
		}
		s.mu.Unlock()
		delete(h.holders, key)
	}
	for key, p := range h.parked {
		p.timer.Stop()
		ms = append(ms, muted{p.member, p.sink, p.turn})
		delete(h.owners, p.member)
		delete(h.parked, key)
		h.stats.Parked.Add(-1)
	}
	// The outboxes stay until ReleaseMuted, for a cluster node that hands a presence over to
	// the node where its client resumes (Member.Handover): the handover then says exactly
	// which events the client may not have read.
	for _, x := range ms {
		x.rs.mute()
		h.muted[presenceKey(x.m.Room, x.m.Info.ID)] = mutedPresence{m: x.m, rs: x.rs}
	}
	h.mu.Unlock()
	out := make([]SavedPresence, 0, len(ms))
	for _, x := range ms {
		h.bus.Leave(x.m, bus.ReasonRestart)
		seq := x.rs.counter()
		// Its tokens stay its own (a handover to another node records them); the state
		// file keeps a copy for the restarted node.
		jtis := x.rs.tokenRefs()
		toks := make([]SavedToken, len(jtis))
		for i, j := range jtis {
			toks[i] = SavedToken{ID: j.id, Expires: j.exp}
		}
		out = append(out, SavedPresence{Room: x.m.Room, ID: x.m.Info.ID, Name: x.m.Info.Name, Meta: x.m.Info.Meta,
			Identity: x.m.Info.Identity, Joined: x.m.Joined, Seq: seq, TURN: x.turn, Tokens: toks})
	}
	sortByJoined(out)
	h.log.Info("presences muted for a restart", "count", len(out))
	return out
}

// muteLate mutes the presence of s as Shutdown(restart) muted the others, for one that a join
// or resume made the session's after Shutdown collected them (it passed Ready before the
// drain began): without it, that presence would leave its room, its tokens recorded as
// ending, and its client would come back as a new presence. The transport calls it through
// Leave(bus.ReasonRestart) or Drop when the connection ends. It reports false, doing nothing,
// unless the hub restarts and s holds a resumable presence.
func (h *Hub) muteLate(s *Session) bool {
	h.mu.Lock()
	if !h.restarting {
		h.mu.Unlock()
		return false
	}
	s.mu.Lock()
	m, rs, key := s.member, s.rsink, s.key
	if m == nil || rs == nil {
		s.mu.Unlock()
		h.mu.Unlock()
		return false
	}
	s.member, s.rsink, s.key = nil, nil, ""
	s.muted = true
	s.mu.Unlock()
	if o := h.owners[m]; o != nil && o.s == s {
		delete(h.owners, m)
	}
	if key != "" && h.holders[key] == s {
		delete(h.holders, key)
	}
	rs.mute()
	h.muted[presenceKey(m.Room, m.Info.ID)] = mutedPresence{m: m, rs: rs}
	h.mu.Unlock()
	h.bus.Leave(m, bus.ReasonRestart)
	h.log.Info("presence muted for a restart after the others (its join was under way)", "room", m.Room, "peer", m.Info.ID)
	return true
}

// mutedPresence is a presence muted by Shutdown(restart), kept for a handover.
type mutedPresence struct {
	m  *bus.Member
	rs *resumeSink
}

// takeMuted returns the outbox of m if Shutdown muted it and no handover took it yet.
func (h *Hub) takeMuted(m *bus.Member) *resumeSink {
	key := presenceKey(m.Room, m.Info.ID)
	h.mu.Lock()
	defer h.mu.Unlock()
	mp, ok := h.muted[key]
	if !ok || mp.m != m {
		return nil
	}
	delete(h.muted, key)
	return mp.rs
}

// ReleaseMuted lets go of the outboxes of the presences Shutdown(restart) muted that no other
// node took over: a draining node calls it once it no longer serves handovers. Their tokens
// stay good (the presence may still be re-created from one, with a gap).
func (h *Hub) ReleaseMuted() {
	h.mu.Lock()
	ms := h.muted
	h.muted = make(map[string]mutedPresence)
	h.mu.Unlock()
	for _, mp := range ms {
		mp.rs.forget()
	}
}

func sortByJoined(ps []SavedPresence) {
	for i := 1; i < len(ps); i++ {
		for j := i; j > 0 && ps[j].Joined.Before(ps[j-1].Joined); j-- {
			ps[j], ps[j-1] = ps[j-1], ps[j]
		}
	}
}

// Restore brings back presences saved by a restart as lost ones: each rejoins its room under
// its id (bus.Member.Resumed) and is kept for the grace period, with its counter, for its
// client to resume (a resume from before the counter is told of a gap: what was not read
// before the restart is gone); those that do not come back leave with reason timeout. Call
// it before serving.
func (h *Hub) Restore(ps []SavedPresence) error {
	if h.cfg.ResumeGrace <= 0 {
		return nil
	}
	for _, p := range ps {
		if !protocol.ValidRoom(p.Room) || p.ID == "" {
			return fmt.Errorf("%w: saved presence %q in room %q", ErrBadConfig, p.ID, p.Room)
		}
		m := &bus.Member{
			Room:    p.Room,
			Info:    protocol.PeerInfo{ID: p.ID, Name: p.Name, Identity: p.Identity},
			Joined:  p.Joined,
			Resumed: true,
		}
		if len(p.Meta) > 0 {
			m.Info.Meta = append([]byte(nil), p.Meta...)
		}
		rs := h.newResumeSink(nil, p.Seq)
		rs.dropped = p.Seq // not read before the restart: a resume from before it has a gap
		rs.claims = claimsOf(m, p.TURN, h.cfg.Node)
		rs.cur = nil
		rs.open = p.Tokens == nil
		for _, t := range p.Tokens {
			if len(rs.jtis) < maxJTIs && t.ID != "" {
				rs.jtis = append(rs.jtis, jtiRef{id: t.ID, exp: t.Expires})
			}
		}
		m.Sink = rs
		m.Kick = h.kickFunc(m)
		m.Handover = h.handoverFunc(m)
		key := presenceKey(m.Room, m.Info.ID)
		// Parked before it joins: what the room sends it from the start is kept.
		h.mu.Lock()
		h.parkLocked(key, m, rs, p.TURN, h.cfg.ResumeGrace, "timeout")
		h.mu.Unlock()
		if err := h.bus.Join(context.Background(), m, 0, func([]protocol.PeerInfo) {}); err != nil {
			h.mu.Lock()
			if pk := h.parked[key]; pk != nil && pk.member == m {
				pk.timer.Stop()
				delete(h.parked, key)
				delete(h.owners, m)
				h.stats.Parked.Add(-1)
			}
			h.mu.Unlock()
			h.log.Warn("restore a saved presence", "room", p.Room, "peer", p.ID, "err", err)
		}
	}
	if len(ps) > 0 {
		h.log.Info("presences restored from the state file, kept for resumption", "count", len(ps), "grace", h.cfg.ResumeGrace)
	}
	return nil
}

// ResumeSecrets returns the secrets of the hub's resume tokens, the signing one first (for a
// state file).
func (h *Hub) ResumeSecrets() [][]byte { return h.tokens.Secrets() }

// ResumeTokens returns the hub's resume tokens (for their ledger's metrics).
func (h *Hub) ResumeTokens() *resume.Tokens { return h.tokens }
