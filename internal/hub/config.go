package hub

import (
	"fmt"
	"log/slog"
	"time"

	"github.com/switchboard-rtc/switchboard/internal/bus"
	"github.com/switchboard-rtc/switchboard/internal/membudget"
	"github.com/switchboard-rtc/switchboard/internal/resume"
	"github.com/switchboard-rtc/switchboard/internal/stats"
	"github.com/switchboard-rtc/switchboard/protocol"
)

// Config configures a Hub. The zero value means defaults.
type Config struct {
	// MaxPeersPerRoom caps room size (default 50).
	MaxPeersPerRoom int
	// MaxMetaBytes caps a join's meta object (default 1024).
	MaxMetaBytes int
	// RateLimit is the sustained messages per second a connection may send (default 200);
	// RateBurst the bucket size (default 2×RateLimit).
	RateLimit float64
	RateBurst float64
	// RateStrikes is how many rejected messages a connection may send, refilled at a tenth of
	// that per second, before it is closed (default 100).
	RateStrikes float64
	// ResumeGrace is how long the presence of a peer whose connection was lost (no close
	// frame, no leave) is kept for the client to take back with its resume token
	// (default 15s; negative disables resumption).
	ResumeGrace time.Duration
	// ResumeHoldEvents and ResumeHoldBytes bound a presence's outbox, the events not yet
	// known read (defaults 256 events, 256 KiB): connected, the oldest are dropped past
	// either; lost, the presence leaves at once.
	ResumeHoldEvents int
	ResumeHoldBytes  int
	// Resume mints and verifies resume tokens; nil means tokens signed with a random secret
	// of this process (they do not survive a restart).
	Resume *resume.Tokens
	// Node is this node's id in the tokens it mints ("" on a single node).
	Node string
	// Budget, when set, is charged for the presences' outboxes; its reclaimer may drop the
	// biggest (a lost presence then leaves as when its outbox overflows).
	Budget *membudget.Budget
	// ICEServers are handed to every peer in its welcome.
	ICEServers []protocol.ICEServer
	// ICEServersFor, when set, returns servers for one peer (with credentials minted for it)
	// that its welcome carries after ICEServers. It is called at each join.
	ICEServersFor func(peer protocol.PeerID, now time.Time) []protocol.ICEServer
	// Authorize, when set, makes every new presence present an access token (access.go);
	// nil leaves the hub open: any client joins any room, with TURN credentials.
	Authorize Authorizer
	// Clients are the per-client rate limits (clients.go).
	Clients ClientLimits
	// Bus routes events; nil means a new in-memory bus.
	Bus bus.Bus
	// Stats receives counters; nil means a private set.
	Stats *stats.Stats
	// Logger is the hub's logger; nil means slog.Default().
	Logger *slog.Logger
}

func (c *Config) setDefaults() {
	if c.MaxPeersPerRoom == 0 {
		c.MaxPeersPerRoom = 50
	}
	if c.MaxMetaBytes == 0 {
		c.MaxMetaBytes = 1024
	}
	if c.RateLimit == 0 {
		c.RateLimit = 200
	}
	if c.RateBurst == 0 {
		c.RateBurst = 2 * c.RateLimit
	}
	if c.RateStrikes == 0 {
		c.RateStrikes = 100
	}
	if c.ResumeGrace == 0 {
		c.ResumeGrace = 15 * time.Second
	}
	if c.ResumeHoldEvents == 0 {
		c.ResumeHoldEvents = 256
	}
	if c.ResumeHoldBytes == 0 {
		c.ResumeHoldBytes = 256 << 10
	}
	c.Clients.setDefaults()
	if c.Resume == nil {
		c.Resume, _ = resume.New(resume.Config{}) // a random secret: cannot fail
	}
	if c.Stats == nil {
		c.Stats = new(stats.Stats)
	}
	if c.Bus == nil {
		c.Bus = bus.NewMemory(c.Stats)
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
}

func (c *Config) validate() error {
	switch {
	case c.MaxPeersPerRoom < 0:
		return fmt.Errorf("%w: max peers per room %d", ErrBadConfig, c.MaxPeersPerRoom)
	case c.MaxMetaBytes < 0:
		return fmt.Errorf("%w: max meta bytes %d", ErrBadConfig, c.MaxMetaBytes)
	case c.ResumeHoldEvents < 0 || c.ResumeHoldBytes < 0:
		return fmt.Errorf("%w: resume hold %d events %d bytes", ErrBadConfig, c.ResumeHoldEvents, c.ResumeHoldBytes)
	case c.RateLimit < 0 || c.RateBurst < 1 || c.RateStrikes < 1:
		return fmt.Errorf("%w: rate limit %v burst %v strikes %v", ErrBadConfig, c.RateLimit, c.RateBurst, c.RateStrikes)
	}
	return c.Clients.validate()
}
