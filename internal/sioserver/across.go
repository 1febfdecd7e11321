package sioserver

import (
	"context"
	"encoding/json"
	"time"

	"github.com/switchboard-rtc/switchboard/internal/membudget"
	"github.com/switchboard-rtc/switchboard/protocol"
)

// Connection state recovery across the nodes of a cluster. A pid is signed with the cluster's
// resume secret and names its socket (resume.MintPID), so a node that does not hold the socket
// a CONNECT's pid names can tell which socket it is without asking anyone, and refuse a forged
// pid at once. It then asks the node that holds the socket — its lobby entry's node, or its room
// presence's node in the replica — to hand it over (Cluster.AskSocket): that node checks the
// pid against the socket it holds (connected or parked; a socket that left is forgotten there
// with its pid, so its pid takes nothing), lets it go — closing its connection if it still
// looked open — and answers with what the socket is:
//
//   - in a room: the presence's resume token and the offset base of its events. This node
//     takes the presence back with the token (hub Session.Recover: the hub's restore, whose
//     bus.TakeOver gets the presence's unread events from the old node, then a Resumed join
//     under the socket id: the room hears nothing). The old node parked the presence in its
//     hub first, so a recovery that fails here ends with the presence's grace there.
//   - in the lobby: its kept events after the client's offset, its last offset and the highest
//     dropped one. The old node routes relays to it here from then on (LobbyHandOff); this node
//     registers it in the lobby (the cluster learns its new node) and replays the events.
//
// The answer is the CONNECT's as on one node: the same sid and pid (socket.recovered), or a
// fresh pid when events after the offset were lost. A pid whose socket no node holds any more
// gets a new socket, never the old one re-created.

// Cluster is what a cluster's Lobby adds for recovery across nodes (*natsbus.Bus implements
// it); New uses it when Config.Lobby has it.
type Cluster interface {
	// HandleSockets makes h answer the other nodes' socket requests (AskSocket), from being
	// the asking node.
	HandleSockets(h func(from string, req []byte) []byte) error
	// AskSocket sends req about socket id to the node that holds it and returns its answer;
	// an error when no other live node holds it or it does not answer.
	AskSocket(ctx context.Context, id protocol.PeerID, req []byte) ([]byte, error)
	// LobbyHandOff routes relays to id, a lobby socket of this node, to node from now on.
	LobbyHandOff(id protocol.PeerID, node string)
}

// moveTimeout bounds a recovery's request to another node (the cluster bounds it tighter).
const moveTimeout = 5 * time.Second

// maxMoveAnswer bounds the lobby events of a hand-over answer, in bytes of their data: the
// oldest beyond it are left out (a gap). A NATS message carries 1 MiB by default.
const maxMoveAnswer = 512 << 10

// moveReq asks a node for one of its sockets.
type moveReq struct {
	PID  string `json:"pid"`
	Last uint64 `json:"last"`
}

// moveAns is a node's answer: OK false when it does not hold the socket that pid names.
type moveAns struct {
	OK      bool         `json:"ok"`
	Room    bool         `json:"room,omitempty"`
	Token   string       `json:"token,omitempty"`
	Base    uint64       `json:"base,omitempty"`
	Off     uint64       `json:"off,omitempty"`
	Dropped uint64       `json:"dropped,omitempty"`
	Events  []movedEvent `json:"events,omitempty"`
}

// movedEvent is a kept lobby event (a relay) in a hand-over.
type movedEvent struct {
	Off  uint64          `json:"off"`
	Type protocol.Type   `json:"type"`
	From protocol.PeerID `json:"from"`
	Data []byte          `json:"data"`
}

var moveRefused = []byte(`{"ok":false}`)

// serveMove answers another node's request for a socket of this node: the socket the pid
// names is let go here and described in the answer (see above).
func (s *Server) serveMove(from string, raw []byte) []byte {
	var req moveReq
	if s.grace <= 0 || s.cluster == nil || json.Unmarshal(raw, &req) != nil || req.PID == "" {
		return moveRefused
	}
	s.sockMu.Lock()
	k := s.socks[req.PID]
	s.sockMu.Unlock()
	if k == nil {
		return moveRefused
	}
	k.mu.Lock()
	if k.ended || k.taking || k.pid != req.PID || (k.room && k.token == "") {
		k.mu.Unlock()
		return moveRefused
	}
	k.taking = true // its session's end leaves it alone from now on (detach)
	room := k.room
	k.mu.Unlock()
	if !room {
		// Relays sent from this node go there from now on; those already kept are handed over.
		s.cluster.LobbyHandOff(k.id, from)
	}
	k.mu.Lock()
	ans := moveAns{OK: true, Room: k.room, Token: k.token, Base: k.base, Off: k.off, Dropped: k.dropped}
	if !k.room {
		size := 0
		for i := len(k.kept) - 1; i >= 0; i-- {
			ke := &k.kept[i]
			if ke.off <= req.Last {
				break
			}
			if size += keptOverhead + len(ke.ev.Data); size > maxMoveAnswer {
				ans.Dropped = max(ans.Dropped, ke.off)
				break
			}
			ans.Events = append(ans.Events, movedEvent{Off: ke.off, Type: ke.ev.Type, From: ke.ev.From, Data: ke.ev.Data})
		}
		for i, j := 0, len(ans.Events)-1; i < j; i, j = i+1, j-1 {
			ans.Events[i], ans.Events[j] = ans.Events[j], ans.Events[i]
		}
	}
	out, err := json.Marshal(&ans)
	if err != nil {
		k.taking = false
		k.mu.Unlock()
		return moveRefused
	}
	old := k.cur
	k.taking = false
	k.endLocked()
	k.mu.Unlock()
	if old != nil {
		if hs := old.hubSession(); hs != nil && room {
			hs.Drop("moved") // kept by the hub for the grace: the other node takes it over
		}
		old.CloseConn("replaced")
	}
	s.log.Debug("socket handed over to another node", "sid", k.id, "node", from, "room", room)
	return out
}

// recoverRemote takes over for ss the socket pid names from the node that holds it, the
// client having read up to offset last. It reports false when pid is not ours or no node
// holds its socket: the caller connects a new one. Caller holds in; ss has no socket.
func (ss *session) recoverRemote(pid string, last uint64, now time.Time) bool {
	s := ss.srv
	sid, err := s.hub.ResumeTokens().VerifyPID(pid)
	if err != nil {
		s.stats.SocketIORecoveryRefused.Add(1)
		return false
	}
	req, _ := json.Marshal(moveReq{PID: pid, Last: last})
	ctx, cancel := context.WithTimeout(context.Background(), moveTimeout)
	raw, err := s.cluster.AskSocket(ctx, sid, req)
	cancel()
	var ans moveAns
	if err != nil || json.Unmarshal(raw, &ans) != nil || !ans.OK || (ans.Room && ans.Token == "") {
		if err != nil {
			s.log.Debug("socket recovery across nodes: nobody hands it over", "sid", sid, "err", err)
		}
		s.stats.SocketIORecoveryRefused.Add(1)
		return false
	}
	k := &sock{srv: s, id: sid, on: true, pid: pid, taking: true, off: ans.Off, base: ans.Base,
		room: ans.Room, token: ans.Token, dropped: ans.Dropped}
	k.acct = s.cfg.Budget.NewAccount(membudget.HeldEvents, k.reclaimed)

	ss.mu.Lock()
	ss.holding, ss.recGap = true, false
	ss.id, ss.sock = sid, k
	ss.mu.Unlock()
	hs := s.hub.Connect(ss, now)
	hs.SetClient(ss.client)
	hs.UsePeerID(sid)
	gap := false
	if ans.Room {
		seq := uint64(0)
		if last > ans.Base {
			seq = last - ans.Base
		}
		if !hs.Recover(ans.Token, seq) {
			ss.moveFailed(k)
			return false
		}
		ss.mu.Lock()
		gap = ss.recGap
		ss.mu.Unlock()
	} else {
		k.mu.Lock()
		k.cur = ss
		gap = ans.Dropped > last
		prev := last
		for i := range ans.Events {
			me := &ans.Events[i]
			if me.Off <= prev || me.Off > ans.Off {
				continue // read already, or out of order
			}
			prev = me.Off
			e := protocol.Event{Type: me.Type, From: me.From, Data: me.Data}
			if size := keptOverhead + len(e.Data); k.makeRoomLocked(size) {
				k.kept = append(k.kept, keptEvent{off: me.Off, size: size, ev: e})
				k.bytes += size
			} else {
				k.dropped = me.Off
			}
			ss.send(&e, me.Off)
		}
		k.mu.Unlock()
		if err := s.lobby.LobbyJoin(sid, k); err != nil {
			ss.moveFailed(k)
			return false
		}
	}

	k.mu.Lock()
	k.taking, k.cur = false, ss
	if gap {
		k.pid = s.newPID(sid) // not recovered: socket.recovered stays false
	}
	answer := appendConnected(k.id, k.pid)
	s.sockMu.Lock()
	s.socks[k.pid] = k
	s.sockMu.Unlock()
	k.mu.Unlock()
	s.recovered(ss, hs, ans.Room, answer, gap)
	s.log.Debug("socket recovered from another node", "sid", sid, "room", ans.Room, "gap", gap)
	return true
}

// moveFailed undoes a recovery from another node that could not take the socket (the hub
// refused its token, the lobby is full here). Caller holds ss.in.
func (ss *session) moveFailed(k *sock) {
	k.mu.Lock()
	k.ended, k.cur, k.taking = true, nil, false
	k.dropKeptLocked()
	k.acct.Release()
	k.mu.Unlock()
	ss.mu.Lock()
	ss.held, ss.holding, ss.heldOff = nil, false, 0
	ss.id, ss.sock = "", nil
	ss.chargeLocked()
	ss.mu.Unlock()
	ss.srv.stats.SocketIORecoveryRefused.Add(1)
}

// newPID returns a new pid for socket sid.
func (s *Server) newPID(sid protocol.PeerID) string {
	pid, err := s.hub.ResumeTokens().MintPID(sid)
	if err != nil {
		return string(protocol.NewPeerID()) // cannot happen (HMAC); such a pid recovers on this node only
	}
	return pid
}
