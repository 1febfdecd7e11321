package hub

import "time"

// Recovery for transports that keep their own session id across connections (Socket.IO's
// connection state recovery, internal/sioserver): the transport keeps the presence's latest
// resume token itself and takes the presence back with it, never starting a new one.

// Recover takes back, for this session, the presence a resume token names, as a resume join
// would (a presence parked or still held on this node, or else restored from the token: the
// node that held it hands it over), welcoming it with a welcome that has no id and then the
// kept events after last. Unlike a resume join it never starts a new presence: it reports
// false when the token cannot be used (invalid, spent because the presence ended, the room
// refuses it), when the session is in a room already, or while the hub drains.
func (s *Session) Recover(token string, last uint64) bool {
	if s.cur() != nil || s.hub.Ready() != nil || s.hub.cfg.ResumeGrace <= 0 {
		return false
	}
	return s.resume(token, "", nil, last)
}

// ResumeGrace returns how long a presence whose connection was lost is kept for its client
// to take back (0 when resumption is off).
func (h *Hub) ResumeGrace() time.Duration { return max(h.cfg.ResumeGrace, 0) }

// ResumeHold returns the bounds of a presence's outbox: events and bytes.
func (h *Hub) ResumeHold() (events, bytes int) { return h.cfg.ResumeHoldEvents, h.cfg.ResumeHoldBytes }
