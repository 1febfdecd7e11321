package sioserver

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/switchboard-rtc/switchboard/internal/bus"
	"github.com/switchboard-rtc/switchboard/internal/hub"
	"github.com/switchboard-rtc/switchboard/internal/membudget"
	"github.com/switchboard-rtc/switchboard/internal/wsserver"
	"github.com/switchboard-rtc/switchboard/protocol"
)

// session is one Engine.IO connection carrying one Socket.IO socket on the main namespace.
//
// Inbound packets are handled under in, one at a time, whichever transport brings them (a
// POST, a WebSocket message); outbound packets go through mu to the WebSocket or the polling
// queue. in may be held while mu is taken, never the other way round.
type session struct {
	srv    *Server
	sid    string       // Engine.IO session id
	client netip.Prefix // the client key its handshake came from (per-client cap)

	lastPong atomic.Int64 // unix ns of the client's last pong (the handshake at first)
	pingDue  atomic.Int64 // unix ns of the first ping sent since that pong; 0: none
	lastPing atomic.Int64 // unix ns of the last ping sent on polling
	created  int64        // unix ns of the handshake

	in         sync.Mutex
	hs         *hub.Session    // nil until CONNECT
	id         protocol.PeerID // socket.id, "" until CONNECT; guarded by in and mu for writes
	joined     bool            // in a room; otherwise in the lobby
	sock       *sock           // the socket it carries (recovery.go); guarded by in and mu for writes
	skipBinary int             // binary attachments still to drop
	byClient   bool            // the client sent the close packet
	lostConn   bool            // the connection was lost without a goodbye: the socket may be recovered
	args       [][]byte        // scratch for event arguments

	mu       sync.Mutex
	ws       *wsserver.Conn // the WebSocket once upgraded (or from the start)
	queue    []byte         // polling: encoded packets waiting for a GET, 0x1e-separated
	polling  bool           // a GET is waiting
	prober   *probe         // the WebSocket probing an upgrade, until it upgrades or closes
	probing  bool           // prober got "2probe": GETs are answered with a noop at once
	closed   bool           // written under in and mu
	closedAt int64          // unix ns of the close, for a session kept to deliver its last packets
	doom     string         // set: the session must close with this reason (the timers do it)
	doomCode int            // the WebSocket close code that goes with doom (0: from the reason)
	flush    bool           // polling: the packets queued before the close must still reach a GET
	holding  bool           // packets wait in held: a CONNECT is being answered (auth.go)
	held     []byte         // packets sent while holding, 0x1e-separated
	wake     chan struct{}  // cap 1: wakes the waiting GET

	acct     *membudget.Account // queue, held and writing, charged to the memory budget (memory.go)
	writing  int                // capacity of a polling answer being written (poll)
	charged  int64              // what acct holds
	released bool               // acct was released: the session is gone
	posting  bool               // a long-polling POST is being handled (one at a time)

	// Read marks (recovery.go): offsets of the socket's events handed to the transport
	// (sent), held while a CONNECT is answered (heldOff), written before the first ping
	// not answered yet (pingOff, pingOut), in the polling answer being written (answering)
	// and in the last one written (answered: read once the next GET comes).
	hsRead    *hub.Session // hs, for read marks from outside in
	sent      uint64
	heldOff   uint64
	pingOff   uint64
	pingOut   bool
	answering uint64
	answered  uint64
	recGap    bool // the hub's welcome of a recovery said events were missed
}

// ponged records a pong: only a pong keeps the session alive (Engine.IO's heartbeat).
func (ss *session) ponged(now time.Time) {
	ss.lastPong.Store(now.UnixNano())
	ss.pingDue.Store(0)
}

// pinged records a ping sent: the client has pingTimeout to answer the first one since its
// last pong.
func (ss *session) pinged(now time.Time) { ss.pingDue.CompareAndSwap(0, now.UnixNano()) }

// pongLate reports whether the client missed its pong: pingTimeout has passed since the
// first ping it did not answer, and pingInterval + pingTimeout since its last pong (the
// Engine.IO server's timing, whose next ping goes pingInterval after a pong).
func (ss *session) pongLate(t int64, cfg *Config) bool {
	due := ss.pingDue.Load()
	return due != 0 && t-due > int64(cfg.PingTimeout) &&
		t-ss.lastPong.Load() > int64(cfg.PingInterval+cfg.PingTimeout)
}

func (ss *session) isUpgraded() bool {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	return ss.ws != nil
}

// sendPacket writes one Engine.IO packet that build appends to dst. It reports false when the
// session is gone or overflowed (and is then being closed).
func (ss *session) sendPacket(build func(dst []byte) []byte) bool {
	return ss.sendPacketOff(build, 0)
}

// sendPacketOff is sendPacket for an event of the socket whose offset is off (0: none).
func (ss *session) sendPacketOff(build func(dst []byte) []byte, off uint64) bool {
	ss.mu.Lock()
	if ss.closed || ss.doom != "" {
		ss.mu.Unlock()
		return false
	}
	if ws := ss.ws; ws != nil && !ss.holding {
		ss.mu.Unlock()
		ok := ws.SendText(build)
		if off != 0 {
			// Noted once queued, so a ping noting it goes after it.
			ss.mu.Lock()
			ss.sent = max(ss.sent, off)
			ss.mu.Unlock()
		}
		return ok
	}
	buf := &ss.queue
	if ss.holding {
		buf = &ss.held
		ss.heldOff = max(ss.heldOff, off)
	} else {
		ss.sent = max(ss.sent, off)
	}
	n := len(*buf)
	if n > 0 {
		*buf = append(*buf, recordSeparator)
	}
	*buf = build(*buf)
	if !ss.holding {
		ss.srv.stats.BytesOut.Add(uint64(len(ss.queue) - n))
	}
	over := len(ss.queue)+len(ss.held) > ss.srv.cfg.SendQueueBytes || !ss.chargeLocked()
	if over {
		ss.doomSlowLocked()
	}
	ss.mu.Unlock()
	select {
	case ss.wake <- struct{}{}:
	default:
	}
	return !over
}

// close ends the session: the socket leaves its room or the lobby, a waiting GET gets the
// close packet, a WebSocket is closed. Safe to call more than once and from any goroutine
// not holding ss.mu; callers holding ss.in use closeLocked.
func (ss *session) close(reason string) { ss.closeWith(0, reason) }

// lose ends the session because its connection was lost without a goodbye (an aborted GET,
// EOF, missed pongs): its socket is kept for a recovery (recovery.go).
func (ss *session) lose(reason string) {
	ss.in.Lock()
	defer ss.in.Unlock()
	ss.lostConn = true
	ss.closeLocked(0, reason)
}

// closeWith is close with a WebSocket close code (0: the one that goes with reason).
func (ss *session) closeWith(code int, reason string) {
	ss.in.Lock()
	defer ss.in.Unlock()
	ss.closeLocked(code, reason)
}

func (ss *session) closeLocked(code int, reason string) {
	ss.mu.Lock()
	if ss.closed {
		ss.mu.Unlock()
		return
	}
	ws := ss.ws
	linger := false
	switch {
	case ws == nil && ss.byClient:
		// The client closed: a GET waiting gets a noop to end it (Engine.IO's server);
		// nothing else is due to a client that said goodbye.
		ss.queue = append(ss.queue[:0], eioNoop)
	case ws == nil:
		// A session closed with a last word for its client (a CONNECT_ERROR, a kick's error
		// and DISCONNECT) stays until a GET collects it with the close packet (poll), or a
		// ping timeout passes (tick).
		linger = ss.flush && !ss.polling
		if len(ss.queue) > 0 {
			ss.queue = append(ss.queue, recordSeparator)
		}
		ss.queue = append(ss.queue, eioClose)
	}
	ss.closed = true
	ss.closedAt = time.Now().UnixNano()
	ss.held, ss.holding, ss.heldOff = nil, false, 0
	ss.chargeLocked()
	ss.mu.Unlock()
	select {
	case ss.wake <- struct{}{}:
	default:
	}
	if ws != nil {
		if code == 0 {
			code = closeNormal
			switch reason {
			case "shutdown":
				code = hub.CloseGoingAway
			case "restart":
				code = hub.CloseServiceRestart
			case "kicked":
				code = hub.ClosePolicyViolation
			}
		}
		ws.Close(code, reason)
	}
	ss.disconnectSocket(reason)
	if !linger {
		ss.srv.removeSession(ss)
	}
}

// fail closes the session after packet handling returned err (a protocol violation, the
// client's close packet, a rate-limit kick, a refused CONNECT). The caller must not hold ss.in.
func (ss *session) fail(err error) {
	reason := closeReason(err)
	if reason == "kicked" {
		ss.srv.log.Debug("socket.io protocol error; closing", "sid", ss.sid, "err", err)
	}
	code := 0
	var ec *errClose
	if errors.As(err, &ec) {
		code = ec.code
	}
	ss.closeWith(code, reason)
}

// disconnectSocket takes the socket off the session: a connection lost without a goodbye
// parks it for a recovery (recovery.go), anything else ends it, out of its room or the lobby.
// Caller holds in.
func (ss *session) disconnectSocket(reason string) {
	if ss.hs == nil {
		return
	}
	hs, k, joined := ss.hs, ss.sock, ss.joined
	ss.hs, ss.joined = nil, false
	ss.mu.Lock()
	ss.sock, ss.hsRead = nil, nil
	ss.mu.Unlock()
	mine, parked := k.detach(ss, ss.lostConn)
	switch {
	case !mine: // a recovery took the socket over
	case parked && joined:
		hs.Drop(reason) // the hub keeps the presence for the same grace
	case parked: // still in the lobby, its events kept
	case joined:
		hs.Leave(reason)
	default:
		ss.srv.lobby.LobbyLeave(k.id)
	}
}

// closeNormal is the WebSocket close code of an orderly close.
const closeNormal = 1000

// errClose asks the transport to close the session with a reason (and a WebSocket close code;
// 0: the one that goes with the reason).
type errClose struct {
	code   int
	reason string
}

func (e *errClose) Error() string { return "sioserver: close (" + e.reason + ")" }

// packet handles one Engine.IO packet from the client. Caller holds in. A non-nil error
// means the session must be closed (a *errClose or *hub.CloseError carries the reason).
func (ss *session) packet(p eioPacket, now time.Time) error {
	if ss.closed { // written under in (closeLocked): a closed session must not join again
		return nil
	}
	switch p.typ {
	case eioPong:
		ss.ponged(now)
		ss.notePong()
		return nil
	case eioNoop:
		return nil
	case eioPing: // in v4 the server pings: Engine.IO's server closes on this too
		return fmt.Errorf("%w: ping from the client (the server pings in Engine.IO v4)", ErrBadPacket)
	case eioClose:
		// A transport closed, not a goodbye (that is DISCONNECT): socket.io-client sends it
		// after a failed long-poll, and socket.io's server recovers such a socket too.
		ss.byClient, ss.lostConn = true, true
		return &errClose{reason: "closed"}
	case eioMessage:
		if p.binary {
			if ss.skipBinary == 0 {
				return fmt.Errorf("%w: unexpected binary message", ErrBadPacket)
			}
			ss.skipBinary--
			return nil
		}
		return ss.message(p.data, now)
	}
	return fmt.Errorf("%w: unexpected engine.io packet type %q", ErrBadPacket, p.typ)
}

// message handles one Socket.IO packet. Caller holds in.
func (ss *session) message(b []byte, now time.Time) error {
	if ss.skipBinary > 0 {
		return fmt.Errorf("%w: text packet while binary attachments are due", ErrBadPacket)
	}
	p, err := decodeSIO(b)
	if err != nil {
		return err
	}
	if !bytes.Equal(p.nsp, mainNamespace) {
		if p.typ == sioConnect {
			nsp := p.nsp
			ss.sendPacket(func(dst []byte) []byte {
				dst = append(append(append(dst, eioMessage, sioConnectError), nsp...), ',')
				return append(dst, `{"message":"Invalid namespace"}`...)
			})
			return nil
		}
		// Socket.IO v5: a packet other than CONNECT for a namespace with no socket closes
		// the connection (socket.io's server: "invalid state").
		return fmt.Errorf("%w: packet type %c for namespace %.64q, not connected", ErrBadPacket, p.typ, p.nsp)
	}
	switch {
	case p.typ == sioConnect:
		return ss.connect(p.data, now)
	case p.typ == sioConnectError:
		return fmt.Errorf("%w: CONNECT_ERROR from a client", ErrBadPacket)
	case ss.hs == nil:
		// Before CONNECT, after DISCONNECT or a refused CONNECT: "If the server does not
		// receive a CONNECT packet first, then it MUST close the connection immediately."
		return fmt.Errorf("%w: packet type %c before CONNECT", ErrBadPacket, p.typ)
	case p.typ == sioDisconnect:
		ss.disconnectSocket("left")
		return nil
	case p.typ == sioAck:
		return nil // the server never asks for acks
	}
	if ok, err := ss.hs.Allow(now); !ok {
		return err
	}
	if p.typ == sioBinaryEvent || p.typ == sioBinaryAck {
		ss.skipBinary = p.attachments
		ss.reply(p.ack, protocol.Errorf(protocol.CodeBinaryUnsupported, "binary events are not supported; send JSON"))
		return nil
	}
	return ss.event(&p)
}

// connect handles CONNECT to the main namespace: without access tokens the socket goes to
// the lobby, or is recovered when the auth payload has its pid (recovery.go; the payload is
// otherwise ignored); with them, see connectWithToken. A CONNECT while connected gets the same
// answer again. Caller holds in.
func (ss *session) connect(auth []byte, now time.Time) error {
	if ss.hs == nil && ss.srv.hub.AuthRequired() {
		return ss.connectWithToken(auth, now)
	}
	if ss.hs == nil {
		if pid, last, ok := parseRecovery(auth); ok && ss.recoverSocket(pid, last, now) {
			return nil
		}
		k := ss.srv.newSock(ss)
		if err := ss.srv.lobby.LobbyJoin(k.id, k); err != nil {
			k.mu.Lock()
			k.endLocked()
			k.mu.Unlock()
			perr := protocol.Errorf(protocol.CodeUnavailable, "this server cannot take more sockets in no room now")
			ss.srv.stats.Errors[perr.Code].Add(1)
			ss.sendPacket(func(dst []byte) []byte { return appendConnectError(dst, perr) })
			ss.mu.Lock()
			ss.flush = true
			ss.mu.Unlock()
			return &errClose{code: hub.ClosePolicyViolation, reason: perr.Code.String()}
		}
		ss.hs = ss.srv.hub.Connect(ss, now)
		ss.hs.SetClient(ss.client)
		ss.hs.UsePeerID(k.id)
		ss.mu.Lock()
		ss.id, ss.sock, ss.hsRead = k.id, k, ss.hs
		ss.mu.Unlock()
	}
	ss.sendPacket(appendConnected(ss.id, ss.sock.currentPID()))
	return nil
}

// event handles an EVENT. Caller holds in.
func (ss *session) event(p *sioPacket) error {
	args, ok := splitArgs(p.data, ss.args)
	// Keep the slice, not what it points into (a request body, a read buffer).
	defer func() { clear(args); ss.args = args[:0] }()
	if !ok || len(args) == 0 {
		return fmt.Errorf("%w: bad event arguments", ErrBadPacket)
	}
	name, _ := plainString(args[0])
	var arg []byte
	if len(args) > 1 {
		arg = args[1]
	}
	var perr *protocol.Error
	switch t := protocol.ParseType(name); t {
	case protocol.TypeOffer, protocol.TypeAnswer, protocol.TypeICECandidate, protocol.TypeMessage:
		perr = ss.relay(t, arg, p.ack)
	case protocol.TypeJoin:
		perr = ss.join(arg, p.ack)
	case protocol.TypeLeave:
		if ss.srv.hub.AuthRequired() {
			return ss.leaveWithToken(p.ack)
		}
		if !ss.joined {
			perr = protocol.Errorf(protocol.CodeNotJoined, "not in a room")
			break
		}
		ss.hs.Leave("left")
		ss.joined = false
		ss.sock.enterLobby()
		if err := ss.srv.lobby.LobbyJoin(ss.id, ss.sock); err != nil {
			ss.srv.log.Info("a socket that left its room is not in the lobby", "err", err)
		}
		ss.reply(p.ack, nil)
	default:
		perr = protocol.Errorf(protocol.CodeUnknownType, "unknown event %.64q", name)
	}
	if perr != nil {
		ss.reply(p.ack, perr)
	}
	return nil
}

// relay handles offer, answer, ice-candidate and message. Caller holds in.
func (ss *session) relay(t protocol.Type, arg []byte, ack int64) *protocol.Error {
	obj, _ := isObject(arg)
	if !obj {
		return protocol.Errorf(protocol.CodeBadField, "%s takes an object with a target", t)
	}
	broadcast := t == protocol.TypeMessage && string(field(arg, "broadcast")) == "true"
	target, ok := plainString(field(arg, "target"))
	if !ok && !broadcast {
		return protocol.Errorf(protocol.CodeMissingField, "target (a socket id) is required")
	}
	if ss.joined {
		f := protocol.Frame{Type: t, Target: target, Data: arg, Broadcast: broadcast}
		if ack >= 0 {
			f.ID = appendAckID(ack)
		}
		if perr := ss.hs.Handle(&f); perr != nil {
			return perr
		}
		return nil
	}
	// The lobby: sockets in no room reach each other by socket id, as on the seed's server.
	// With access tokens there is none: every socket is in its token's room.
	e := protocol.Event{Type: t, From: ss.id, Data: arg, Broadcast: broadcast}
	if broadcast {
		return protocol.Errorf(protocol.CodeNotJoined, "join a room to broadcast")
	}
	if ss.srv.hub.AuthRequired() {
		return protocol.Errorf(protocol.CodeNotJoined, "this socket is in no room any more")
	}
	switch err := ss.srv.lobby.LobbyRelay(ss.id, protocol.PeerID(target), &e); {
	case errors.Is(err, bus.ErrUnknownTarget):
		return protocol.Errorf(protocol.CodeUnknownTarget, "target is not a connected socket in no room")
	case err != nil:
		ss.srv.log.Warn("lobby relay failed", "err", err)
		return protocol.Errorf(protocol.CodeUnavailable, "cannot relay now")
	}
	ss.reply(ack, nil)
	return nil
}

func appendAckID(ack int64) []byte {
	return fmt.Appendf(nil, "%d", ack)
}

// join handles the join extension. Caller holds in.
func (ss *session) join(arg []byte, ack int64) *protocol.Error {
	if ss.srv.hub.AuthRequired() {
		return protocol.Errorf(protocol.CodeAlreadyJoined, "this socket is in its access token's room since it connected; connect with another token to change rooms")
	}
	if ss.joined {
		return protocol.Errorf(protocol.CodeAlreadyJoined, "already in a room; leave first")
	}
	var req struct {
		Room *string         `json:"room"`
		Name string          `json:"name"`
		Meta json.RawMessage `json:"meta"`
		V    *int            `json:"v"`
	}
	if obj, _ := isObject(arg); !obj || json.Unmarshal(arg, &req) != nil {
		return protocol.Errorf(protocol.CodeBadField, "join takes an object {room, name?, meta?}")
	}
	if req.Room == nil {
		return protocol.Errorf(protocol.CodeMissingField, "room is required")
	}
	f := protocol.Frame{Type: protocol.TypeJoin, Room: []byte(*req.Room), Name: []byte(req.Name)}
	if len(req.Meta) > 0 && string(req.Meta) != "null" {
		if req.Meta[0] != '{' {
			return protocol.Errorf(protocol.CodeBadField, "meta must be an object")
		}
		f.Meta = req.Meta
	}
	if req.V != nil {
		f.V = *req.V
		if f.V == 0 {
			f.V = -1
		}
	}
	if ack >= 0 {
		f.ID = appendAckID(ack)
	}
	// Out of the lobby first, so no lobby relay can reach the socket once it is in a room.
	ss.srv.lobby.LobbyLeave(ss.id)
	ss.sock.enterRoom()
	if perr := ss.hs.Handle(&f); perr != nil {
		ss.sock.enterLobby()
		if err := ss.srv.lobby.LobbyJoin(ss.id, ss.sock); err != nil {
			ss.srv.log.Info("a socket whose join failed is not in the lobby", "err", err)
		}
		return perr
	}
	ss.joined = true
	return nil
}

// closeReason maps a packet-handling error to the peer-left reason.
func closeReason(err error) string {
	var ec *errClose
	var ce *hub.CloseError
	switch {
	case errors.As(err, &ec):
		return ec.reason
	case errors.As(err, &ce):
		return ce.LeaveReason
	}
	return "kicked"
}
