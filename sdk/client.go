package sdk

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/coder/websocket"
	"github.com/pion/ice/v4"
	"github.com/pion/transport/v5"
	"github.com/pion/webrtc/v4"
)

// Options configure a Client. A nil *Options means defaults.
type Options struct {
	// Name and Meta are shown to the other peers (Meta must marshal to a JSON object). On a
	// server with access control the token's name and meta are shown instead.
	Name string
	Meta any

	// Token is the access token sent with the join: a server started with --api-keys admits
	// no join without one (docs/auth.md). The server takes the room, name and metadata from
	// it, so Dial's room may be "" when the token grants one room.
	Token string
	// TokenFunc, when set, gets a token whenever the client must join anew: for the first join
	// when Token is empty, and on a reconnect whose resume failed (the old token may have
	// expired meanwhile). Resuming a presence needs no token. An error counts as a failed
	// reconnect attempt.
	TokenFunc func(ctx context.Context) (string, error)

	// ICEServers, when set, replace the ICE servers from the server's welcome.
	ICEServers []webrtc.ICEServer
	// ICETransportPolicy restricts candidates (webrtc.ICETransportPolicyRelay for TURN only).
	ICETransportPolicy webrtc.ICETransportPolicy
	// Loopback keeps all WebRTC traffic on 127.0.0.1: for tests and same-host transfers.
	Loopback bool
	// SettingEngine, when set, is used as is instead of the tuned default (call TuneTransport
	// on it to keep the SDK's transport settings).
	SettingEngine *webrtc.SettingEngine
	// AcceptanceMinWait is how long ICE waits for better candidate pairs before it settles on
	// a server-reflexive, peer-reflexive or relay pair (default 100 ms; Pion's own default
	// is 0.5-2 s). Host pairs are accepted at once. Relay pairs wait at least 1 s unless
	// ICETransportPolicy is relay, so a direct path found meanwhile wins over the relay.
	AcceptanceMinWait time.Duration
	// UDPBufferSize sets the receive and send buffers of every UDP socket ICE opens (default
	// 4 MiB, capped by the kernel's net.core.rmem_max/wmem_max; negative keeps the kernel's
	// default). Small buffers overflow under bulk data-channel transfers, and each lost packet
	// stalls a reliable channel for a retransmission timeout.
	UDPBufferSize int
	// Net, when set, is the network ICE opens its sockets on, instead of
	// BufferedNet(UDPBufferSize): for the peer connections (unless SettingEngine is set:
	// give it Net with SettingEngine.SetNet too) and for the QUIC sessions of Peer.QUIC.
	Net transport.Net

	// OnPeer is called for each remote peer as soon as its connection exists and before any
	// negotiation, so handlers (OnDataChannel, OnTrack, ...) set here miss nothing. It runs on
	// the signaling goroutine: it must not block.
	OnPeer func(*Peer)
	// OnPeerLeft is called when a remote peer leaves or its connection is dropped.
	OnPeerLeft func(p *Peer, reason string)
	// OnPeerUpdated is called when the server changed a remote peer's name or metadata
	// (server API); p.Name and p.Meta return the new values.
	OnPeerUpdated func(p *Peer)
	// OnServerMessage receives the data of a message the application sent through the server
	// API to this peer or its room.
	OnServerMessage func(data json.RawMessage)
	// OnError reports errors that concern one pair (bad SDP from the remote, ICE failure)
	// or the signaling connection (p is nil then). The client goes on, except after a
	// *ServerError whose Final is true (a refused token, replaced, removed, room-closed): it
	// is also Err, and Done is closed.
	OnError func(p *Peer, err error)

	// Reconnect says how the client gets its signaling connection back when it is lost.
	Reconnect ReconnectOptions
	// OnReconnecting is called when the signaling connection was lost (cause) and attempt
	// 1, 2, ... is about to start after its backoff. Peer connections stay up meanwhile.
	OnReconnecting func(attempt int, cause error)
	// OnReconnected is called once the client is back in its room. resumed: the server kept
	// (or restored) its presence, the id is the same and nothing was lost: relays sent while
	// away were queued and go now, peers that left meanwhile are reported to OnPeerLeft, new
	// ones to OnPeer, known ones are never reported again. Otherwise it joined anew: every
	// old peer was reported to OnPeerLeft with reason "reconnect", ID is new, and the room's
	// peers come back through OnPeer (before this call).
	OnReconnected func(resumed bool)

	// Logger receives debug logs; nil means slog.Default().
	Logger *slog.Logger
}

// ReconnectOptions configure signaling reconnection. The zero value retries with no limit.
type ReconnectOptions struct {
	// Disable makes a lost signaling connection end the client (Done, Err).
	Disable bool
	// MaxAttempts is how many attempts are made before the client gives up (0: no limit).
	MaxAttempts int
	// MinDelay is the first backoff (default 250 ms), doubled per attempt up to MaxDelay
	// (default 5 s); each delay is jittered by ±25%.
	MinDelay, MaxDelay time.Duration
}

// Client is a peer in one room of a Switchboard server.
type Client struct {
	opts  Options
	api   *webrtc.API
	wsURL string
	log   *slog.Logger
	room  string
	ctx   context.Context // canceled by Close; only for the client's own goroutines
	stop  context.CancelFunc
	wg    sync.WaitGroup
	done  chan struct{}
	errMu sync.Mutex
	err   error

	wsMu   sync.Mutex
	ws     *websocket.Conn
	ready  chan struct{} // closed while ws is usable; open while reconnecting
	resume string        // the last welcome's resume token (readLoop only)
	token  string        // the access token of the last new presence (readLoop only)
	ended  *ServerError  // the server ended the presence (readLoop only)

	// The presence's event sequence (docs/design/issue-14.md §1), readLoop only.
	lastSeq  uint64              // the highest seq received: sent as the resume join's last
	resumeMs int64               // the last welcome's resumeMs
	replay   *replayState        // a resumed welcome's reconciliation waiting for its replay
	seen     map[string]*seenIDs // per sender, the ids of the last relays received (dedupe.go)

	outbox // relays sent with an id and not yet acked (resume.go)

	pendMu  sync.Mutex
	pending map[string]*pendingPeer // known peers a restored welcome left out (resume.go)

	net transport.Net // what ICE opens its sockets on (Options.Net or BufferedNet)

	mu    sync.Mutex
	id    string // changes when a reconnect cannot resume
	ice   []webrtc.ICEServer
	peers map[string]*Peer

	iceUpdated chan struct{} // an ice-servers answer arrived
}

// serverFrame is a frame from the server, decoded loosely.
type serverFrame struct {
	Type       string             `json:"type"`
	Peer       json.RawMessage    `json:"peer"`
	Peers      []peerInfo         `json:"peers"`
	From       string             `json:"from"`
	Data       json.RawMessage    `json:"data"`
	Room       string             `json:"room"`
	Code       string             `json:"code"`
	Message    string             `json:"message"`
	Reason     string             `json:"reason"`
	ICEServers []webrtc.ICEServer `json:"iceServers"`
	Resume     string             `json:"resume"`
	Resumed    bool               `json:"resumed"`
	ID         json.RawMessage    `json:"id"`
	Seq        *uint64            `json:"seq"`
	Restored   bool               `json:"restored"`
	Gap        bool               `json:"gap"`
	ResumeMs   int64              `json:"resumeMs"`
	Retry      bool               `json:"retry"`
	Broadcast  bool               `json:"broadcast"`
}

type peerInfo struct {
	ID       string          `json:"id"`
	Resumed  bool            `json:"resumed"`
	Identity string          `json:"identity"`
	Name     string          `json:"name"`
	Meta     json.RawMessage `json:"meta"`
}

// WebSocketURL turns a server base URL (http://host:8080) into its signaling endpoint
// (ws://host:8080/ws). ws:// and wss:// URLs with a path are kept as they are.
func WebSocketURL(server string) (string, error) {
	u, err := url.Parse(server)
	if err != nil {
		return "", fmt.Errorf("sdk: server URL: %w", err)
	}
	switch u.Scheme {
	case "http":
		u.Scheme = "ws"
	case "https":
		u.Scheme = "wss"
	case "ws", "wss":
		if u.Path != "" && u.Path != "/" {
			return u.String(), nil
		}
	default:
		return "", fmt.Errorf("sdk: server URL %q: want http, https, ws or wss", server)
	}
	u.Path = strings.TrimSuffix(u.Path, "/") + "/ws"
	return u.String(), nil
}

// Dial connects to the server at serverURL, joins room and starts connecting to every peer
// in it. It returns once the server has welcomed the client. room may be "" when
// Options.Token grants one room. A refused join returns a *ServerError (errors.Is
// ErrTokenExpired, ErrRoomNotGranted, ...).
func Dial(ctx context.Context, serverURL, room string, opts *Options) (*Client, error) {
	var o Options
	if opts != nil {
		o = *opts
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.AcceptanceMinWait == 0 {
		o.AcceptanceMinWait = 100 * time.Millisecond
	}
	if o.UDPBufferSize == 0 {
		o.UDPBufferSize = 4 << 20
	}
	if o.Reconnect.MinDelay <= 0 {
		o.Reconnect.MinDelay = 250 * time.Millisecond
	}
	if o.Reconnect.MaxDelay <= 0 {
		o.Reconnect.MaxDelay = 5 * time.Second
	}
	wsURL, err := WebSocketURL(serverURL)
	if err != nil {
		return nil, err
	}
	token, err := firstToken(ctx, &o)
	if err != nil {
		return nil, err
	}
	j, err := dialJoin(ctx, wsURL, room, &o, "", token, 0)
	if err != nil {
		return nil, err
	}
	ws, welcome := j.ws, j.welcome
	if welcome.Room != "" {
		room = welcome.Room // the token's room
	}
	ready := make(chan struct{})
	close(ready)
	c := &Client{
		opts:   o,
		ws:     ws,
		wsURL:  wsURL,
		ready:  ready,
		resume: welcome.Resume,
		token:  token,
		log:    o.Logger.With("room", room),
		id:     j.self,
		room:   room,
		ice:    welcome.ICEServers,
		done:   make(chan struct{}),
		peers:  make(map[string]*Peer),

		iceUpdated: make(chan struct{}, 1),
		resumeMs:   welcome.ResumeMs,
		pending:    make(map[string]*pendingPeer),
	}
	c.online = true
	if o.ICEServers != nil {
		c.ice = o.ICEServers
	}
	se, err := c.settingEngine()
	if err != nil {
		ws.CloseNow()
		return nil, err
	}
	c.api = webrtc.NewAPI(webrtc.WithSettingEngine(se))
	c.ctx, c.stop = context.WithCancel(context.Background())
	// Peers already in the room; the ids decide which side of each pair offers.
	for _, p := range welcome.Peers {
		if _, err := c.addPeer(p, true); err != nil {
			c.report(nil, err)
		}
	}
	c.wg.Add(1)
	go c.readLoop()
	if o.ICEServers == nil {
		if _, ok := earliestExpiry(c.ice); ok {
			c.wg.Add(1)
			go c.refreshICE()
		}
	}
	return c, nil
}

// minRelayWait is the least time ICE waits before it settles on a relay pair when direct
// pairs are allowed.
const minRelayWait = time.Second

func (c *Client) settingEngine() (webrtc.SettingEngine, error) {
	c.net = c.opts.Net
	if c.net == nil {
		n, err := BufferedNet(c.opts.UDPBufferSize, nil)
		if err != nil {
			return webrtc.SettingEngine{}, err
		}
		c.net = n
	}
	if c.opts.SettingEngine != nil {
		return *c.opts.SettingEngine, nil
	}
	var se webrtc.SettingEngine
	TuneTransport(&se)
	se.SetNet(c.net)
	w := c.opts.AcceptanceMinWait
	se.SetSrflxAcceptanceMinWait(w)
	se.SetPrflxAcceptanceMinWait(w)
	relayWait := w
	if c.opts.ICETransportPolicy != webrtc.ICETransportPolicyRelay {
		// Give hole punching time to beat the relay: a direct pair costs the TURN server
		// nothing. Behind port-preserving NATs it wins in well under a second.
		relayWait = max(w, minRelayWait)
	}
	se.SetRelayAcceptanceMinWait(relayWait)
	if c.opts.Loopback {
		se.SetIncludeLoopbackCandidate(true)
		se.SetNetworkTypes([]webrtc.NetworkType{webrtc.NetworkTypeUDP4})
		se.SetInterfaceFilter(func(name string) bool { return name == "lo" })
		se.SetIPFilter(func(ip net.IP) bool { return ip.IsLoopback() })
		se.SetICEMulticastDNSMode(ice.MulticastDNSModeDisabled)
	}
	return se, nil
}

// ID returns the client's peer id.
// It changes when a reconnect cannot resume the presence (see Options.OnReconnected).
func (c *Client) ID() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.id
}

// Room returns the client's room (with an access token, the room the server put it in).
func (c *Client) Room() string { return c.room }

// Peers returns the remote peers currently known.
func (c *Client) Peers() []*Peer {
	c.mu.Lock()
	defer c.mu.Unlock()
	ps := make([]*Peer, 0, len(c.peers))
	for _, p := range c.peers {
		ps = append(ps, p)
	}
	return ps
}

// Peer returns the remote peer with id, or nil.
func (c *Client) Peer(id string) *Peer {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.peers[id]
}

// Done is closed when the client has stopped: after Close, when the server went away, or when
// the server ended its presence (Err is then a *ServerError such as ErrReplaced).
func (c *Client) Done() <-chan struct{} { return c.done }

// Err returns why the client stopped, or nil while it runs and after a plain Close.
func (c *Client) Err() error {
	c.errMu.Lock()
	defer c.errMu.Unlock()
	return c.err
}

// Close leaves the room, closes every peer connection and the signaling socket, and returns
// when every goroutine the client started has stopped.
func (c *Client) Close() error {
	c.stop() // no new peers from here on (addPeer checks under c.mu)
	c.stopPending()
	ws := c.conn()
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	_ = writeJSON(ctx, ws, map[string]any{"type": "leave"})
	cancel()
	_ = ws.Close(websocket.StatusNormalClosure, "bye")
	ws.CloseNow()
	for _, p := range c.Peers() {
		c.removePeer(p.id, "closed")
	}
	c.wg.Wait()
	return nil
}

func (c *Client) report(p *Peer, err error) {
	if p != nil {
		c.log.Debug("peer error", "peer", p.id, "err", err)
	} else {
		c.log.Debug("client error", "err", err)
	}
	if c.opts.OnError != nil {
		c.opts.OnError(p, err)
	}
}

func (c *Client) readLoop() {
	defer c.wg.Done()
	defer close(c.done)
	for {
		_, b, err := c.conn().Read(c.ctx)
		if err != nil {
			if c.ctx.Err() != nil {
				return
			}
			if c.ended == nil {
				c.ended = policyClose(err)
			}
			if c.ended != nil {
				c.fail(c.ended) // the server ended the presence: a retry would be refused
				return
			}
			c.setOnline(false) // relays queue from here on
			if !c.reconnectable(err) || !c.reconnect(err) {
				if c.ended != nil {
					c.fail(c.ended)
				} else {
					c.fail(fmt.Errorf("sdk: signaling connection lost: %w", err))
				}
				return
			}
			continue
		}
		var f serverFrame
		if err := json.Unmarshal(b, &f); err != nil {
			c.report(nil, fmt.Errorf("sdk: bad frame from server: %w", err))
			continue
		}
		c.handleSeq(&f)
	}
}

func (c *Client) handle(f *serverFrame) {
	switch f.Type {
	case "peer-joined":
		var info peerInfo
		if err := json.Unmarshal(f.Peer, &info); err != nil || info.ID == "" {
			c.report(nil, fmt.Errorf("sdk: bad peer-joined: %s", f.Peer))
			return
		}
		if c.skipReplayedJoin(f, info.ID) {
			return
		}
		if c.peerBack(info, f.Resumed || info.Resumed) {
			return
		}
		if _, err := c.addPeer(info, false); err != nil {
			c.report(nil, err)
		}
	case "peer-left":
		var info peerInfo
		_ = json.Unmarshal(f.Peer, &info)
		c.forgetPending(info.ID)
		c.forgetSeen(info.ID)
		c.removePeer(info.ID, f.Reason)
	case "peer-updated":
		var info peerInfo
		if err := json.Unmarshal(f.Peer, &info); err != nil || info.ID == "" {
			c.report(nil, fmt.Errorf("sdk: bad peer-updated: %s", f.Peer))
			return
		}
		if p := c.Peer(info.ID); p != nil {
			p.update(info)
			if c.opts.OnPeerUpdated != nil {
				c.opts.OnPeerUpdated(p)
			}
		}
	case "server-message":
		if c.opts.OnServerMessage != nil {
			c.opts.OnServerMessage(f.Data)
		}
	case "offer", "answer", "ice-candidate":
		if c.duplicateRelay(f) {
			return
		}
		p := c.Peer(f.From)
		if p == nil {
			c.report(nil, fmt.Errorf("sdk: %s from unknown peer %q", f.Type, f.From))
			return
		}
		p.signal(f.Type, f.Data)
	case "message":
		if c.duplicateRelay(f) {
			return
		}
		if p := c.Peer(f.From); p != nil {
			p.message(f.Data, f.Broadcast)
		}
	case "ice-servers":
		if c.opts.ICEServers == nil {
			c.setICEServers(f.ICEServers)
		}
	case "ack":
		c.acked(f.ID)
	case "resume-token":
		if f.Resume != "" {
			c.resume = f.Resume
		}
	case "error":
		se := &ServerError{Code: f.Code, Message: f.Message}
		if c.refused(f.ID, se) {
			return
		}
		if se.Final() {
			c.ended = se // the close follows; readLoop stops with it
			return
		}
		c.report(nil, se)
	}
}

// addPeer adds the remote peer info; newcomer: it was in the room first (from a welcome).
func (c *Client) addPeer(info peerInfo, newcomer bool) (*Peer, error) {
	c.mu.Lock()
	if c.ctx.Err() != nil {
		c.mu.Unlock()
		return nil, errors.New("sdk: client closed")
	}
	if old := c.peers[info.ID]; old != nil {
		c.mu.Unlock()
		old.update(info) // an arrival we knew of (a replay, a restored presence): an update
		return old, nil
	}
	p, err := newPeer(c, info, newcomer)
	if err != nil {
		c.mu.Unlock()
		return nil, err
	}
	c.wg.Add(1) // for p.run, counted before Close can wait
	c.peers[info.ID] = p
	c.mu.Unlock()
	if c.opts.OnPeer != nil {
		c.opts.OnPeer(p)
	}
	p.start()
	return p, nil
}

func (c *Client) removePeer(id, reason string) {
	c.mu.Lock()
	p := c.peers[id]
	delete(c.peers, id)
	c.mu.Unlock()
	if p == nil {
		return
	}
	p.close()
	if c.opts.OnPeerLeft != nil {
		c.opts.OnPeerLeft(p, reason)
	}
}

// request sends a frame of the client's own to the server. While the signaling connection is
// being reconnected it waits for it (up to 10 s).
func (c *Client) request(frame map[string]any) error {
	ctx, cancel := context.WithTimeout(c.ctx, 10*time.Second)
	defer cancel()
	c.wsMu.Lock()
	ready := c.ready
	c.wsMu.Unlock()
	select {
	case <-ready:
	case <-ctx.Done():
		return fmt.Errorf("sdk: signaling connection not back: %w", ctx.Err())
	}
	return writeJSON(ctx, c.conn(), frame)
}

// conn returns the current signaling connection.
func (c *Client) conn() *websocket.Conn {
	c.wsMu.Lock()
	defer c.wsMu.Unlock()
	return c.ws
}

// fail stops the client because of err.
func (c *Client) fail(err error) {
	c.errMu.Lock()
	c.err = err
	c.errMu.Unlock()
	c.report(nil, err)
	c.stop()
}

func writeJSON(ctx context.Context, ws *websocket.Conn, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("sdk: encode: %w", err)
	}
	if err := ws.Write(ctx, websocket.MessageText, b); err != nil {
		return fmt.Errorf("sdk: send: %w", err)
	}
	return nil
}

var _ io.Closer = (*Client)(nil)
