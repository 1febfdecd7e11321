package sioserver

import (
	"bytes"
	"sync"
	"time"

	"github.com/switchboard-rtc/switchboard/internal/membudget"
	"github.com/switchboard-rtc/switchboard/protocol"
)

// Connection state recovery, as socket.io-client 4.6+ expects it from a server with
// connectionStateRecovery: the CONNECT answer carries the socket's pid, {"sid","pid"}; every
// EVENT the socket gets as part of its state carries its offset, a decimal string, as its last
// argument; a client whose connection was lost connects again with auth {pid, offset, ...} and,
// when the server still holds the socket, gets the same sid and the same pid back
// (socket.recovered), then the events after offset, in order, then live ones.
//
// A pid names a socket for its whole life (128 random bits, unguessable like a socket id) and
// takes back only a socket this node still holds: connected (the client saw its connection die
// first; that connection is then closed) or parked, for the hub's resume grace after a lost
// connection. A socket that left (DISCONNECT, kicked, slow, the grace over) is forgotten with
// its pid: the pid then gets a new socket. Offsets number the socket's events: in a room,
// offset = base + the presence's seq (the hub's outbox keeps the events and replays those
// after it: Session.Recover); in the lobby, the socket's own outbox (below), bounded like the
// hub's (ResumeHold events and bytes, charged to the memory budget): connected and full, the
// oldest are dropped (a recovery before them says not recovered: a fresh pid); parked and
// full, the socket is given up. The client's reads are known from its pongs (every event
// written before a ping was read) and, on polling, from its next GET.

// sock is one Socket.IO socket across the Engine.IO sessions that carry it, and in the lobby
// its bus.Sink.
type sock struct {
	srv *Server
	id  protocol.PeerID
	on  bool // recovery is on: it has a pid, its events offsets

	mu      sync.Mutex
	pid     string   // its pid (a recovery that missed events gives it a new one)
	cur     *session // the session carrying it; nil while parked
	taking  bool     // a recovery is taking it over
	parked  bool
	ended   bool        // gone for good: its pid takes nothing back
	off     uint64      // the last offset given
	base    uint64      // in a room: the presence's event seq N has offset base+N
	room    bool        // in a room: the hub holds its presence
	token   string      // the room presence's latest resume token
	kept    []keptEvent // lobby events not known read, in offset order
	bytes   int
	dropped uint64 // the highest lobby offset dropped unread (connected and full)
	timer   *time.Timer
	acct    *membudget.Account
	charged int64
}

// keptEvent is a lobby event kept for a recovery.
type keptEvent struct {
	off  uint64
	size int
	ev   protocol.Event
}

// keptOverhead is what a kept event costs besides its data.
const keptOverhead = 128

// newSock returns a new socket carried by ss and registers its pid (recovery on).
func (s *Server) newSock(ss *session) *sock {
	k := &sock{srv: s, id: protocol.NewPeerID(), cur: ss, on: s.grace > 0}
	if k.on {
		k.pid = s.newPID(k.id)
		k.acct = s.cfg.Budget.NewAccount(membudget.HeldEvents, k.reclaimed)
		s.sockMu.Lock()
		s.socks[k.pid] = k
		s.sockMu.Unlock()
	}
	return k
}

// forget takes k's pid out of the table.
func (s *Server) forget(k *sock, wasParked bool) {
	if !k.on {
		return
	}
	s.sockMu.Lock()
	if s.socks[k.pid] == k {
		delete(s.socks, k.pid)
	}
	if wasParked {
		s.parked--
		s.stats.SocketIOParked.Add(-1)
	}
	s.sockMu.Unlock()
}

// Send implements bus.Sink for the lobby: the event gets the socket's next offset, is kept for
// a recovery, and goes to the session carrying the socket, if any.
func (k *sock) Send(e *protocol.Event) bool {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.ended {
		return false
	}
	if !k.on {
		return k.cur != nil && k.cur.send(e, 0)
	}
	k.off++
	off := k.off
	size := keptOverhead + len(e.Data)
	if !k.makeRoomLocked(size) {
		if k.cur == nil {
			return false // given up
		}
		k.dropped = off
		return k.cur.send(e, off)
	}
	ke := keptEvent{off: off, size: size, ev: *e}
	ke.ev.Data = bytes.Clone(e.Data) // the sender's buffer is reused after Send
	ke.ev.ID = nil
	k.kept = append(k.kept, ke)
	k.bytes += size
	if k.cur == nil {
		return true
	}
	return k.cur.send(e, off)
}

// makeRoomLocked makes room for an event of size in the lobby outbox and charges it. It
// reports false when the event cannot be kept: connected, it goes out all the same (a recovery
// before it is not one); parked, the socket is given up. k.mu is held.
func (k *sock) makeRoomLocked(size int) bool {
	maxEvents, maxBytes := k.srv.hub.ResumeHold()
	for len(k.kept) > 0 && (len(k.kept) >= maxEvents || k.bytes+size > maxBytes) {
		if k.cur == nil {
			k.giveUpLocked()
			return false
		}
		k.dropped = k.kept[0].off
		k.popLocked()
	}
	if size > maxBytes || !k.acct.Add(int64(size)) {
		if k.cur == nil {
			k.giveUpLocked()
		}
		return false
	}
	k.charged += int64(size)
	return true
}

func (k *sock) popLocked() {
	k.bytes -= k.kept[0].size
	k.acct.Add(-int64(k.kept[0].size))
	k.charged -= int64(k.kept[0].size)
	k.kept[0] = keptEvent{}
	k.kept = k.kept[1:]
	if len(k.kept) == 0 {
		k.kept = nil
	}
}

// dropKeptLocked lets go of every kept event. k.mu is held.
func (k *sock) dropKeptLocked() {
	if n := len(k.kept); n > 0 {
		k.dropped = max(k.dropped, k.kept[n-1].off)
	}
	k.kept, k.bytes = nil, 0
	k.acct.Add(-k.charged)
	k.charged = 0
}

// giveUpLocked ends a parked socket whose outbox overflowed: its timer ends it at once (its
// lobby entry cannot be removed from here, inside a lobby delivery). k.mu is held.
func (k *sock) giveUpLocked() {
	k.dropKeptLocked()
	k.dropped = k.off
	if k.timer != nil {
		k.timer.Reset(0)
	}
}

// reclaimed is the memory budget's drop: the kept lobby events go (parked: the socket with
// them).
func (k *sock) reclaimed() {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.cur == nil && !k.ended {
		k.giveUpLocked()
		return
	}
	k.dropKeptLocked()
}

// markRead drops the lobby events up to off and returns the room presence's seq that off
// stands for (0: none).
func (k *sock) markRead(off uint64) (seq uint64) {
	k.mu.Lock()
	defer k.mu.Unlock()
	for len(k.kept) > 0 && k.kept[0].off <= off {
		k.popLocked()
	}
	if k.room && off > k.base {
		return off - k.base
	}
	return 0
}

// roomOffset returns the offset of the room presence's event seq, and takes note of it.
func (k *sock) roomOffset(seq uint64) uint64 {
	k.mu.Lock()
	defer k.mu.Unlock()
	off := k.base + seq
	k.off = max(k.off, off)
	return off
}

// enterRoom is called before the socket joins a room: the presence's events are numbered
// after the lobby's, and the lobby's kept events are let go.
func (k *sock) enterRoom() {
	k.mu.Lock()
	k.room, k.base, k.token = true, k.off, ""
	k.dropKeptLocked()
	k.mu.Unlock()
}

// enterLobby is called when the socket is back in the lobby (its join failed, or it left).
func (k *sock) enterLobby() {
	k.mu.Lock()
	k.room, k.token = false, ""
	k.mu.Unlock()
}

// setToken keeps the room presence's latest resume token.
func (k *sock) setToken(tok string) {
	k.mu.Lock()
	k.token = tok
	k.mu.Unlock()
}

// park keeps the socket after the connection of ss was lost, for the grace. It reports false
// (the socket must end) when recovery is off, ss does not carry it, or too many are parked.
func (k *sock) park(ss *session) bool {
	s := k.srv
	k.mu.Lock()
	defer k.mu.Unlock()
	if !k.on || k.cur != ss || k.ended || s.closing.Load() {
		return false
	}
	s.sockMu.Lock()
	full := s.parked >= s.cfg.MaxSessions
	if !full {
		s.parked++
	}
	s.sockMu.Unlock()
	if full {
		s.stats.SocketIOParkRefused.Add(1)
		return false
	}
	s.stats.SocketIOParked.Add(1)
	k.cur, k.parked = nil, true
	k.timer = time.AfterFunc(s.grace, k.expire)
	return true
}

// expire ends a parked socket: its grace is over or its outbox overflowed.
func (k *sock) expire() {
	k.mu.Lock()
	if !k.parked || k.taking || k.ended {
		k.mu.Unlock()
		return
	}
	room := k.endLocked()
	k.mu.Unlock()
	if !room {
		k.srv.lobby.LobbyLeave(k.id)
	}
	// In a room, the hub gives up the presence after the same grace.
}

// endLocked marks the socket gone and forgets its pid; it reports whether it was in a room.
// k.mu is held.
func (k *sock) endLocked() (room bool) {
	wasParked := k.parked
	k.ended, k.parked, k.cur = true, false, nil
	if k.timer != nil {
		k.timer.Stop()
	}
	k.dropKeptLocked()
	k.acct.Release()
	k.srv.forget(k, wasParked)
	return k.room
}

// detach is called as the session ss carrying k ends: for a lost connection (lost) the socket
// is parked; otherwise, or when it cannot be, it ends. It reports what the caller must do with
// the socket's presence: mine is false when ss does not carry the socket any more (a recovery
// took it over), else park tells whether it was parked (the hub presence is dropped, not left).
func (k *sock) detach(ss *session, lost bool) (mine, park bool) {
	k.mu.Lock()
	if k.cur != ss {
		k.mu.Unlock()
		return false, false
	}
	if k.taking {
		k.cur = nil // a recovery is taking it over: it decides
		k.mu.Unlock()
		return false, false
	}
	k.mu.Unlock()
	if lost && k.park(ss) {
		return true, true
	}
	k.mu.Lock()
	if k.cur == ss {
		k.endLocked()
	}
	k.mu.Unlock()
	return true, false
}

// endAll ends every parked socket (the server shuts down).
func (s *Server) endAll() {
	s.sockMu.Lock()
	all := make([]*sock, 0, len(s.socks))
	for _, k := range s.socks {
		all = append(all, k)
	}
	s.sockMu.Unlock()
	for _, k := range all {
		k.mu.Lock()
		ended, room := k.ended, k.room
		if k.parked && !k.taking && !ended {
			k.endLocked()
		} else {
			ended = true
		}
		k.mu.Unlock()
		if !ended && !room {
			s.lobby.LobbyLeave(k.id)
		}
	}
}
