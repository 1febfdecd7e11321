package hub

import (
	"fmt"
	"net/netip"
	"time"

	"github.com/switchboard-rtc/switchboard/internal/clientaddr"
	"github.com/switchboard-rtc/switchboard/protocol"
)

// Per-client rates. A client is what the session's transport says it is (SetClient: an IPv4
// address or an IPv6 /64 of the TCP peer, or behind trusted proxies of the forwarded
// address); a session without one is not limited. Each node keeps its own tables.

// ClientLimits are the hub's per-client rate limits. Zero values mean defaults; negative
// values turn a limit off.
type ClientLimits struct {
	// JoinRate is how many new presences one client may make per second, sustained (default
	// 20); JoinBurst how many at once (default 2×JoinRate). A resume of a presence this
	// node holds is not a new presence and is free; a restore and an identity takeover are
	// new ones. Over it a join is answered rate-limited and the connection stays open.
	JoinRate  float64
	JoinBurst float64
	// TURNPerMinute is how many TURN credentials one client may get per minute (default
	// 120): each welcome and each ice-servers answer that carries them, resumes included.
	// Past it they carry the STUN servers only.
	TURNPerMinute int
	// MaxClients bounds the entries of each table (default clientaddr.DefaultMaxClients).
	MaxClients int
}

func (c *ClientLimits) setDefaults() {
	if c.JoinRate == 0 {
		c.JoinRate = 20
	}
	if c.JoinBurst == 0 {
		c.JoinBurst = 2 * max(c.JoinRate, 0.5)
	}
	if c.TURNPerMinute == 0 {
		c.TURNPerMinute = 120
	}
}

func (c *ClientLimits) validate() error {
	if c.JoinRate > 0 && c.JoinBurst < 1 {
		return fmt.Errorf("%w: join burst %v per client", ErrBadConfig, c.JoinBurst)
	}
	return nil
}

// clientTables are the hub's per-client buckets; a nil table is a limit turned off.
type clientTables struct {
	joins *clientaddr.Limiter
	turn  *clientaddr.Limiter
}

func (h *Hub) initClients() {
	c, st := h.cfg.Clients, &h.stats.PerClient
	if c.JoinRate > 0 {
		h.clients.joins = clientaddr.NewLimiter(clientaddr.LimiterConfig{
			Rate: c.JoinRate, Burst: c.JoinBurst, MaxClients: c.MaxClients,
			Entries: &st.JoinClients, Evictions: &st.JoinEvictions,
		})
	}
	if c.TURNPerMinute > 0 {
		h.clients.turn = clientaddr.NewLimiter(clientaddr.LimiterConfig{
			Rate: float64(c.TURNPerMinute) / 60, Burst: float64(c.TURNPerMinute), MaxClients: c.MaxClients,
			Entries: &st.TURNClients, Evictions: &st.TURNEvictions,
		})
	}
}

// SetClient tells the session which client its connection comes from (a clientaddr key):
// its new joins and its TURN credentials count against that client's share. Call it before
// the first frame.
func (s *Session) SetClient(key netip.Prefix) { s.client = key }

// admitJoin charges a new presence to the session's client; over its rate it returns the
// rate-limited error, which leaves the connection open for the client to try again.
func (s *Session) admitJoin() *protocol.Error {
	l := s.hub.clients.joins
	if l == nil || !s.client.IsValid() || l.Allow(s.client, time.Now()) {
		return nil
	}
	s.hub.stats.PerClient.JoinsRefused.Add(1)
	return protocol.Errorf(protocol.CodeRateLimited, "too many joins from your address (%g a second); try again in a moment", s.hub.cfg.Clients.JoinRate)
}

// iceFor returns the ICE servers for the session's peer (Hub.iceFor) and charges TURN
// credentials to its client: past the client's share they carry STUN only.
func (s *Session) iceFor(peer protocol.PeerID, turn bool) []byte {
	if turn && s.hub.cfg.ICEServersFor != nil && !s.turnAllowed() {
		s.hub.stats.PerClient.TURNCredentialsRefused.Add(1)
		turn = false
	}
	return s.hub.iceFor(peer, turn)
}

func (s *Session) turnAllowed() bool {
	l := s.hub.clients.turn
	return l == nil || !s.client.IsValid() || l.Allow(s.client, time.Now())
}
