package hub

import (
	"bytes"
	"context"
	"errors"
	"time"
	"unicode/utf8"

	"github.com/switchboard-rtc/switchboard/internal/bus"
	"github.com/switchboard-rtc/switchboard/protocol"
)

// join handles a join frame: a resume (resume.go) when it carries a usable token, else a new
// presence, welcomed through the bus (on its own goroutine when joins are asynchronous).
func (s *Session) join(f *protocol.Frame) *protocol.Error {
	s.mu.Lock()
	m, joining := s.member, s.joining
	s.mu.Unlock()
	if m != nil {
		return protocol.Errorf(protocol.CodeAlreadyJoined, "already in room %q; leave first", m.Room)
	}
	if joining {
		return protocol.Errorf(protocol.CodeAlreadyJoined, "a join is under way")
	}
	if f.V != 0 && f.V != protocol.Version {
		return protocol.Errorf(protocol.CodeUnsupportedVersion, "this server speaks protocol version %d", protocol.Version)
	}
	room := string(f.Room)
	if f.Room == nil && s.hub.cfg.Authorize == nil {
		return protocol.Errorf(protocol.CodeMissingField, "join needs \"room\"")
	}
	if f.Room != nil && !protocol.ValidRoom(room) {
		return protocol.Errorf(protocol.CodeBadField, "room names are 1-%d characters of A-Z a-z 0-9 _ - .", protocol.MaxRoomLen)
	}
	if len(f.Name) > protocol.MaxNameLen || !utf8.Valid(f.Name) {
		return protocol.Errorf(protocol.CodeMetaTooLarge, "name is over %d bytes", protocol.MaxNameLen)
	}
	if len(f.Meta) > s.hub.cfg.MaxMetaBytes {
		return protocol.Errorf(protocol.CodeMetaTooLarge, "meta is %d bytes; the limit is %d", len(f.Meta), s.hub.cfg.MaxMetaBytes)
	}
	if err := s.hub.Ready(); err != nil {
		return protocol.Errorf(protocol.CodeUnavailable, "the server is not taking joins now")
	}
	if s.async && s.hub.slowJoins {
		if f.Resume == nil {
			run, perr := s.prepareJoin(f, room)
			if perr != nil {
				return perr
			}
			s.goJoin(bytes.Clone(f.ID), run)
			return nil
		}
		// A resume may wait on the network (the token ledger, a TakeOver from the node that
		// held the presence, the join): all of it off the transport's goroutine.
		c := cloneJoin(f)
		s.goJoin(c.ID, func() *protocol.Error {
			if s.resume(string(c.Resume), room, c.ID, c.Last) {
				return nil
			}
			run, perr := s.prepareJoin(c, room)
			if perr != nil {
				return perr
			}
			return run()
		})
		return nil
	}
	if f.Resume != nil && s.resume(string(f.Resume), room, bytes.Clone(f.ID), f.Last) {
		return nil
	}
	run, perr := s.prepareJoin(f, room)
	if perr != nil {
		return perr
	}
	return run()
}

// cloneJoin copies the fields of join frame f that a join off the transport's goroutine reads
// (f aliases the transport's read buffer).
func cloneJoin(f *protocol.Frame) *protocol.Frame {
	return &protocol.Frame{Type: f.Type, ID: bytes.Clone(f.ID), Room: bytes.Clone(f.Room), Name: bytes.Clone(f.Name),
		Meta: bytes.Clone(f.Meta), Resume: bytes.Clone(f.Resume), Token: bytes.Clone(f.Token), V: f.V, Last: f.Last}
}

// goJoin runs a join (run) on its own goroutine: the session is joining until it ends; its
// error goes to the client with the join's id. A connection that ended meanwhile takes the
// presence the join made with it.
func (s *Session) goJoin(id []byte, run func() *protocol.Error) {
	s.mu.Lock()
	s.joining = true
	s.joinSeq++
	seq := s.joinSeq
	s.mu.Unlock()
	s.hub.joins.Add(1)
	go func() {
		defer s.hub.joins.Done()
		perr := run()
		s.mu.Lock()
		if s.joinSeq == seq {
			s.joining = false
		}
		ended, reason, lost := s.ended, s.endReason, s.endLost
		s.mu.Unlock()
		switch {
		case ended && lost:
			s.Drop(reason) // the connection was lost while the join was under way
		case ended:
			s.Leave(reason) // the connection went while the join was under way
		case perr != nil:
			s.sendError(id, perr)
		}
	}()
}

// prepareJoin checks a join of a new presence (admission, access) and returns run, which
// joins it to room and welcomes it.
func (s *Session) prepareJoin(f *protocol.Frame, room string) (run func() *protocol.Error, _ *protocol.Error) {
	if perr := s.admitJoin(); perr != nil {
		return nil, perr
	}
	pid := s.fixedID
	if pid == "" {
		pid = protocol.NewPeerID()
	}
	m := &bus.Member{
		Room:   room,
		Info:   protocol.PeerInfo{ID: pid, Name: string(f.Name)},
		Sink:   s.sink,
		Joined: time.Now(),
	}
	if f.Meta != nil {
		m.Info.Meta = append([]byte(nil), f.Meta...)
	}
	turn, perr := s.authorize(f, m)
	if perr != nil {
		return nil, perr
	}
	room = m.Room
	m.Kick = s.hub.kickFunc(m)
	var token, key string
	var rsink *resumeSink
	if s.hub.cfg.ResumeGrace > 0 {
		rsink = s.hub.newResumeSink(s.sink, 0)
		rsink.claims = claimsOf(m, turn, s.hub.cfg.Node)
		rsink.client = s.clientKey()
		token = s.hub.mint(rsink)
		key = presenceKey(room, m.Info.ID)
		m.Sink = rsink
		m.Handover = s.hub.handoverFunc(m) // a resume on another node takes its outbox
	}
	id := bytes.Clone(f.ID)          // f aliases the transport's read buffer; the welcome may go out later
	ice := s.iceFor(m.Info.ID, turn) // minted here, not under the room's lock
	welcome := func(others []protocol.PeerInfo) {
		// The presence is the session's before the welcome goes out: the client may answer
		// it at once, while an asynchronous Join has not returned yet.
		s.hub.adopt(s, m, nil, rsink, key, turn) // a new presence: no Kick can precede it
		if rsink != nil {
			s.hub.scheduleRefresh(rsink)
		}
		s.sink.Send(&protocol.Event{
			Type: protocol.TypeWelcome,
			ID:   id,
			Welcome: &protocol.Welcome{
				Self:         m.Info.ID,
				Room:         room,
				Peers:        others,
				ICEServers:   ice,
				Resume:       token,
				ResumeMillis: s.hub.cfg.ResumeGrace.Milliseconds(),
			},
		})
	}
	return func() *protocol.Error {
		return s.joined(room, m, s.hub.bus.Join(context.Background(), m, s.hub.cfg.MaxPeersPerRoom, welcome))
	}, nil
}

// joined maps a Join's outcome to the protocol error to answer with, if any.
func (s *Session) joined(room string, m *bus.Member, err error) *protocol.Error {
	switch {
	case err == nil:
		s.hub.log.Debug("peer joined", "room", room, "peer", m.Info.ID, "client", s.client)
		return nil
	case errors.Is(err, bus.ErrRoomFull):
		return protocol.Errorf(protocol.CodeRoomFull, "room %q has %d peers already", room, s.hub.cfg.MaxPeersPerRoom)
	case errors.Is(err, bus.ErrUnavailable):
		s.hub.log.Info("join refused: bus unavailable", "room", room, "err", err)
		return protocol.Errorf(protocol.CodeUnavailable, "the cluster cannot take joins now; try again shortly")
	default:
		s.hub.log.Warn("join failed", "room", room, "err", err)
		return protocol.Errorf(protocol.CodeUnavailable, "cannot join now")
	}
}
