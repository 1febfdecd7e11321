package hub

import (
	"context"
	"errors"
	"log/slog"
	"net/netip"
	"sync"
	"time"

	"github.com/switchboard-rtc/switchboard/internal/bus"
	"github.com/switchboard-rtc/switchboard/protocol"
)

// Session is one connection's presence in the hub. Its methods are called by the transport
// from one goroutine at a time.
type Session struct {
	hub    *Hub
	sink   bus.Sink
	bucket bucket

	// mu guards the presence: another connection resuming it takes it over.
	mu      sync.Mutex
	member  *bus.Member
	rsink   *resumeSink // the member's sink and outbox when resumable
	key     string      // the presence's key in the hub's maps when resumable
	joining bool        // an asynchronous join is under way (until its welcome or failure)
	joinSeq uint64      // numbers asynchronous joins, so a finished one never clears a later one's flag
	ended   bool        // the transport ended the session (End)
	// endReason and endLost are End's arguments.
	endReason string
	endLost   bool
	// fixedID, when set, is the peer id every join of this session takes (UsePeerID).
	fixedID protocol.PeerID
	// accessToken is the token the transport received with the connection (SetAccessToken).
	accessToken string
	// turn: the presence's grant includes TURN credentials.
	turn bool
	// async: joins on a bus whose joins block run on their own goroutine (AsyncJoins).
	async bool
	// muted: a restart took the session's presence (Shutdown(restart)); its connection is
	// about to close 1012 and what its client sends meanwhile gets no answer, so that the
	// client sends it again after resuming (elsewhere, or here after the restart).
	muted bool
	// client is the key of the client the connection comes from (SetClient); invalid: none.
	client netip.Prefix
}

// AsyncJoins lets the session's joins run on their own goroutine when the bus's joins wait on
// the network (a cluster bus): the transport's goroutine goes on serving other connections
// meanwhile. The outcome arrives through the sink — the welcome, or an error frame carrying
// the join's id — and Handle returns nil for a join it started. A transport that enables it
// must end the session with End. Call it before the first frame.
func (s *Session) AsyncJoins() { s.async = true }

// End ends the session for good because its connection is gone: Drop(reason) when lost is
// set (the presence may be resumed), else Leave(reason). A join still under way leaves as
// soon as it completes.
func (s *Session) End(reason string, lost bool) {
	s.mu.Lock()
	s.ended, s.endReason, s.endLost = true, reason, lost
	s.mu.Unlock()
	if lost {
		s.Drop(reason)
	} else {
		s.Leave(reason)
	}
}

// UsePeerID makes the session's joins take id as their peer id instead of a fresh one. A
// transport whose connections are addressable before they join (Socket.IO's socket.id) calls
// it once, before the first join. id must be as unguessable as protocol.NewPeerID's.
func (s *Session) UsePeerID(id protocol.PeerID) { s.fixedID = id }

// Allow charges one incoming message received at now to the session's rate limit. When the
// message is over the limit it sends the rate-limited error and reports false; the error is a
// *CloseError when the connection has been over the limit too often and must be closed.
func (s *Session) Allow(now time.Time) (bool, error) {
	if ok, kick := s.bucket.take(s.hub.cfg.RateLimit, s.hub.cfg.RateBurst, s.hub.cfg.RateStrikes, now); !ok {
		s.sendError(nil, protocol.Errorf(protocol.CodeRateLimited, "over %g messages/s", s.hub.cfg.RateLimit))
		if kick {
			s.hub.stats.Kicks.Add(1)
			return false, &CloseError{Code: ClosePolicyViolation, Reason: "rate limit exceeded", LeaveReason: "kicked"}
		}
		return false, nil
	}
	return true, nil
}

// cur returns the session's member, or nil when it is not in a room.
func (s *Session) cur() *bus.Member {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.member
}

// set makes m the session's presence.
func (s *Session) set(m *bus.Member, rsink *resumeSink, key string, turn bool) {
	s.mu.Lock()
	s.member, s.rsink, s.key, s.turn = m, rsink, key, turn
	// Welcomed: the client may leave and join again before the bus's Join has returned.
	s.joining = false
	s.mu.Unlock()
}

// Closer is implemented by sinks whose connection the hub may end: when a client resumes its
// presence on a new connection while the old one still looks open, the old one is closed.
type Closer interface {
	// CloseConn ends the connection without a goodbye; its session has no presence anymore.
	CloseConn(reason string)
}

// Peer returns the session's peer id, or "" before it joins.
func (s *Session) Peer() protocol.PeerID {
	m := s.cur()
	if m == nil {
		return ""
	}
	return m.Info.ID
}

// Room returns the session's room, or "" before it joins.
func (s *Session) Room() string {
	m := s.cur()
	if m == nil {
		return ""
	}
	return m.Room
}

// HandleFrame handles one native-protocol text frame received at now. Protocol errors are
// answered with error frames; a *CloseError return means the transport must close the
// connection with that code.
func (s *Session) HandleFrame(b []byte, now time.Time) error {
	if ok, err := s.Allow(now); !ok {
		return err
	}
	var f protocol.Frame
	if perr := protocol.DecodeFrame(b, &f); perr != nil {
		s.sendError(f.ID, perr)
		return nil
	}
	if perr := s.Handle(&f); perr != nil {
		s.sendError(f.ID, perr)
		if closesConnection(perr.Code) {
			return &CloseError{Code: ClosePolicyViolation, Reason: perr.Code.String(), LeaveReason: "kicked"}
		}
	}
	return nil
}

// Handle handles one decoded frame. It returns the protocol error to answer with, if any;
// successful requests that carry an id are acknowledged here.
func (s *Session) Handle(f *protocol.Frame) *protocol.Error {
	s.mu.Lock()
	muted := s.muted
	s.mu.Unlock()
	if muted {
		return nil // no answer: the client sends it again after resuming
	}
	perr := s.handle(f)
	if perr != nil {
		// A restart that muted the session while this frame was handled (the relay found no
		// presence any more) gets no answer either: an error would make the client drop it.
		s.mu.Lock()
		muted = s.muted
		s.mu.Unlock()
		if muted {
			return nil
		}
	}
	return perr
}

// handle dispatches f by type.
func (s *Session) handle(f *protocol.Frame) *protocol.Error {
	switch f.Type {
	case protocol.TypeJoin:
		return s.join(f)
	case protocol.TypeLeave:
		if s.cur() == nil {
			return protocol.Errorf(protocol.CodeNotJoined, "not in a room")
		}
		s.Leave("left")
		s.ack(f.ID)
		return nil
	case protocol.TypeOffer, protocol.TypeAnswer, protocol.TypeICECandidate, protocol.TypeMessage:
		return s.relay(f)
	case protocol.TypeRead:
		s.MarkRead(f.Seq)
		return nil
	case protocol.TypeICEServers:
		m := s.cur()
		if m == nil {
			return protocol.Errorf(protocol.CodeNotJoined, "join a room first")
		}
		s.mu.Lock()
		turn := s.turn
		s.mu.Unlock()
		s.sink.Send(&protocol.Event{Type: protocol.TypeICEServers, ID: f.ID, ICEServers: s.iceFor(m.Info.ID, turn)})
		return nil
	}
	return protocol.Errorf(protocol.CodeUnknownType, "unknown type")
}

// RejectBinary answers a binary frame.
func (s *Session) RejectBinary() {
	s.sendError(nil, protocol.Errorf(protocol.CodeBinaryUnsupported, "binary frames are not supported; send JSON text"))
}

func (s *Session) relay(f *protocol.Frame) *protocol.Error {
	s.mu.Lock()
	m, rs := s.member, s.rsink
	s.mu.Unlock()
	if m == nil {
		return protocol.Errorf(protocol.CodeNotJoined, "join a room first")
	}
	if f.Retry && f.ID != nil && rs != nil && rs.ids.seen(f.ID) {
		// Accepted before the connection was lost: not relayed twice.
		s.hub.stats.RetriesDeduped.Add(1)
		s.ack(f.ID)
		return nil
	}
	// The relay's id goes to the receiver, and a retry says so: after a restart or a node's
	// death the ids are gone from here, and only the receiver knows whether it has the first.
	e := protocol.Event{Type: f.Type, ID: f.ID, From: m.Info.ID, Data: f.Data, Broadcast: f.Broadcast, Retry: f.Retry && f.ID != nil}
	var err error
	if f.Broadcast {
		err = s.hub.bus.Broadcast(m, &e)
	} else {
		err = s.hub.bus.Relay(m, f.Target, &e)
	}
	switch {
	case err == nil:
		if f.ID != nil && rs != nil {
			rs.ids.add(f.ID)
		}
		s.ack(f.ID)
		return nil
	case errors.Is(err, bus.ErrUnknownTarget):
		return protocol.Errorf(protocol.CodeUnknownTarget, "target is not in your room")
	default:
		s.hub.log.Warn("relay failed", "room", m.Room, "err", err)
		return protocol.Errorf(protocol.CodeUnavailable, "cannot relay now")
	}
}

// Drop ends the session because its connection was lost without a goodbye (EOF, a read
// error, missed pings). When resumption is on, the presence stays in its room for the grace
// period, for the client to take back; otherwise, or while draining, it is Leave(reason). A
// presence made the session's after a restart muted the others is muted too (muteLate).
func (s *Session) Drop(reason string) {
	s.mu.Lock()
	m, rs, key := s.member, s.rsink, s.key
	s.mu.Unlock()
	if m == nil {
		return
	}
	if rs != nil && s.hub.muteLate(s) {
		return // the node restarts: its client resumes after it, or on another node
	}
	if rs == nil || !s.hub.park(s, key, m, rs, reason) {
		s.Leave(reason)
	}
}

// Leave leaves the session's room, if any, telling the others why (see docs/protocol.md for
// reasons). Transports call it when the connection ends with a goodbye (a close frame) or is
// closed by the server.
func (s *Session) Leave(reason string) {
	if reason == bus.ReasonRestart && s.hub.muteLate(s) {
		return
	}
	s.mu.Lock()
	m, rs, key := s.member, s.rsink, s.key
	s.member, s.rsink, s.key = nil, nil, ""
	s.mu.Unlock()
	if m == nil {
		return
	}
	s.hub.release(s, m, key)
	s.hub.bus.Leave(m, reason)
	if rs != nil {
		rs.forget()
		s.hub.recordOwn(rs)
	}
	lvl := slog.LevelDebug
	if reason == "slow" || reason == "kicked" {
		lvl = slog.LevelInfo
	}
	s.hub.log.Log(context.Background(), lvl, "peer left", "room", m.Room, "peer", m.Info.ID, "reason", reason)
}

// MarkRead tells the hub the client has read every event of its presence up to seq (a mark
// ping's pong, or a read frame): they leave the outbox.
func (s *Session) MarkRead(seq uint64) {
	s.mu.Lock()
	rs := s.rsink
	s.mu.Unlock()
	if rs != nil {
		rs.markRead(seq)
	}
}

func (s *Session) ack(id []byte) {
	if id != nil {
		s.sink.Send(&protocol.Event{Type: protocol.TypeAck, ID: id})
	}
}

func (s *Session) sendError(id []byte, perr *protocol.Error) {
	s.hub.stats.Errors[perr.Code].Add(1)
	s.sink.Send(&protocol.Event{Type: protocol.TypeError, ID: id, Err: perr})
}
