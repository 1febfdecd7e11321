package sioserver

import (
	"encoding/json"
	"strconv"
	"time"

	"github.com/switchboard-rtc/switchboard/internal/hub"
	"github.com/switchboard-rtc/switchboard/internal/resume"
)

// maxPIDLen bounds a pid taken from a CONNECT's auth payload (ours are signed tokens of about
// 170 characters: resume.MintPID).
const maxPIDLen = resume.MaxPIDLen

// parseRecovery reads the recovery fields of a CONNECT's auth payload, as socket.io-client
// puts them beside its own auth: "pid", a string, and "offset", the last offset it received
// (a decimal string; absent when it received none). ok is false when the payload asks for no
// recovery or asks in a form no pid of ours can take (the socket is then a new one).
func parseRecovery(auth []byte) (pid string, last uint64, ok bool) {
	if len(auth) == 0 || auth[0] != '{' {
		return "", 0, false
	}
	var a struct {
		PID    json.RawMessage `json:"pid"`
		Offset json.RawMessage `json:"offset"`
	}
	if json.Unmarshal(auth, &a) != nil || len(a.PID) < 2 || a.PID[0] != '"' {
		return "", 0, false
	}
	if json.Unmarshal(a.PID, &pid) != nil || pid == "" || len(pid) > maxPIDLen {
		return "", 0, false
	}
	if len(a.Offset) == 0 || string(a.Offset) == "null" {
		return pid, 0, true
	}
	var off string
	if a.Offset[0] != '"' || json.Unmarshal(a.Offset, &off) != nil || !decimal(off) {
		return "", 0, false
	}
	last, err := strconv.ParseUint(off, 10, 64)
	if err != nil {
		return "", 0, false
	}
	return pid, last, true
}

// decimal reports whether s is 1 to 20 ASCII digits.
func decimal(s string) bool {
	if s == "" || len(s) > 20 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// currentPID returns the socket's pid ("" when recovery is off).
func (k *sock) currentPID() string {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.pid
}

// hubSession returns the hub session ss carries (nil: none).
func (ss *session) hubSession() *hub.Session {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	return ss.hsRead
}

// recoverSocket takes the socket pid names over for ss, a session with no socket yet, the
// client having read up to offset last. It reports false when there is no such socket to take
// (never was, or ended: its presence left, its grace passed): the caller connects a new one.
// Otherwise ss carries the socket: the CONNECT is answered with its sid and pid — a fresh pid
// when events after last were lost, so the client knows it was not recovered — and the kept
// events after last follow, then live ones. Caller holds in.
func (ss *session) recoverSocket(pid string, last uint64, now time.Time) bool {
	s := ss.srv
	if s.grace <= 0 {
		return false
	}
	s.sockMu.Lock()
	k := s.socks[pid]
	s.sockMu.Unlock()
	if k == nil {
		if s.cluster != nil {
			return ss.recoverRemote(pid, last, now) // held by another node, if any
		}
		s.stats.SocketIORecoveryRefused.Add(1)
		return false
	}
	k.mu.Lock()
	if k.ended || k.taking || k.pid != pid {
		k.mu.Unlock()
		s.stats.SocketIORecoveryRefused.Add(1)
		return false
	}
	k.taking = true
	old, room, token, base := k.cur, k.room, k.token, k.base
	k.mu.Unlock()
	var oldHS *hub.Session
	if old != nil {
		oldHS = old.hubSession()
	}

	// What the socket gets before its CONNECT answer waits in held (release).
	ss.mu.Lock()
	ss.holding, ss.recGap = true, false
	ss.id, ss.sock = k.id, k
	ss.mu.Unlock()
	hs := s.hub.Connect(ss, now)
	hs.SetClient(ss.client)
	hs.UsePeerID(k.id)
	if room {
		seq := uint64(0)
		if last > base {
			seq = last - base
		}
		// The hub takes the presence back (closing the old connection if it still looks
		// open) and replays its events after seq; its welcome is kept from the client (Send).
		if !hs.Recover(token, seq) {
			ss.recoveryFailed(k, old, oldHS)
			return false
		}
	}

	k.mu.Lock()
	k.taking = false
	wasParked := k.parked
	if k.parked {
		k.parked = false
		k.timer.Stop()
	}
	prev := k.cur
	k.cur = ss
	ss.mu.Lock()
	gap := ss.recGap
	ss.mu.Unlock()
	if !room {
		gap = k.dropped > last
		for i := range k.kept {
			if ke := &k.kept[i]; ke.off > last {
				ss.send(&ke.ev, ke.off)
			}
		}
	}
	if gap {
		// Events after last were lost: a fresh pid tells the client it was not recovered
		// (socket.recovered stays false), though it keeps its id and presence.
		s.sockMu.Lock()
		delete(s.socks, k.pid)
		k.pid = s.newPID(k.id)
		s.socks[k.pid] = k
		s.sockMu.Unlock()
	}
	answer := appendConnected(k.id, k.pid)
	k.mu.Unlock()
	if wasParked {
		s.sockMu.Lock()
		s.parked--
		s.sockMu.Unlock()
		s.stats.SocketIOParked.Add(-1)
	}
	if prev != nil && prev != ss {
		prev.CloseConn("replaced") // the old connection still looked open
	}
	s.recovered(ss, hs, room, answer, gap)
	return true
}

// recoveryFailed ends the socket a recovery could not take back (the hub no longer holds its
// presence) and the connection that still carried it, if any. Caller holds ss.in.
func (ss *session) recoveryFailed(k *sock, old *session, oldHS *hub.Session) {
	s := ss.srv
	k.mu.Lock()
	k.taking = false
	cur := k.cur
	if !k.ended {
		k.endLocked()
	}
	k.mu.Unlock()
	ss.mu.Lock()
	ss.held, ss.holding, ss.heldOff = nil, false, 0
	ss.id, ss.sock = "", nil
	ss.chargeLocked()
	ss.mu.Unlock()
	if oldHS != nil {
		oldHS.Leave("closed") // nothing when the hub had given it up already
	}
	if cur != nil {
		cur.CloseConn("replaced")
	} else if old != nil {
		old.CloseConn("replaced")
	}
	s.stats.SocketIORecoveryRefused.Add(1)
}

// recovered hands the recovered socket ss its hub session hs (joined: in a room), answers
// its CONNECT (answer, then what was held for it) and counts the recovery.
func (s *Server) recovered(ss *session, hs *hub.Session, joined bool, answer func(dst []byte) []byte, gap bool) {
	ss.hs, ss.joined = hs, joined
	ss.mu.Lock()
	ss.hsRead = hs
	ss.mu.Unlock()
	ss.release(answer)
	if gap {
		s.stats.SocketIORecoveryGaps.Add(1)
	} else {
		s.stats.SocketIORecovered.Add(1)
	}
}
