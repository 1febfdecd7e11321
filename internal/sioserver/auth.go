package sioserver

import (
	"bytes"
	"encoding/json"
	"time"

	"github.com/switchboard-rtc/switchboard/internal/hub"
	"github.com/switchboard-rtc/switchboard/protocol"
)

// Access tokens (the hub's Config.Authorize set). A socket authenticates in its CONNECT's auth
// payload, {"token": "...", "room": "..."} (io(url, {auth: {token}})), and is at once a peer of
// its token's room: the seed's code, which never joins, reaches the room's peers by socket.id.
// There is no lobby: a socket is in its token's room or not connected. A refused CONNECT gets
// CONNECT_ERROR {"message", "data": {"code"}} and the Engine.IO session is closed (but for
// rate-limited, a client over its joins per second: it may CONNECT again); a presence
// the server ends (identity takeover, the server API) gets an "error" event with the code, then
// DISCONNECT, which socket.io-client does not reconnect from.

var (
	_ hub.Kicker = (*session)(nil)
	_ hub.Closer = (*session)(nil)
)

// connectWithToken answers CONNECT when the hub needs access tokens: the socket joins the room
// of the auth payload's token through the hub, and only then is the CONNECT answered — before
// the welcome and whatever the room sent meanwhile, which wait in held. Caller holds in; the
// socket is not connected.
func (ss *session) connectWithToken(auth []byte, now time.Time) error {
	token, room, perr := parseAuth(auth)
	if perr == nil {
		// A recovered socket keeps its presence and grant: its token is not checked again.
		if pid, last, ok := parseRecovery(auth); ok && ss.recoverSocket(pid, last, now) {
			return nil
		}
	}
	var hs *hub.Session
	var k *sock
	if perr == nil {
		k = ss.srv.newSock(ss)
		k.enterRoom()
		ss.mu.Lock()
		ss.sock = k // before the join: its welcome carries the presence's resume token
		ss.mu.Unlock()
		hs = ss.srv.hub.Connect(ss, now)
		hs.SetClient(ss.client)
		hs.UsePeerID(k.id)
		hs.SetAccessToken(token)
		ss.mu.Lock()
		ss.holding = true
		ss.mu.Unlock()
		perr = hs.Handle(&protocol.Frame{Type: protocol.TypeJoin, Room: room})
	}
	if perr != nil {
		retry := perr.Code == protocol.CodeRateLimited // over its client's joins: may CONNECT again
		ss.mu.Lock()
		ss.held, ss.holding, ss.heldOff = nil, false, 0
		ss.flush = !retry
		ss.sock = nil
		ss.chargeLocked()
		ss.mu.Unlock()
		if k != nil {
			k.mu.Lock()
			k.endLocked()
			k.mu.Unlock()
		}
		ss.srv.stats.Errors[perr.Code].Add(1)
		ss.sendPacket(func(dst []byte) []byte { return appendConnectError(dst, perr) })
		if retry {
			return nil
		}
		return &errClose{code: hub.ClosePolicyViolation, reason: perr.Code.String()}
	}
	ss.mu.Lock()
	ss.id, ss.hsRead = k.id, hs
	ss.mu.Unlock()
	ss.hs, ss.joined = hs, true
	ss.release(appendConnected(k.id, k.currentPID()))
	return nil
}

// parseAuth reads a CONNECT's auth payload (a JSON object, or nil when there is none): the
// token ("" when absent or null) and the room asked for (nil when absent, null or "").
func parseAuth(auth []byte) (token string, room []byte, perr *protocol.Error) {
	if auth == nil {
		return "", nil, nil
	}
	var a struct {
		Token json.RawMessage `json:"token"`
		Room  json.RawMessage `json:"room"`
	}
	if json.Unmarshal(auth, &a) != nil {
		return "", nil, protocol.Errorf(protocol.CodeBadField, "the auth payload must be an object {token, room?}")
	}
	if len(a.Token) > 0 && string(a.Token) != "null" {
		if a.Token[0] != '"' || json.Unmarshal(a.Token, &token) != nil {
			return "", nil, protocol.Errorf(protocol.CodeTokenInvalid, "auth.token must be a string: the access token")
		}
	}
	if len(a.Room) > 0 && string(a.Room) != "null" {
		var r string
		if a.Room[0] != '"' || json.Unmarshal(a.Room, &r) != nil {
			return "", nil, protocol.Errorf(protocol.CodeBadField, "auth.room must be a string: a room name")
		}
		if r != "" {
			room = []byte(r)
		}
	}
	return token, room, nil
}

// appendConnectError appends CONNECT_ERROR for the main namespace:
// 44{"message":...,"data":{"code":...}}, which socket.io-client reports as a connect_error
// whose message and data.code these are.
func appendConnectError(dst []byte, perr *protocol.Error) []byte {
	dst = append(dst, eioMessage, sioConnectError)
	dst = append(dst, `{"message":`...)
	dst = protocol.AppendString(dst, perr.Message)
	dst = append(dst, `,"data":{"code":`...)
	dst = protocol.AppendString(dst, perr.Code.String())
	return append(dst, "}}"...)
}

// release ends holding: the CONNECT answer first builds goes out, then what was held, in order.
// Caller holds in.
func (ss *session) release(first func(dst []byte) []byte) {
	ss.mu.Lock()
	held := ss.held
	ss.held, ss.holding = nil, false
	ss.sent, ss.heldOff = max(ss.sent, ss.heldOff), 0
	if ss.closed {
		ss.mu.Unlock()
		return
	}
	if ws := ss.ws; ws != nil {
		// Still under mu, so nothing sent meanwhile overtakes them.
		ws.SendText(first)
		for len(held) > 0 {
			pkt := held
			if i := bytes.IndexByte(held, recordSeparator); i >= 0 {
				pkt, held = held[:i], held[i+1:]
			} else {
				held = nil
			}
			ws.SendText(func(dst []byte) []byte { return append(dst, pkt...) })
		}
	} else {
		n := len(ss.queue)
		if n > 0 {
			ss.queue = append(ss.queue, recordSeparator)
		}
		ss.queue = first(ss.queue)
		if len(held) > 0 {
			ss.queue = append(append(ss.queue, recordSeparator), held...)
		}
		ss.srv.stats.BytesOut.Add(uint64(len(ss.queue) - n))
	}
	ss.chargeLocked()
	ss.mu.Unlock()
	select {
	case ss.wake <- struct{}{}:
	default:
	}
}

// leaveWithToken handles leave when sockets live in their token's room: the socket leaves it
// (acknowledged), then is disconnected, as there is nowhere else for it to be. Caller holds in.
func (ss *session) leaveWithToken(ack int64) error {
	ss.hs.Leave("left")
	ss.joined = false
	ss.reply(ack, nil)
	ss.sendPacket(appendDisconnect)
	ss.mu.Lock()
	ss.flush = true
	ss.mu.Unlock()
	return &errClose{code: closeNormal, reason: "left"}
}

// appendDisconnect appends DISCONNECT for the main namespace.
func appendDisconnect(dst []byte) []byte { return append(dst, eioMessage, sioDisconnect) }

// Kick implements hub.Kicker: the server ended the socket's presence (its identity joined
// again elsewhere, the server API removed it or closed its room) and has sent the "error"
// event with the code. The socket gets DISCONNECT, after which socket.io-client does not
// reconnect ("io server disconnect"), and the Engine.IO session closes: on WebSocket with a
// close frame (code, reason), on polling with the close packet after the GET that collects
// the rest. It takes no lock the caller may hold (not in: it may run on another socket's
// goroutine).
func (ss *session) Kick(code int, reason string) {
	ss.sendPacket(appendDisconnect)
	ss.mu.Lock()
	ws := ss.ws
	if ss.holding {
		ws = nil // the CONNECT answer is still due: the timers close after it (release)
	}
	if ws == nil && ss.doom == "" && !ss.closed {
		ss.doom, ss.doomCode, ss.flush = reason, code, true
	}
	ss.mu.Unlock()
	if ws != nil {
		ws.Close(code, reason)
	}
}

// CloseConn implements hub.Closer: the hub moved the socket's presence elsewhere (a client
// resumed it). The session closes: at once on WebSocket, within a timer tick on polling. It
// takes no lock the caller may hold.
func (ss *session) CloseConn(reason string) {
	ss.mu.Lock()
	ws := ss.ws
	if ws == nil && ss.doom == "" {
		ss.doom = reason
	}
	ss.mu.Unlock()
	if ws != nil {
		ws.Close(closeNormal, reason)
	}
}
