package turnserver

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/pion/turn/v5"

	"github.com/switchboard-rtc/switchboard/internal/clientaddr"
)

// quota counts live relay sockets per user and overall. A slot is taken when the relay
// socket is created and given back when pion closes it with the allocation, so the count is
// exact even under concurrent Allocate requests.
type quota struct {
	perUser, total int

	mu    sync.Mutex
	users map[string]int
	n     int
	idle  chan struct{} // closed when n drops to 0, for waitIdle
}

func (q *quota) take(user string) bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.n >= q.total || q.users[user] >= q.perUser {
		return false
	}
	q.n++
	q.users[user]++
	return true
}

func (q *quota) give(user string) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.n--
	if q.users[user]--; q.users[user] <= 0 {
		delete(q.users, user)
	}
	if q.n == 0 && q.idle != nil {
		close(q.idle)
		q.idle = nil
	}
}

// waitIdle returns when no slot is taken, or when ctx ends.
func (q *quota) waitIdle(ctx context.Context) {
	q.mu.Lock()
	if q.n == 0 {
		q.mu.Unlock()
		return
	}
	if q.idle == nil {
		q.idle = make(chan struct{})
	}
	ch := q.idle
	q.mu.Unlock()
	select {
	case <-ch:
	case <-ctx.Done():
	}
}

// has reports whether user may take one more slot now (for the early 486 answer).
func (q *quota) has(user string) bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.n < q.total && q.users[user] < q.perUser
}

func (q *quota) count() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.n
}

// ipQuota counts live allocations per client (an IPv4 address or IPv6 /64, as clients
// aggregates them). An authenticated Allocate that passes the check holds a place (reserve)
// until pion's allocation event counts it (add) or reserveTTL passes (the allocation failed
// after the check): concurrent Allocate requests from one client, which a listener's sockets
// and TCP connections handle in parallel, cannot overshoot it.
type ipQuota struct {
	max     int
	clients clientaddr.Aggregator

	mu      sync.Mutex
	n       map[netip.Prefix]int
	pending map[netip.Prefix][]time.Time // places held by reserve, oldest first
}

// reserveTTL is how long a place held for an Allocate waits for its allocation.
const reserveTTL = 5 * time.Second

// reserve reports whether a's client may make one more allocation and, if so, holds a place
// for it.
func (q *ipQuota) reserve(a net.Addr, now time.Time) bool {
	k := q.clients.KeyOf(a)
	q.mu.Lock()
	defer q.mu.Unlock()
	p := q.pending[k]
	for len(p) > 0 && now.Sub(p[0]) > reserveTTL {
		p = p[1:]
	}
	if q.n[k]+len(p) >= q.max {
		q.setPending(k, p)
		return false
	}
	q.setPending(k, append(p, now))
	return true
}

func (q *ipQuota) setPending(k netip.Prefix, p []time.Time) {
	if len(p) == 0 {
		delete(q.pending, k)
		return
	}
	if q.pending == nil {
		q.pending = map[netip.Prefix][]time.Time{}
	}
	q.pending[k] = p
}

// add counts d allocations of a's client made (+1: taking the oldest place held for it) or
// deleted (-1).
func (q *ipQuota) add(a net.Addr, d int) {
	k := q.clients.KeyOf(a)
	q.mu.Lock()
	defer q.mu.Unlock()
	if p := q.pending[k]; d > 0 && len(p) > 0 {
		q.setPending(k, p[1:])
	}
	if q.n[k] += d; q.n[k] <= 0 {
		delete(q.n, k)
	}
}

// relayGen wraps pion's port-range generator: it charges the quota, refuses requested ports
// outside the range, and wraps every relay socket in the peer filter, so a denied address can
// neither receive from nor send to the relay whatever path the request took.
type relayGen struct {
	queue    *relayQueue   // a UDP listener's: its relay sockets send through it; nil: linked later
	relays   *relayPorts   // every relay socket by port
	clients  *clientRelays // UDP clients' relay sockets
	inner    *turn.RelayAddressGeneratorPortRange
	filter   *PeerFilter
	quota    *quota
	min, max int
	onDenied func(net.Addr)
}

var _ turn.RelayAddressGenerator = (*relayGen)(nil)

func (g *relayGen) Validate() error {
	if err := g.inner.Validate(); err != nil {
		return fmt.Errorf("turnserver: relay addresses: %w", err)
	}
	return nil
}

func (g *relayGen) checkPort(p int) error {
	if p != 0 && (p < g.min || p > g.max) {
		return fmt.Errorf("%w: requested port %d outside %d-%d", ErrPeerDenied, p, g.min, g.max)
	}
	return nil
}

func (g *relayGen) AllocatePacketConn(c turn.AllocateListenerConfig) (net.PacketConn, net.Addr, error) {
	if err := g.checkPort(c.RequestedPort); err != nil {
		return nil, nil, err
	}
	if !g.quota.take(c.UserID) {
		return nil, nil, fmt.Errorf("%w: user %q", ErrQuota, c.UserID)
	}
	pc, addr, err := g.inner.AllocatePacketConn(c)
	if err != nil {
		g.quota.give(c.UserID)
		return nil, nil, fmt.Errorf("turnserver: relay socket: %w", err)
	}
	return g.newRelayConn(pc, c.UserID), addr, nil
}

func (g *relayGen) AllocateListener(c turn.AllocateListenerConfig) (net.Listener, net.Addr, error) {
	if err := g.checkPort(c.RequestedPort); err != nil {
		return nil, nil, err
	}
	if !g.quota.take(c.UserID) {
		return nil, nil, fmt.Errorf("%w: user %q", ErrQuota, c.UserID)
	}
	ln, addr, err := g.inner.AllocateListener(c)
	if err != nil {
		g.quota.give(c.UserID)
		return nil, nil, fmt.Errorf("turnserver: relay listener: %w", err)
	}
	return &filteredListener{Listener: ln, g: g, user: c.UserID}, addr, nil
}

// AllocateConn is the TCP relay path (RFC 6062 Connect): the peer is checked before dialing.
func (g *relayGen) AllocateConn(c turn.AllocateConnConfig) (net.Conn, error) {
	if !g.filter.AllowedAddr(c.RemoteAddr) {
		g.denied(c.RemoteAddr)
		return nil, fmt.Errorf("%w: %v", ErrPeerDenied, c.RemoteAddr)
	}
	conn, err := g.inner.AllocateConn(c)
	if err != nil {
		return nil, fmt.Errorf("turnserver: relay connect: %w", err)
	}
	return conn, nil
}

func (g *relayGen) denied(a net.Addr) {
	if g.onDenied != nil {
		g.onDenied(a)
	}
}

// filteredListener is a TCP relay listener that drops connections from denied peers.
type filteredListener struct {
	net.Listener
	g     *relayGen
	user  string
	close sync.Once
}

func (l *filteredListener) Accept() (net.Conn, error) {
	for {
		conn, err := l.Listener.Accept()
		if err != nil {
			return nil, err //nolint:wrapcheck // the listener's own error, for pion
		}
		if l.g.filter.AllowedAddr(conn.RemoteAddr()) {
			return conn, nil
		}
		l.g.denied(conn.RemoteAddr())
		_ = conn.Close()
	}
}

func (l *filteredListener) Close() error {
	err := l.Listener.Close()
	l.close.Do(func() { l.g.quota.give(l.user) })
	if errors.Is(err, net.ErrClosed) {
		return nil
	}
	return err //nolint:wrapcheck // the listener's own error, for pion
}
