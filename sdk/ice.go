package sdk

import (
	"strconv"
	"strings"
	"time"

	"github.com/pion/webrtc/v4"
)

// TURN credentials in the welcome expire (TURN REST usernames are "EXPIRY:PEERID"), and a
// client that stays in a room creates connections to later peers with them. The refresher
// asks the server for fresh ones (an ice-servers request) halfway to the earliest expiry, so
// new connections can always allocate a relay. Connections that exist keep their allocations:
// the server lets them refresh past expiry (docs/turn.md).

// minICERefresh bounds how often the refresher asks.
const minICERefresh = 500 * time.Millisecond

// earliestExpiry returns the earliest expiry among TURN REST usernames in servers.
func earliestExpiry(servers []webrtc.ICEServer) (time.Time, bool) {
	var first time.Time
	for _, s := range servers {
		ts, _, ok := strings.Cut(s.Username, ":")
		if !ok {
			continue
		}
		sec, err := strconv.ParseInt(ts, 10, 64)
		if err != nil {
			continue
		}
		if t := time.Unix(sec, 0); first.IsZero() || t.Before(first) {
			first = t
		}
	}
	return first, !first.IsZero()
}

// ICEServers returns the ICE servers that new peer connections use: the welcome's, or the
// latest the server sent when the client refreshed expiring TURN credentials, or
// Options.ICEServers.
func (c *Client) ICEServers() []webrtc.ICEServer {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]webrtc.ICEServer(nil), c.ice...)
}

func (c *Client) setICEServers(servers []webrtc.ICEServer) {
	c.mu.Lock()
	c.ice = servers
	c.mu.Unlock()
	select {
	case c.iceUpdated <- struct{}{}:
	default:
	}
}

// refreshICE runs until the client closes, asking for fresh servers halfway between the
// time it got the current ones and their earliest expiry.
func (c *Client) refreshICE() {
	defer c.wg.Done()
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	got := time.Now()
	for {
		expiry, ok := earliestExpiry(c.ICEServers())
		if !ok {
			return
		}
		wait := max(expiry.Sub(got)/2, minICERefresh)
		timer.Reset(wait)
		select {
		case <-timer.C:
		case <-c.ctx.Done():
			return
		}
		if err := c.request(map[string]any{"type": "ice-servers", "id": "ice-servers"}); err != nil && c.ctx.Err() == nil {
			c.report(nil, err)
		}
		timer.Reset(10 * time.Second) // no answer: ask again
		select {
		case <-c.iceUpdated:
			got = time.Now()
		case <-timer.C:
		case <-c.ctx.Done():
			return
		}
	}
}
