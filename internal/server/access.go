package server

import (
	"log/slog"
	"net"
	"time"

	"github.com/switchboard-rtc/switchboard/internal/auth"
	"github.com/switchboard-rtc/switchboard/internal/hub"
	"github.com/switchboard-rtc/switchboard/protocol"
)

// authorizer turns access tokens checked by v into the hub's grants.
func authorizer(v *auth.Verifier) hub.Authorizer {
	return func(token, room string, now time.Time) (hub.Grant, *protocol.Error) {
		c, err := v.Verify(token, now)
		if err != nil {
			return hub.Grant{}, err.Protocol()
		}
		if c.Subject == "" {
			return hub.Grant{}, protocol.Errorf(protocol.CodeTokenInvalid, "the token has no sub (the user's identity)")
		}
		r, err := c.RoomFor(room)
		if err != nil {
			return hub.Grant{}, err.Protocol()
		}
		return hub.Grant{Identity: c.Subject, Room: r, Name: c.Name, Meta: c.MetaObject(), TURN: c.TURN}, nil
	}
}

// warnIfOpen says once, loudly, that a server without API keys listening beyond loopback lets
// anyone in.
func warnIfOpen(log *slog.Logger, keys []auth.Key, listen net.Addr) {
	if len(keys) > 0 {
		return
	}
	if ta, ok := listen.(*net.TCPAddr); ok && ta.IP.IsLoopback() {
		return
	}
	log.Warn("OPEN SERVER: no --api-keys, so anyone who reaches " + listen.String() +
		" can join any room, list its peers and use the TURN relay; set --api-keys for the internet (docs/auth.md)")
}
