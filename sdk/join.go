package sdk

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/coder/websocket"
)

// connJoin is a signaling connection that has joined: the connection, the welcome and the
// client's id.
type connJoin struct {
	ws      *websocket.Conn
	welcome *serverFrame
	self    string
}

// dialJoin opens a signaling connection and joins room ("" to let the access token name it)
// with the access token token, if any, resuming with resume if not empty.
// last is the highest event seq received, sent with a resume.
func dialJoin(ctx context.Context, wsURL, room string, o *Options, resume, token string, last uint64) (*connJoin, error) {
	ws, _, err := websocket.Dial(ctx, wsURL, nil)
	if err != nil {
		return nil, fmt.Errorf("sdk: dial %s: %w", wsURL, err)
	}
	ws.SetReadLimit(1 << 20)
	join := map[string]any{"type": "join", "id": "join", "v": 1}
	if room != "" {
		join["room"] = room
	}
	if token != "" {
		join["token"] = token
	}
	if o.Name != "" {
		join["name"] = o.Name
	}
	if o.Meta != nil {
		join["meta"] = o.Meta
	}
	if resume != "" {
		join["resume"] = resume
		join["last"] = last
	}
	if err := writeJSON(ctx, ws, join); err != nil {
		ws.CloseNow()
		return nil, err
	}
	var welcome serverFrame
	for welcome.Type != "welcome" {
		_, b, err := ws.Read(ctx)
		if err != nil {
			ws.CloseNow()
			if se := policyClose(err); se != nil {
				return nil, se
			}
			return nil, fmt.Errorf("sdk: waiting for welcome: %w", err)
		}
		welcome = serverFrame{}
		if err := json.Unmarshal(b, &welcome); err != nil {
			ws.CloseNow()
			return nil, fmt.Errorf("sdk: bad frame from server: %w", err)
		}
		if welcome.Type == "error" {
			ws.CloseNow()
			return nil, &ServerError{Code: welcome.Code, Message: welcome.Message}
		}
	}
	var self string
	if err := json.Unmarshal(welcome.Peer, &self); err != nil || self == "" {
		ws.CloseNow()
		return nil, fmt.Errorf("sdk: welcome without a peer id: %s", welcome.Peer)
	}
	return &connJoin{ws: ws, welcome: &welcome, self: self}, nil
}

// StatusServiceRestart is the close code of a server going away for a restart (1012): the
// client reconnects at once (jittered by up to maxRestartJitter) and resumes.
const StatusServiceRestart websocket.StatusCode = 1012

const maxRestartJitter = 250 * time.Millisecond

// reconnectable reports whether the client should try to get a connection lost with err
// back: not when disabled, and not after a close the server would repeat (normal, protocol
// error, bad payload, policy: kicked, too big).
func (c *Client) reconnectable(err error) bool {
	if c.opts.Reconnect.Disable {
		return false
	}
	switch websocket.CloseStatus(err) {
	case websocket.StatusNormalClosure, websocket.StatusProtocolError, websocket.StatusInvalidFramePayloadData,
		websocket.StatusPolicyViolation, websocket.StatusMessageTooBig:
		return false
	}
	return true
}

// reconnect gets the signaling connection back after it was lost with cause: it resumes the
// presence with the last welcome's token or, if the server cannot, joins anew and starts every
// pair over. It reports false when the client is closing or gave up. readLoop only.
func (c *Client) reconnect(cause error) bool {
	c.wsMu.Lock()
	c.ready = make(chan struct{}) // senders wait from now on
	c.wsMu.Unlock()
	r := c.opts.Reconnect
	restart := websocket.CloseStatus(cause) == StatusServiceRestart
	for attempt := 1; r.MaxAttempts == 0 || attempt <= r.MaxAttempts; attempt++ {
		if c.opts.OnReconnecting != nil {
			c.opts.OnReconnecting(attempt, cause)
		}
		delay := r.MinDelay << min(attempt-1, 20)
		if delay > r.MaxDelay || delay <= 0 {
			delay = r.MaxDelay
		}
		delay = time.Duration(float64(delay) * (0.75 + rand.Float64()/2))
		if attempt == 1 && restart {
			// The server is restarting (close 1012) and expects us back at once.
			delay = time.Duration(rand.Int64N(int64(maxRestartJitter)))
		}
		t := time.NewTimer(delay)
		select {
		case <-t.C:
		case <-c.ctx.Done():
			t.Stop()
			return false
		}
		ctx, cancel := context.WithTimeout(c.ctx, 10*time.Second)
		j, err := c.rejoin(ctx)
		cancel()
		if err != nil {
			if c.ctx.Err() != nil {
				return false
			}
			if se := final(err); se != nil {
				// Refused for good (an expired token, ...): retrying cannot help.
				c.ended = se
				return false
			}
			c.log.Debug("reconnect failed", "attempt", attempt, "err", err)
			cause = err
			continue
		}
		ws, w, self := j.ws, j.welcome, j.self
		c.resume = w.Resume
		if !w.Resumed {
			// A new presence: the others saw us leave and know nothing of the new id.
			for _, p := range c.Peers() {
				c.removePeer(p.id, "reconnect")
			}
			c.stopPending()
			c.replay = nil
			c.lastSeq = 0
			c.resumeMs = w.ResumeMs
			c.mu.Lock()
			c.id = self
			c.mu.Unlock()
		}
		if c.opts.ICEServers == nil && w.ICEServers != nil {
			c.setICEServers(w.ICEServers) // freshly minted credentials, resumed or not
		}
		c.wsMu.Lock()
		old := c.ws
		c.ws = ws
		close(c.ready)
		c.wsMu.Unlock()
		old.CloseNow()
		if c.ctx.Err() != nil { // Close ran meanwhile and closed the old connection
			ws.CloseNow()
			return false
		}
		if w.Resumed {
			c.reconcile(w)
			c.resendOut(w.Restored) // then new relays go straight out
			if w.Gap || w.Restored {
				c.recoverPeers()
			}
		} else {
			c.dropOut()
		}
		if !w.Resumed {
			// The room's peers are back before OnReconnected, as reconcile's are when
			// resumed: an application told it is back finds them (Peer, Peers).
			for _, p := range w.Peers {
				if _, err := c.addPeer(p, true); err != nil {
					c.report(nil, err)
				}
			}
		}
		c.log.Debug("signaling reconnected", "attempt", attempt, "resumed", w.Resumed, "self", self)
		if c.opts.OnReconnected != nil {
			c.opts.OnReconnected(w.Resumed)
		}
		return true
	}
	return false
}

// rejoin opens a new signaling connection for a reconnect. It resumes the presence with the
// last welcome's resume token; if the server cannot (it answers token-missing, since a new
// presence needs a token) and TokenFunc is set, it joins anew with a fresh token. Without
// TokenFunc the static token goes along with the resume: the server uses it only when it
// cannot resume. readLoop only.
func (c *Client) rejoin(ctx context.Context) (*connJoin, error) {
	if c.opts.TokenFunc == nil || c.resume != "" {
		token := ""
		if c.opts.TokenFunc == nil {
			token = c.token
		}
		j, err := dialJoin(ctx, c.wsURL, c.room, &c.opts, c.resume, token, c.lastSeq)
		if c.opts.TokenFunc == nil || !errors.Is(err, ErrTokenMissing) {
			return j, err
		}
		c.log.Debug("resume failed; joining anew with a fresh token")
	}
	t, err := c.opts.TokenFunc(ctx)
	if err != nil {
		return nil, fmt.Errorf("sdk: get an access token: %w", err)
	}
	c.token = t
	return dialJoin(ctx, c.wsURL, c.room, &c.opts, "", t, 0)
}
