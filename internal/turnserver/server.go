package turnserver

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/pion/stun/v4"
	"github.com/pion/turn/v5"

	"github.com/switchboard-rtc/switchboard/internal/clientaddr"
	"github.com/switchboard-rtc/switchboard/protocol"
)

// Defaults for the zero values of Config.
const (
	DefaultListen         = ":3478"
	DefaultRealm          = "switchboard"
	DefaultMinPort        = 49152
	DefaultMaxPort        = 65535
	DefaultUserQuota      = 100
	DefaultMaxAllocations = 4096
	DefaultIPQuota        = 64
	DefaultGrace          = 12 * time.Hour
	DefaultTCPIdle        = time.Minute
	DefaultTCPPerClient   = 32
	DefaultAllocateWithin = 10 * time.Second
)

// Config configures a Server. The zero value means defaults.
type Config struct {
	// Listen is the host:port TURN listens on, over both UDP and TCP (default ":3478").
	// Port 0 picks a free port (the same for both).
	Listen string
	// PublicIP is the address clients and peers reach the server at: the host of the URLs
	// handed out and the address of every relay candidate. Zero means the listen host when it
	// is a specific address, else the first non-loopback IPv4 address of an interface that is
	// up, else 127.0.0.1.
	PublicIP netip.Addr
	// RelayBind is the local address relay sockets bind to (default: the listen host when it is
	// a specific address, else the unspecified address of PublicIP's family).
	RelayBind netip.Addr
	// MinPort and MaxPort bound the relay ports (default 49152-65535).
	MinPort, MaxPort int
	// Realm is the TURN realm (default "switchboard"); requests naming another are refused.
	Realm string
	// Secret is the TURN REST shared secret. Empty means a random one, good for this process
	// only (a warning says so: every node of a cluster, and a coturn, needs the same secret).
	Secret []byte
	// TTL is how long minted credentials may start new allocations (default 10 minutes,
	// at most MaxTTL).
	TTL time.Duration
	// Grace is how long after its credentials expire an allocation made in time may still
	// refresh itself, its permissions and channels (default 12 hours): the longest relayed
	// call is about TTL+Grace. New allocations always need unexpired credentials.
	Grace time.Duration
	// AllowPeers are peer address ranges relayed to although they are not public unicast
	// (for example 127.0.0.0/8 for tests on one host, 10.0.0.0/8 on a private network).
	AllowPeers []netip.Prefix
	// UserQuota caps live allocations per user (peer id; default 100, enough for one
	// allocation per transport to each peer of a full room).
	UserQuota int
	// MaxAllocations caps live allocations overall (default 4096, at most the number of
	// relay ports).
	MaxAllocations int
	// IPQuota caps live allocations per client (default 64, at most MaxAllocations): per
	// IPv4 address and per IPv6 /64, as Clients aggregates them, so one host cannot take the
	// whole relay by joining under many peer ids, nor escape the quota by picking addresses
	// in its /64. Users behind one carrier-grade NAT share it.
	IPQuota int
	// Clients aggregates client addresses into the keys IPQuota and TCPPerClient count
	// under (zero value: per IPv4 address and per IPv6 /64).
	Clients clientaddr.Aggregator
	// TCPPerClient caps a client's TCP connections to the TURN port (default 32, at most
	// MaxAllocations, which caps them all), so one host cannot fill the connection cap.
	TCPPerClient int
	// AllocateWithin closes a client TCP connection that has not been put to use (a
	// successful Allocate, or ConnectionBind for a relayed TCP connection) this long after
	// it was accepted (default 10 seconds).
	AllocateWithin time.Duration
	// UDPSockets is how many UDP sockets share the listen port (SO_REUSEPORT), each served
	// by a loop of its own (default: one per core, at most 16).
	UDPSockets int
	// TCPIdle closes a client's TCP connection after this long without a byte from it
	// (default 1 minute; ICE consent checks every few seconds keep a live call's connection
	// busy), so idle connections cannot pile up to the cap.
	TCPIdle time.Duration
	// Logger is the server's logger; nil means slog.Default().
	Logger *slog.Logger
	// Now is the clock for credentials; nil means time.Now. For tests.
	Now func() time.Time
}

func (c *Config) setDefaults() error {
	if c.Listen == "" {
		c.Listen = DefaultListen
	}
	if c.Realm == "" {
		c.Realm = DefaultRealm
	}
	if c.MinPort == 0 && c.MaxPort == 0 {
		c.MinPort, c.MaxPort = DefaultMinPort, DefaultMaxPort
	}
	if c.TTL == 0 {
		c.TTL = DefaultTTL
	}
	if c.Grace == 0 {
		c.Grace = DefaultGrace
	}
	if c.UserQuota == 0 {
		c.UserQuota = DefaultUserQuota
	}
	if c.MaxAllocations == 0 {
		c.MaxAllocations = min(DefaultMaxAllocations, c.MaxPort-c.MinPort+1)
	}
	if c.IPQuota == 0 {
		c.IPQuota = min(DefaultIPQuota, c.MaxAllocations)
	}
	if c.TCPIdle == 0 {
		c.TCPIdle = DefaultTCPIdle
	}
	if c.TCPPerClient == 0 {
		c.TCPPerClient = min(DefaultTCPPerClient, c.MaxAllocations)
	}
	if c.AllocateWithin == 0 {
		c.AllocateWithin = DefaultAllocateWithin
	}
	if c.UDPSockets == 0 {
		c.UDPSockets = defaultUDPSockets()
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	return c.validate()
}

func (c *Config) validate() error {
	ports := c.MaxPort - c.MinPort + 1
	switch {
	case c.MinPort < 1 || c.MaxPort > 65535 || c.MinPort > c.MaxPort:
		return fmt.Errorf("%w: relay ports %d-%d", ErrBadConfig, c.MinPort, c.MaxPort)
	case c.TTL < time.Second || c.TTL > MaxTTL:
		return fmt.Errorf("%w: ttl %v: want 1s to %v", ErrBadConfig, c.TTL, MaxTTL)
	case c.Grace < 0:
		return fmt.Errorf("%w: grace %v", ErrBadConfig, c.Grace)
	case c.MaxAllocations < 1 || c.MaxAllocations > ports:
		return fmt.Errorf("%w: max allocations %d: want 1 to the %d relay ports", ErrBadConfig, c.MaxAllocations, ports)
	case c.UserQuota < 1 || c.UserQuota > c.MaxAllocations:
		return fmt.Errorf("%w: user quota %d: want 1 to max allocations %d", ErrBadConfig, c.UserQuota, c.MaxAllocations)
	case c.IPQuota < 1 || c.IPQuota > c.MaxAllocations:
		return fmt.Errorf("%w: IP quota %d: want 1 to max allocations %d", ErrBadConfig, c.IPQuota, c.MaxAllocations)
	case c.TCPPerClient < 1 || c.TCPPerClient > c.MaxAllocations:
		return fmt.Errorf("%w: TCP connections per client %d: want 1 to max allocations %d", ErrBadConfig, c.TCPPerClient, c.MaxAllocations)
	case c.UDPSockets < 1 || c.UDPSockets > maxUDPSockets:
		return fmt.Errorf("%w: UDP sockets %d: want 1 to %d", ErrBadConfig, c.UDPSockets, maxUDPSockets)
	case c.AllocateWithin < 0 || c.TCPIdle < 0:
		return fmt.Errorf("%w: allocate deadline %v, TCP idle time %v: must be positive", ErrBadConfig, c.AllocateWithin, c.TCPIdle)
	}
	if err := c.Clients.Validate(); err != nil {
		return fmt.Errorf("%w: %w", ErrBadConfig, err)
	}
	return nil
}

// Stats are the server's counters.
type Stats struct {
	// Denied counts datagrams, connections and requests refused by the peer filter.
	Denied atomic.Int64
	// AuthFailures counts requests with refused credentials (bad username, realm, expiry or
	// password).
	AuthFailures atomic.Int64
	// ClientQuota counts Allocate requests refused because their client (IPQuota) had all
	// its allocations.
	ClientQuota atomic.Int64
	// TCPPerClient counts client TCP connections closed at accept because their client had
	// TCPPerClient open; TCPFull those closed because MaxAllocations were open.
	TCPPerClient, TCPFull atomic.Int64
	// TCPNoAllocate counts client TCP connections closed for not allocating (nor binding)
	// within AllocateWithin.
	TCPNoAllocate atomic.Int64
}

// Reasons in Refusals.
const (
	RefusedClientQuota   = "client-allocations"
	RefusedTCPPerClient  = "tcp-per-client"
	RefusedTCPFull       = "tcp-cap"
	RefusedTCPNoAllocate = "tcp-allocate-timeout"
)

// Refusals returns what the per-client limits refused so far, by reason (for metrics).
func (s *Server) Refusals() map[string]int64 {
	return map[string]int64{
		RefusedClientQuota:   s.stats.ClientQuota.Load(),
		RefusedTCPPerClient:  s.stats.TCPPerClient.Load(),
		RefusedTCPFull:       s.stats.TCPFull.Load(),
		RefusedTCPNoAllocate: s.stats.TCPNoAllocate.Load(),
	}
}

// Server is a running STUN/TURN server.
type Server struct {
	cfg    Config
	log    *slog.Logger // through logs, which Close shuts (log.go)
	logs   *logGate
	filter *PeerFilter
	quota  *quota
	ips    *ipQuota
	turn   *turn.Server
	udp    []*trackedPacketConn // one per core, sharing the port (SO_REUSEPORT)
	tcp    *trackedListener
	table  *connTable // the client connections of tcp and tls
	tls    tlsSide    // TURN over TLS (tls.go)
	host   string     // host:port in handed-out URLs
	stats  Stats
	binds  bindKeys // keys of ChannelBinds in flight, for forbidDenied
	// clients maps UDP clients to their relay sockets, for the listeners (udp.go).
	clients *clientRelays
}

// New starts a server for cfg: it binds the UDP and TCP listeners and serves until Close.
func New(cfg Config) (*Server, error) {
	if err := cfg.setDefaults(); err != nil {
		return nil, err
	}
	logs := &logGate{}
	s := &Server{
		cfg:     cfg,
		log:     slog.New(logs.wrap(cfg.Logger.Handler())),
		logs:    logs,
		filter:  NewPeerFilter(cfg.AllowPeers),
		quota:   &quota{perUser: cfg.UserQuota, total: cfg.MaxAllocations, users: map[string]int{}},
		ips:     &ipQuota{max: cfg.IPQuota, clients: cfg.Clients, n: map[netip.Prefix]int{}},
		clients: &clientRelays{},
	}
	if len(s.cfg.Secret) == 0 {
		b := make([]byte, 32)
		_, _ = rand.Read(b) // crypto/rand never fails on Linux
		s.cfg.Secret = []byte(base64.RawStdEncoding.EncodeToString(b))
		s.log.Warn("turn: no secret configured; generated one for this process. Clustered nodes (and a coturn) need the same --turn-secret")
	}
	listenHost, _, err := net.SplitHostPort(cfg.Listen)
	if err != nil {
		return nil, fmt.Errorf("%w: listen %q: %w", ErrBadConfig, cfg.Listen, err)
	}
	listenIP, _ := netip.ParseAddr(listenHost)
	if listenIP.IsUnspecified() {
		listenIP = netip.Addr{}
	}
	if !s.cfg.PublicIP.IsValid() {
		s.cfg.PublicIP = listenIP
		if !s.cfg.PublicIP.IsValid() {
			s.cfg.PublicIP = guessPublicIP()
		}
		s.log.Info("turn: advertising "+s.cfg.PublicIP.String()+" (set --turn-public-ip to change)", "ip", s.cfg.PublicIP)
	}
	s.cfg.PublicIP = s.cfg.PublicIP.Unmap()
	if !s.cfg.RelayBind.IsValid() {
		switch {
		case listenIP.IsValid():
			s.cfg.RelayBind = listenIP
		case s.cfg.PublicIP.Is4():
			s.cfg.RelayBind = netip.IPv4Unspecified()
		default:
			s.cfg.RelayBind = netip.IPv6Unspecified()
		}
	}
	if err := s.listen(); err != nil {
		return nil, err
	}
	// A UDP listener's allocations send through its queue (udp.go); those made over TCP and
	// TLS through their client connection's, once the Allocate answer links them (stream.go).
	gen := func(q *relayQueue) *relayGen {
		return &relayGen{
			queue: q, relays: s.table.relays, clients: s.clients,
			inner: &turn.RelayAddressGeneratorPortRange{
				RelayAddress: net.IP(s.cfg.PublicIP.AsSlice()),
				Address:      s.cfg.RelayBind.String(),
				MinPort:      uint16(s.cfg.MinPort), //nolint:gosec // validated 1-65535
				MaxPort:      uint16(s.cfg.MaxPort), //nolint:gosec // validated 1-65535
			},
			filter:   s.filter,
			quota:    s.quota,
			min:      s.cfg.MinPort,
			max:      s.cfg.MaxPort,
			onDenied: s.denied,
		}
	}
	perm := func(_ net.Addr, peer net.IP) bool {
		if s.filter.AllowedIP(peer) {
			return true
		}
		s.denied(&net.UDPAddr{IP: peer})
		return false
	}
	udpConfigs := make([]turn.PacketConnConfig, len(s.udp))
	for i, u := range s.udp {
		udpConfigs[i] = turn.PacketConnConfig{PacketConn: u, RelayAddressGenerator: gen(&u.out), PermissionHandler: perm}
	}
	ts, err := turn.NewServer(turn.ServerConfig{
		Realm:       s.cfg.Realm,
		AuthHandler: s.auth,
		QuotaHandler: func(user, _ string, src net.Addr) bool {
			if !s.quota.has(user) {
				return false
			}
			if !s.ips.reserve(src, time.Now()) {
				s.stats.ClientQuota.Add(1)
				s.log.Debug("turn: allocation refused: client over its quota", "client", src.String(), "quota", s.cfg.IPQuota)
				return false
			}
			return true
		},
		LoggerFactory: loggerFactory{s.log},
		EventHandler: turn.EventHandler{
			OnAllocationCreated: func(src, _ net.Addr, _, _, _ string, relay net.Addr, _ int) {
				s.ips.add(src, 1)
				if a, ok := relay.(*net.UDPAddr); ok {
					s.clients.allocated(src, a.Port, s.table.relays)
				}
			},
			OnAllocationDeleted: func(src, _ net.Addr, _, _, _ string) {
				s.ips.add(src, -1)
				s.clients.deleted(src)
			},
			// Wrong passwords fail pion's integrity check after auth accepted the username.
			OnAuth: func(src, _ net.Addr, _, username, _, method string, verdict bool) {
				if !verdict {
					s.stats.AuthFailures.Add(1)
					s.log.Debug("turn: bad message integrity", "username", username, "method", method, "src", src)
				}
			},
		},
		PacketConnConfigs: udpConfigs,
		ListenerConfigs: []turn.ListenerConfig{
			{Listener: s.tcp, RelayAddressGenerator: gen(nil), PermissionHandler: perm},
			{Listener: s.tls.ln, RelayAddressGenerator: gen(nil), PermissionHandler: perm},
		},
	})
	if err != nil {
		for _, u := range s.udp {
			_ = u.Close()
		}
		_ = s.tcp.Close()
		_ = s.tls.ln.Close()
		return nil, fmt.Errorf("turnserver: %w", err)
	}
	s.turn = ts
	s.host = net.JoinHostPort(s.cfg.PublicIP.String(), strconv.Itoa(s.Addr().Port))
	return s, nil
}

// listen binds UDP and TCP on the same port; with port 0 it retries until both get one.
func (s *Server) listen() error {
	var lastErr error
	for range 10 {
		pcs, err := listenUDP(s.cfg.Listen, s.cfg.UDPSockets, s.log)
		if err != nil {
			return err
		}
		host, _, _ := net.SplitHostPort(s.cfg.Listen)
		port := pcs[0].LocalAddr().(*net.UDPAddr).Port
		ln, err := net.Listen("tcp", net.JoinHostPort(host, strconv.Itoa(port))) //nolint:noctx // bound once at start
		if err != nil {
			for _, pc := range pcs {
				_ = pc.Close()
			}
			lastErr = err
			if _, p, _ := net.SplitHostPort(s.cfg.Listen); p == "0" {
				continue
			}
			break
		}
		for _, pc := range pcs {
			t, err := newTrackedPacketConn(pc, s.forbidDenied, s.clients)
			if err != nil {
				for _, pc := range pcs {
					_ = pc.Close()
				}
				_ = ln.Close()
				return err
			}
			s.udp = append(s.udp, t)
		}
		s.table = &connTable{
			max: s.cfg.MaxAllocations, perClient: s.cfg.TCPPerClient, clients: s.cfg.Clients,
			idle: s.cfg.TCPIdle, allocate: s.cfg.AllocateWithin, stats: &s.stats, log: s.log.Debug,
			conns: map[*trackedConn]struct{}{}, byKey: map[netip.Prefix]int{}, rewrite: s.forbidDenied,
			relays: &relayPorts{},
		}
		s.tcp = &trackedListener{Listener: survivingAccept(ln, s.log), t: s.table, done: make(chan struct{})}
		s.tls.init(s.table, ln.Addr())
		return nil
	}
	return fmt.Errorf("turnserver: listen tcp %s: %w", s.cfg.Listen, lastErr)
}

func (s *Server) denied(a net.Addr) {
	s.stats.Denied.Add(1)
	s.log.Debug("turn: peer denied", "peer", a.String())
}

// auth is the pion AuthHandler: TURN REST credentials in this server's realm. Allocate needs
// unexpired credentials; the requests that keep an existing allocation alive (Refresh,
// CreatePermission, ChannelBind, Connect) accept them for Grace longer.
func (s *Server) auth(ra *turn.RequestAttributes) (string, []byte, bool) {
	ok := false
	defer func() {
		if !ok {
			s.stats.AuthFailures.Add(1)
			s.log.Debug("turn: credentials refused", "username", ra.Username, "realm", ra.Realm, "method", ra.Method.String(), "src", ra.SrcAddr)
		}
	}()
	if ra.Realm != s.cfg.Realm {
		return "", nil, false
	}
	expiry, user, err := ParseUsername(ra.Username)
	if err != nil {
		return "", nil, false
	}
	now := s.cfg.Now()
	switch {
	case expiry.After(now.Add(MaxTTL + time.Minute)):
		return "", nil, false // minted with a lifetime over the cap
	case ra.Method == stun.MethodAllocate && !now.Before(expiry):
		return "", nil, false
	case now.After(expiry.Add(s.cfg.Grace)):
		return "", nil, false
	}
	ok = true
	key := turn.GenerateAuthKey(ra.Username, s.cfg.Realm, Password(s.cfg.Secret, ra.Username))
	if ra.Method == stun.MethodChannelBind {
		s.binds.put(ra.SrcAddr, key) // forbidDenied signs a refusal with it
	}
	return user, key, true
}

// Credentials mints credentials for user valid from now for the configured TTL.
func (s *Server) Credentials(user string, now time.Time) (username, password string) {
	return Mint(s.cfg.Secret, user, now.Add(s.cfg.TTL))
}

// ICEServers returns the RTCIceServer entries for this server with credentials minted for
// user at now: stun:, and turn: over UDP and TCP, and turns: once AdvertiseTLS named where
// TURN over TLS is reached.
func (s *Server) ICEServers(user string, now time.Time) []protocol.ICEServer {
	u, p := s.Credentials(user, now)
	urls := []string{"turn:" + s.host + "?transport=udp", "turn:" + s.host + "?transport=tcp"}
	if h := s.tls.url.Load(); h != nil {
		urls = append(urls, "turns:"+*h+"?transport=tcp")
	}
	return []protocol.ICEServer{
		{URLs: []string{"stun:" + s.host}},
		{URLs: urls, Username: u, Credential: p},
	}
}

// Addr returns the UDP address the server listens on; TCP listens on the same port.
func (s *Server) Addr() *net.UDPAddr { return s.udp[0].LocalAddr().(*net.UDPAddr) }

// TCPAddr returns the TCP address the server listens on.
func (s *Server) TCPAddr() *net.TCPAddr { return s.tcp.Addr().(*net.TCPAddr) }

// PublicIP returns the advertised address.
func (s *Server) PublicIP() netip.Addr { return s.cfg.PublicIP }

// Realm returns the realm.
func (s *Server) Realm() string { return s.cfg.Realm }

// Allocations returns the number of live allocations.
func (s *Server) Allocations() int { return s.quota.count() }

// Stats returns the server's counters.
func (s *Server) Stats() *Stats { return &s.stats }

// Denied returns Stats().Denied (for metrics).
func (s *Server) Denied() int64 { return s.stats.Denied.Load() }

// AuthFailures returns Stats().AuthFailures (for metrics).
func (s *Server) AuthFailures() int64 { return s.stats.AuthFailures.Load() }

// Close stops the server: the listeners, every TCP and TLS client connection and every
// allocation.
// It returns when pion's loops have ended and every relay socket is closed, or after ctx ends.
func (s *Server) Close(ctx context.Context) error {
	err := s.turn.Close()
	s.tls.close()
	s.table.closeAll()
	for _, u := range s.udp {
		select {
		case <-u.done:
		case <-ctx.Done():
		}
	}
	for _, l := range []*trackedListener{s.tcp, s.tls.ln} {
		select {
		case <-l.done:
		case <-ctx.Done():
		}
	}
	s.table.wg.Wait() // every conn is closed: their loops return at once
	// The allocation managers close their relay sockets right after the read loops end.
	s.quota.waitIdle(ctx)
	// Pion's loops log their end after the events waited for above: nothing more is logged.
	s.logs.shut()
	if err != nil {
		return fmt.Errorf("turnserver: close: %w", err)
	}
	if n := s.quota.count(); n > 0 {
		return fmt.Errorf("turnserver: close: %d relay sockets still open: %w", n, ctx.Err())
	}
	return nil
}

// guessPublicIP returns the first non-loopback IPv4 address of an interface that is up.
func guessPublicIP() netip.Addr {
	ifs, err := net.Interfaces()
	if err == nil {
		for _, ifc := range ifs {
			if ifc.Flags&net.FlagUp == 0 || ifc.Flags&net.FlagLoopback != 0 {
				continue
			}
			addrs, _ := ifc.Addrs()
			for _, a := range addrs {
				if n, ok := a.(*net.IPNet); ok {
					if ip, ok := netip.AddrFromSlice(n.IP); ok && ip.Unmap().Is4() && !ip.IsLinkLocalUnicast() {
						return ip.Unmap()
					}
				}
			}
		}
	}
	return netip.MustParseAddr("127.0.0.1")
}
