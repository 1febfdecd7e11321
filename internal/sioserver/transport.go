package sioserver

import (
	"bytes"
	"fmt"
	"time"

	"github.com/switchboard-rtc/switchboard/internal/hub"
	"github.com/switchboard-rtc/switchboard/internal/stats"
	"github.com/switchboard-rtc/switchboard/internal/wsserver"
)

// wsTransport is a session's WebSocket once it carries the session.
type wsTransport session

var (
	_ wsserver.Handler     = (*wsTransport)(nil)
	_ wsserver.LossHandler = (*wsTransport)(nil)
	_ wsserver.LossHandler = (*probe)(nil)
)

func (t *wsTransport) Text(p []byte, now time.Time) error {
	ss := (*session)(t)
	pkt, err := decodePacket(p)
	if err == nil {
		if pkt.binary { // "b" prefixes only exist in polling payloads
			err = fmt.Errorf("%w: base64 binary packet on a websocket", ErrBadPacket)
		} else {
			ss.in.Lock()
			err = ss.packet(pkt, now)
			ss.in.Unlock()
		}
	}
	if err != nil {
		ss.fail(err)
	}
	return nil
}

func (t *wsTransport) Binary(p []byte, now time.Time) error {
	ss := (*session)(t)
	ss.in.Lock()
	err := ss.packet(eioPacket{typ: eioMessage, data: p, binary: true}, now)
	ss.in.Unlock()
	if err != nil {
		ss.fail(err)
	}
	return nil
}

func (t *wsTransport) Ping(now time.Time) {
	ss := (*session)(t)
	ss.pinged(now) // before the client can answer it
	ss.notePing()
	ss.sendPacket(func(dst []byte) []byte { return append(dst, eioPing) })
}

func (t *wsTransport) Closed(reason string) { (*session)(t).close(reason) }

// Lost implements wsserver.LossHandler: the WebSocket ended without a close frame.
func (t *wsTransport) Lost(reason string) { (*session)(t).lose(reason) }

// refusedWS is a WebSocket for a session already upgraded or being probed by another one:
// accepted, then closed at once (upgrade closes it once adopted), as Engine.IO's server does.
type refusedWS struct{ c *wsserver.Conn }

func (*refusedWS) Text([]byte, time.Time) error   { return nil }
func (*refusedWS) Binary([]byte, time.Time) error { return nil }
func (*refusedWS) Ping(time.Time)                 {}
func (*refusedWS) Closed(string)                  {}

// probe is a WebSocket opened to upgrade a polling session, until the client sends upgrade.
// It is the session's prober meanwhile: the only one.
type probe struct {
	ss       *session
	c        *wsserver.Conn
	since    time.Time // when the WebSocket opened
	probed   bool
	upgraded bool
	cut      bool // closed by the upgrade timeout
}

func (p *probe) Text(b []byte, now time.Time) error {
	if p.upgraded {
		return (*wsTransport)(p.ss).Text(b, now)
	}
	ss := p.ss
	switch {
	case !p.probed && string(b) == "2probe":
		p.probed = true
		p.c.SendText(func(dst []byte) []byte { return append(dst, "3probe"...) })
		// From now on until the upgrade, a GET waiting or to come is answered at once, with
		// a noop when nothing is queued, so the client can pause polling and send upgrade.
		// (Engine.IO's server checks for a waiting GET every 100 ms.)
		ss.mu.Lock()
		ss.probing = ss.prober == p
		ss.mu.Unlock()
		select {
		case ss.wake <- struct{}{}:
		default:
		}
		return nil
	case string(b) == "5": // Engine.IO's server takes it without a probe too
		ss.in.Lock()
		defer ss.in.Unlock()
		ss.mu.Lock()
		if ss.closed || ss.ws != nil {
			ss.mu.Unlock()
			return &hub.CloseError{Code: closeNormal, Reason: "session closed", LeaveReason: "closed"}
		}
		ss.ws = p.c
		ss.prober, ss.probing = nil, false
		queued := ss.queue
		ss.queue = nil
		ss.chargeLocked()
		// Packets queued for polling go out first, in order, still under mu so nothing
		// sent meanwhile can overtake them.
		for len(queued) > 0 {
			pkt := queued
			if i := bytes.IndexByte(queued, recordSeparator); i >= 0 {
				pkt, queued = queued[:i], queued[i+1:]
			} else {
				queued = nil
			}
			if len(pkt) == 1 && pkt[0] == eioNoop {
				continue
			}
			p.c.SendText(func(dst []byte) []byte { return append(dst, pkt...) })
		}
		ss.mu.Unlock()
		select {
		case ss.wake <- struct{}{}:
		default:
		}
		p.upgraded = true
		ss.srv.stats.SocketIOUpgrades.Add(1)
		return nil
	}
	return &hub.CloseError{Code: hub.CloseProtocolError, Reason: "bad upgrade probe", LeaveReason: "kicked"}
}

func (p *probe) Binary(b []byte, now time.Time) error {
	if p.upgraded {
		return (*wsTransport)(p.ss).Binary(b, now)
	}
	return &hub.CloseError{Code: hub.CloseProtocolError, Reason: "bad upgrade probe", LeaveReason: "kicked"}
}

func (p *probe) Ping(now time.Time) {
	switch {
	case p.upgraded:
		(*wsTransport)(p.ss).Ping(now)
	case !p.cut && now.Sub(p.since) > p.ss.srv.cfg.UpgradeTimeout:
		// Engine.IO's upgradeTimeout: a probe kept open (with WebSocket pings, say) without
		// finishing the upgrade holds a descriptor; the polling session goes on.
		p.cut = true
		p.ss.srv.stats.Timeouts[stats.TimeoutUpgrade].Add(1)
		p.c.Close(closeNormal, "upgrade timeout")
	}
}

// Lost implements wsserver.LossHandler.
func (p *probe) Lost(reason string) {
	if p.upgraded {
		p.ss.lose(reason)
		return
	}
	p.Closed(reason)
}

func (p *probe) Closed(reason string) {
	if p.upgraded {
		p.ss.close(reason)
		return
	}
	// The upgrade is given up: polling goes on, and its GETs wait again.
	ss := p.ss
	ss.mu.Lock()
	if ss.prober == p {
		ss.prober, ss.probing = nil, false
	}
	ss.mu.Unlock()
}
