package hub

import (
	"context"
	"encoding/json"
	"strings"
	"time"

	"github.com/switchboard-rtc/switchboard/internal/bus"
	"github.com/switchboard-rtc/switchboard/protocol"
)

// Access control. With Config.Authorize set, every new presence needs an access token: in the
// join itself, or given to the session by its transport (SetAccessToken: the WebSocket URL's
// access_token, Socket.IO's CONNECT auth). The grant decides the room, the name and metadata
// the others see, the identity, and whether the peer gets TURN credentials. A refused join
// gets its error frame and then the connection is closed. A resumed presence keeps its grant
// and needs no token.

// Grant is what an access token lets a join do.
type Grant struct {
	// Identity is the user (the token's sub); the room holds one presence per identity.
	Identity string
	// Room is the room the join goes to.
	Room string
	// Name and Meta are shown to the other peers; the client's own are ignored.
	Name string
	Meta []byte
	// TURN lets the peer have TURN credentials, in its welcome and on refresh.
	TURN bool
}

// Authorizer checks a join's access token (empty when there is none) for the room the client
// asked for ("" when it named none) at now, and returns the grant, or the refusal to send.
type Authorizer func(token, room string, now time.Time) (Grant, *protocol.Error)

// Kicker is implemented by sinks whose connection the hub may close with a close frame: a
// presence the server ended (another connection of the same identity, the server API) or a
// join refused for its token. The session has no presence any more when Kick is called.
type Kicker interface {
	Kick(code int, reason string)
}

// closesConnection reports whether an error with code c ends the connection after its frame.
func closesConnection(c protocol.Code) bool {
	switch c {
	case protocol.CodeTokenMissing, protocol.CodeTokenInvalid, protocol.CodeTokenExpired,
		protocol.CodeTokenNotYetValid, protocol.CodeRoomNotGranted, protocol.CodeJoinNotGranted,
		protocol.CodeReplaced, protocol.CodeRemoved, protocol.CodeRoomClosed:
		return true
	}
	return false
}

// AuthRequired reports whether joins need an access token (Config.Authorize is set).
func (h *Hub) AuthRequired() bool { return h.cfg.Authorize != nil }

// SetAccessToken gives the session the access token its transport received with the
// connection; a join without a token of its own uses it. Call it before the first frame.
func (s *Session) SetAccessToken(token string) { s.accessToken = token }

// authorize applies the hub's Authorizer to a join: it fills in m's room, identity, name and
// meta from the grant and reports whether the peer may have TURN credentials. Without an
// Authorizer the join stands as the client sent it, with TURN.
func (s *Session) authorize(f *protocol.Frame, m *bus.Member) (turn bool, perr *protocol.Error) {
	az := s.hub.cfg.Authorize
	if az == nil {
		return true, nil
	}
	token := s.accessToken
	if f.Token != nil {
		token = string(f.Token)
	}
	g, perr := az(token, m.Room, time.Now())
	if perr != nil {
		return false, perr
	}
	if len(g.Meta) > s.hub.cfg.MaxMetaBytes {
		return false, protocol.Errorf(protocol.CodeTokenInvalid, "the token's meta is %d bytes; the limit is %d", len(g.Meta), s.hub.cfg.MaxMetaBytes)
	}
	m.Room = g.Room
	m.Info.Identity, m.Info.Name, m.Info.Meta = g.Identity, g.Name, nil
	if len(g.Meta) > 0 {
		m.Info.Meta = append([]byte(nil), g.Meta...)
	}
	return g.TURN, nil
}

// owner is who holds a presence of this node, guarded by Hub.mu: a connected session, a
// parked presence, or nothing while a resume takes it over. Kick and the resume paths meet
// here: whichever comes second under Hub.mu sees what the first did.
type owner struct {
	s *Session
	p *parked
	// killed is set by Kick while a resume holds the presence between take and adopt: the
	// resume then gives it up and tells its client code.
	killed bool
	code   protocol.Code
}

// release forgets s as the holder of m and of its key ("" for none), in one step under h.mu.
func (h *Hub) release(s *Session, m *bus.Member, key string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if o := h.owners[m]; o != nil && o.s == s {
		delete(h.owners, m)
	}
	if key != "" && h.holders[key] == s {
		delete(h.holders, key)
	}
}

// adopt makes s the holder of m (and of key, its presence key) as one step under h.mu, so
// a Kick sees either no session yet (and marks o killed) or s holding m. o is the record a
// resume took over, nil for a new presence. It reports false, changing nothing, when a Kick
// ended the presence meanwhile; code is why.
func (h *Hub) adopt(s *Session, m *bus.Member, o *owner, rsink *resumeSink, key string, turn bool) (bool, protocol.Code) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if o != nil && o.killed {
		return false, o.code
	}
	if o == nil {
		o = &owner{}
	}
	o.s, o.p = s, nil
	h.owners[m] = o
	s.set(m, rsink, key, turn)
	if key != "" {
		h.holders[key] = s
	}
	return true, 0
}

// kickFunc returns m's bus.Member.Kick: the presence ends wherever it is (connected, parked
// or being resumed), its resume token dies, the connection gets an error frame with code and
// is closed, and the room hears peer-left with reason.
func (h *Hub) kickFunc(m *bus.Member) func(protocol.Code, string) {
	return func(code protocol.Code, reason string) { h.kick(m, code, reason) }
}

func (h *Hub) kick(m *bus.Member, code protocol.Code, reason string) {
	var s *Session
	var key string
	var parked, rs *resumeSink
	h.mu.Lock()
	o := h.owners[m]
	if o != nil {
		delete(h.owners, m)
		o.killed, o.code = true, code
		if o.p != nil && h.parked[o.p.key] == o.p {
			delete(h.parked, o.p.key)
			o.p.timer.Stop()
			h.stats.Parked.Add(-1)
			parked = o.p.sink
		}
		if o.s != nil {
			o.s.mu.Lock()
			if o.s.member == m {
				s, key, rs = o.s, o.s.key, o.s.rsink
				o.s.member, o.s.rsink, o.s.key = nil, nil, ""
			}
			o.s.mu.Unlock()
			if s != nil && key != "" && h.holders[key] == s {
				delete(h.holders, key)
			}
		}
	}
	if parked != nil {
		rs = parked
	}
	var jtis []jtiRef
	var client string
	if rs != nil {
		// Its tokens are recorded as ending in the same step as the presence goes, so that a
		// restore that spent one first and looks for the presence after does not re-create it.
		jtis, client = rs.takeTokens()
		h.endingLocked(jtis)
	}
	h.mu.Unlock()
	if rs != nil {
		rs.forget() // what it kept goes back to the memory budget
		h.spendEnding(jtis, client)
	}
	if o == nil {
		h.bus.Leave(m, reason) // not held here (leaving already): nothing to tell anyone
		return
	}
	if s != nil {
		s.sendKicked(code)
	}
	h.bus.Leave(m, reason)
	h.stats.Kicks.Add(1)
	h.log.Info("peer removed by the server", "room", m.Room, "peer", m.Info.ID, "reason", reason)
}

// sendKicked tells the session's client its presence was ended (code) and closes the
// connection.
func (s *Session) sendKicked(code protocol.Code) {
	s.sendError(nil, protocol.Errorf(code, "%s", kickMessage(code)))
	if k, ok := s.sink.(Kicker); ok {
		k.Kick(ClosePolicyViolation, code.String())
	}
}

func kickMessage(c protocol.Code) string {
	switch c {
	case protocol.CodeReplaced:
		return "the same identity joined this room from another connection"
	case protocol.CodeRemoved:
		return "the application removed you from the room"
	case protocol.CodeRoomClosed:
		return "the application closed the room"
	}
	return "the server ended your presence"
}

// iceFor returns the welcome's ICE servers for peer: with turn, everything; without, only the
// STUN URLs (TURN credentials are not minted for it).
func (h *Hub) iceFor(peer protocol.PeerID, turn bool) []byte {
	if turn {
		return h.iceServersFor(peer)
	}
	return h.stunOnly
}

// stunServers keeps the STUN URLs of servers, without credentials.
func stunServers(servers []protocol.ICEServer) []protocol.ICEServer {
	out := []protocol.ICEServer{}
	for _, s := range servers {
		var urls []string
		for _, u := range s.URLs {
			if strings.HasPrefix(u, "stun:") || strings.HasPrefix(u, "stuns:") {
				urls = append(urls, u)
			}
		}
		if len(urls) > 0 {
			out = append(out, protocol.ICEServer{URLs: urls})
		}
	}
	return out
}

// initSTUN computes the ICE servers of peers without the TURN grant.
func (h *Hub) initSTUN() error {
	all := h.cfg.ICEServers
	if h.cfg.ICEServersFor != nil {
		all = append(append([]protocol.ICEServer{}, all...), h.cfg.ICEServersFor("", time.Now())...)
	}
	b, err := json.Marshal(stunServers(all))
	h.stunOnly = b
	return err
}

// Admin operations for the server API, over the bus (so they reach every node).

// Rooms lists the rooms with members.
func (h *Hub) Rooms(ctx context.Context) ([]bus.RoomSummary, error) { return h.bus.Rooms(ctx) }

// Peers lists room's members.
func (h *Hub) Peers(ctx context.Context, room string) ([]bus.PeerDetail, error) {
	return h.bus.Peers(ctx, room)
}

// Remove ends peer's presence in room: it gets an error "removed" and is disconnected, the
// room hears peer-left with reason "removed", and its resume token is dead.
func (h *Hub) Remove(ctx context.Context, room string, peer protocol.PeerID) error {
	return h.bus.Kick(ctx, room, peer, protocol.CodeRemoved, "removed")
}

// CloseRoom removes every peer of room (error "room-closed", peer-left reason "room-closed").
func (h *Hub) CloseRoom(ctx context.Context, room string) (int, error) {
	return h.bus.CloseRoom(ctx, room, protocol.CodeRoomClosed, "room-closed")
}

// Notify sends a server-message with data to peer in room, or to the whole room when peer is "".
func (h *Hub) Notify(ctx context.Context, room string, peer protocol.PeerID, data []byte) error {
	return h.bus.Notify(ctx, room, peer, data)
}

// UpdateMeta replaces peer's metadata and announces it to the room (peer-updated).
func (h *Hub) UpdateMeta(ctx context.Context, room string, peer protocol.PeerID, meta []byte) error {
	return h.bus.UpdateMeta(ctx, room, peer, meta)
}
