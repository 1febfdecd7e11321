package hub

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"sync"
	"time"
	"unsafe"

	"github.com/switchboard-rtc/switchboard/internal/bus"
	"github.com/switchboard-rtc/switchboard/internal/membudget"
	"github.com/switchboard-rtc/switchboard/protocol"
)

// Resumption: when a connection is lost (EOF or missed pings, not a close frame or a leave),
// its presence stays in the room for ResumeGrace. Events for it are held, bounded, and the
// client may take the presence back by joining with the resume token of its last welcome: the
// new connection gets the same peer id, a welcome marked resumed, then the held events in
// order. The other peers see nothing — their peer connections to it, which do not depend on
// the signaling socket, carry on. If the grace period ends or the held events overflow, the
// presence leaves with the reason the connection was lost for.

// resumeSink is a resumable member's bus.Sink. It stays the same across connections: it
// forwards to the current connection's sink, or holds events while there is none.
type resumeSink struct {
	mu        sync.Mutex
	cur       bus.Sink // nil while parked
	held      []*protocol.Event
	heldBytes int
	over      bool   // the hold overflowed: the presence is being given up
	onOver    func() // called once, under mu, when the hold overflows
	maxEvents int
	maxBytes  int
	acct      *membudget.Account // what is held, charged to the memory budget while parked
}

// Send implements bus.Sink.
func (r *resumeSink) Send(e *protocol.Event) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.cur != nil {
		return r.cur.Send(e)
	}
	if r.over {
		return false
	}
	size := eventSize(e)
	if len(r.held) >= r.maxEvents || r.heldBytes+size > r.maxBytes || !r.acct.Add(int64(size)) {
		r.overflowLocked()
		return false
	}
	r.held = append(r.held, cloneEvent(e))
	r.heldBytes += size
	return true
}

// overflowLocked gives up what is held: the presence is to leave (onOver). r.mu is held.
func (r *resumeSink) overflowLocked() {
	r.over, r.held, r.heldBytes = true, nil, 0
	r.acct.Release()
	if r.onOver != nil {
		r.onOver()
	}
}

// park detaches the current connection: events are held from now on, charged to b; the
// budget's reclaimer may drop them (as an overflow) when they are among its biggest holders.
func (r *resumeSink) park(b *membudget.Budget, onOver func()) {
	r.mu.Lock()
	r.cur, r.held, r.heldBytes, r.over, r.onOver = nil, nil, 0, false, onOver
	var acct *membudget.Account
	acct = b.NewAccount(membudget.HeldEvents, func() { r.dropHeld(acct) })
	r.acct = acct
	r.mu.Unlock()
}

// dropHeld is the memory budget's drop of the hold charged to acct: as if it had overflowed.
// A drop chosen for an earlier park (resumed since, and parked again) does nothing.
func (r *resumeSink) dropHeld(acct *membudget.Account) {
	r.mu.Lock()
	if r.acct == acct && r.cur == nil && !r.over {
		r.overflowLocked()
	}
	r.mu.Unlock()
}

// forget lets go of what is held when the parked presence expires or is ended: nothing is
// held any more (events may still come until it has left its room).
func (r *resumeSink) forget() {
	r.mu.Lock()
	r.held, r.heldBytes, r.over, r.onOver = nil, 0, true, nil
	r.acct.Release()
	r.mu.Unlock()
}

func (r *resumeSink) overflowed() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.over
}

// attach hands the presence to sink: first the welcome, then the held events, then whatever
// comes next. It reports false, and changes nothing, if the hold overflowed.
func (r *resumeSink) attach(sink bus.Sink, welcome *protocol.Event) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.over {
		return false
	}
	sink.Send(welcome)
	for _, e := range r.held {
		sink.Send(e)
	}
	r.cur, r.held, r.heldBytes, r.onOver = sink, nil, 0, nil
	r.acct.Release()
	return true
}

// eventOverhead is what a held event costs besides its bytes: the copied struct and the
// pointer to it.
const eventOverhead = int(unsafe.Sizeof(protocol.Event{})) + 8

// eventSize approximates an event's memory while held.
func eventSize(e *protocol.Event) int {
	n := eventOverhead + len(e.Data) + len(e.Reason)
	if e.Peer != nil {
		n += len(e.Peer.ID) + len(e.Peer.Name) + len(e.Peer.Meta)
	}
	return n
}

// cloneEvent copies what an event borrows from its sender: relayed data aliases the sender's
// read buffer and is only valid during Send.
func cloneEvent(e *protocol.Event) *protocol.Event {
	c := *e
	c.Data = bytes.Clone(e.Data)
	return &c
}

// parked is a lost connection's presence waiting to be resumed.
type parked struct {
	token  string
	member *bus.Member
	sink   *resumeSink
	timer  *time.Timer
	turn   bool // the presence's grant includes TURN
}

// newResumeToken returns 128 random bits, base64url.
func newResumeToken() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never returns an error (Go 1.24+).
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// park keeps the presence m of s for the grace period under its resume token. It reports
// false, keeping nothing, once the hub drains or when another connection took it over.
func (h *Hub) park(s *Session, token string, m *bus.Member, rs *resumeSink, reason string) bool {
	p := &parked{token: token, member: m, sink: rs}
	h.mu.Lock()
	defer h.mu.Unlock()
	select {
	case <-h.draining:
		return false
	default:
	}
	if h.holders[token] != s {
		return false
	}
	s.mu.Lock()
	if s.member != m {
		s.mu.Unlock()
		return false // taken over meanwhile
	}
	p.turn = s.turn
	s.member, s.rsink, s.token = nil, nil, ""
	s.mu.Unlock()
	delete(h.holders, token)
	o := h.owners[m]
	if o == nil {
		o = &owner{}
		h.owners[m] = o
	}
	o.s, o.p = nil, p
	// Hold events from now on, so none is lost to the dead connection. An overflow happens
	// inside a bus delivery, under the bus's locks: leaving from there would deadlock, so the
	// timer's goroutine does it (Reset on a fired or stopped timer runs it again; expire
	// tolerates that).
	p.timer = time.AfterFunc(h.cfg.ResumeGrace, func() { h.expire(p, reason) })
	rs.park(h.cfg.Budget, func() { p.timer.Reset(0) })
	h.parked[token] = p
	h.stats.Parked.Add(1)
	h.log.Debug("peer connection lost; presence kept for resumption", "room", m.Room, "peer", m.Info.ID, "reason", reason)
	return true
}

// take hands over the presence of token in room: a parked one, or one whose connection is
// still open (returned as old, already detached from its session). m is nil when there is
// none.
func (h *Hub) take(token, room string) (m *bus.Member, rs *resumeSink, old bus.Sink, turn bool, o *owner) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if p := h.parked[token]; p != nil && (room == "" || p.member.Room == room) {
		delete(h.parked, token)
		p.timer.Stop()
		h.stats.Parked.Add(-1)
		return p.member, p.sink, nil, p.turn, h.taken(p.member)
	}
	s := h.holders[token]
	if s == nil {
		return nil, nil, nil, false, nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.member == nil || (room != "" && s.member.Room != room) {
		return nil, nil, nil, false, nil
	}
	delete(h.holders, token)
	m, rs = s.member, s.rsink
	s.member, s.rsink, s.token = nil, nil, ""
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
	if h.parked[p.token] != p {
		h.mu.Unlock()
		return // resumed, or expired already
	}
	delete(h.parked, p.token)
	if o := h.owners[p.member]; o != nil && o.p == p {
		delete(h.owners, p.member)
	}
	h.mu.Unlock()
	p.sink.forget()
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

// resume takes back the presence of token in room for this session, welcoming it with the
// join's id: a presence kept after its connection was lost, or one whose connection still
// looks open (the client saw it die first) — that connection is then closed. It reports
// false when there is none: the join goes on as a new presence.
func (s *Session) resume(token, room string, id []byte) bool {
	m, rs, old, turn, o := s.hub.take(token, room)
	if m == nil {
		return false
	}
	room = m.Room
	newToken := newResumeToken()
	welcome := &protocol.Event{
		Type: protocol.TypeWelcome,
		ID:   id,
		Welcome: &protocol.Welcome{
			Self:         m.Info.ID,
			Room:         room,
			ICEServers:   s.iceFor(m.Info.ID, turn),
			Resume:       newToken,
			ResumeMillis: s.hub.cfg.ResumeGrace.Milliseconds(),
			Resumed:      true,
		},
	}
	if old != nil {
		if c, ok := old.(Closer); ok {
			c.CloseConn("replaced")
		}
	}
	if !rs.attach(s.sink, welcome) {
		// Its held events overflowed while we took it: it is gone.
		s.hub.mu.Lock()
		if s.hub.owners[m] == o {
			delete(s.hub.owners, m)
		}
		s.hub.mu.Unlock()
		s.hub.bus.Leave(m, "slow")
		return false
	}
	if ok, code := s.hub.adopt(s, m, o, rs, newToken, turn); !ok {
		// The server ended the presence while we took it (removed, replaced): the client
		// hears why, after its welcome, and goes.
		s.sendKicked(code)
		return true
	}
	s.hub.stats.Resumes.Add(1)
	s.hub.log.Debug("peer resumed", "room", room, "peer", m.Info.ID, "replaced", old != nil)
	return true
}
