package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"
)

// protoKind is the wire protocol a client speaks.
type protoKind int

const (
	protoNative   protoKind = iota // Switchboard's JSON protocol on /ws
	protoSocketIO                  // Socket.IO v4 over Engine.IO v4, WebSocket transport only
)

func (p protoKind) String() string {
	if p == protoSocketIO {
		return "socketio"
	}
	return "native"
}

func parseProto(s string) (protoKind, error) {
	switch s {
	case "native":
		return protoNative, nil
	case "socketio", "socket.io":
		return protoSocketIO, nil
	}
	return 0, fmt.Errorf("unknown --proto %q (want native or socketio)", s)
}

// Default URLs per protocol.
const (
	defaultNativeURL   = "ws://127.0.0.1:8080/ws"
	defaultSocketIOURL = "ws://127.0.0.1:3000/socket.io/?EIO=4&transport=websocket"
)

// msgKind classifies a received frame.
type msgKind int

const (
	kindOther      msgKind = iota // anything the bench does not act on
	kindOffer                     // relayed offer
	kindAnswer                    // relayed answer
	kindCandidate                 // relayed ice-candidate
	kindPeerJoined                // native peer-joined
	kindError                     // native error frame, Socket.IO CONNECT_ERROR or DISCONNECT
)

// maxFrameBytes bounds what a client accepts in one message.
const maxFrameBytes = 1 << 20

// dialer opens client connections, round-robin over loopback source addresses.
type dialer struct {
	url     string
	proto   protoKind
	clients []*http.Client // one per source address
	timeout time.Duration  // per connection: TCP connect + WebSocket + protocol handshake
}

// newDialer returns a dialer for rawURL. When the URL's host is a loopback
// address, connections are bound to source addresses 127.0.0.1 ..
// 127.0.0.sourceIPs; otherwise the system picks the source address.
func newDialer(rawURL string, proto protoKind, sourceIPs int, timeout time.Duration) (*dialer, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, fmt.Errorf("parse --url: %w", err)
	}
	switch u.Scheme {
	case "ws", "wss", "http", "https":
	default:
		return nil, fmt.Errorf("--url %q: scheme must be ws or wss", rawURL)
	}
	host := u.Hostname()
	loopback := host == "localhost"
	if ip := net.ParseIP(host); ip != nil && ip.IsLoopback() && ip.To4() != nil {
		loopback = true
	}
	if !loopback || sourceIPs < 1 {
		sourceIPs = 1
	}
	sourceIPs = min(sourceIPs, 254)
	d := &dialer{url: rawURL, proto: proto, timeout: timeout}
	for i := range sourceIPs {
		nd := &net.Dialer{Timeout: timeout, KeepAlive: -1}
		if loopback {
			nd.LocalAddr = &net.TCPAddr{IP: net.IPv4(127, 0, 0, byte(1+i))}
		}
		tr := &http.Transport{
			Proxy:             nil, // never send loopback load through an HTTP proxy
			DialContext:       nd.DialContext,
			ForceAttemptHTTP2: false,
			MaxIdleConns:      1,
		}
		d.clients = append(d.clients, &http.Client{Transport: tr})
	}
	return d, nil
}

// close releases the transports' idle connections.
func (d *dialer) close() {
	for _, c := range d.clients {
		c.CloseIdleConnections()
	}
}

// client is one WebSocket connection that has completed the protocol
// handshake. Reads and writes use a context without a Done channel, so they
// arm no timers; the owner stops a blocked client by closing it.
type client struct {
	conn  *websocket.Conn
	proto protoKind
	id    string   // own peer id (native) or socket id (Socket.IO)
	peers []string // native: ids listed in the welcome
	rctx  context.Context
	buf   []byte
}

// handshakeInfo is the subset of a native welcome or error the bench needs.
type handshakeInfo struct {
	Type string `json:"type"`
	// Peer is the welcome's own id (a string); other frames (peer-joined) carry an object.
	Peer  json.RawMessage `json:"peer"`
	Peers []struct {
		ID string `json:"id"`
	} `json:"peers"`
	Code    string `json:"code"`
	Message string `json:"message"`
}

// open dials connection number slot and completes the protocol handshake:
// native joins room and waits for the welcome; Socket.IO waits for the
// Engine.IO open packet, sends CONNECT and waits for its reply. The whole
// exchange is bounded by the dialer's timeout.
func (d *dialer) open(ctx context.Context, slot int, room string) (*client, error) {
	hctx, cancel := context.WithTimeout(ctx, d.timeout)
	defer cancel()
	conn, resp, err := websocket.Dial(hctx, d.url, &websocket.DialOptions{
		HTTPClient: d.clients[slot%len(d.clients)],
	})
	if err != nil {
		if resp != nil {
			return nil, fmt.Errorf("dial %s: HTTP %d: %w", d.url, resp.StatusCode, err)
		}
		return nil, fmt.Errorf("dial %s: %w", d.url, err)
	}
	conn.SetReadLimit(maxFrameBytes)
	c := &client{conn: conn, proto: d.proto, rctx: context.WithoutCancel(ctx), buf: make([]byte, 0, 512)}
	if d.proto == protoSocketIO {
		err = c.socketIOHandshake(hctx)
	} else {
		err = c.nativeJoin(hctx, room)
	}
	if err != nil {
		c.close()
		return nil, err
	}
	return c, nil
}

func (c *client) nativeJoin(ctx context.Context, room string) error {
	join := fmt.Appendf(nil, `{"type":"join","id":1,"v":1,"room":%q}`, room)
	if err := c.conn.Write(ctx, websocket.MessageText, join); err != nil {
		return fmt.Errorf("send join: %w", err)
	}
	for range 16 {
		msg, err := c.readCtx(ctx)
		if err != nil {
			return fmt.Errorf("wait for welcome: %w", err)
		}
		var h handshakeInfo
		if err := json.Unmarshal(msg, &h); err != nil {
			return fmt.Errorf("decode %q: %w", truncate(msg), err)
		}
		switch h.Type {
		case "welcome":
			_ = json.Unmarshal(h.Peer, &c.id)
			for _, p := range h.Peers {
				c.peers = append(c.peers, p.ID)
			}
			if c.id == "" {
				return fmt.Errorf("welcome without peer id: %s", truncate(msg))
			}
			return nil
		case "error":
			return fmt.Errorf("join %s: %s: %s", room, h.Code, h.Message)
		}
	}
	return errors.New("no welcome within 16 frames")
}

func (c *client) socketIOHandshake(ctx context.Context) error {
	msg, err := c.readCtx(ctx)
	if err != nil {
		return fmt.Errorf("wait for engine.io open: %w", err)
	}
	if _, err := parseEIOOpen(msg); err != nil {
		return err
	}
	if err := c.conn.Write(ctx, websocket.MessageText, []byte("40")); err != nil {
		return fmt.Errorf("send socket.io CONNECT: %w", err)
	}
	for range 16 {
		msg, err := c.readCtx(ctx)
		if err != nil {
			return fmt.Errorf("wait for socket.io CONNECT reply: %w", err)
		}
		if isEIOPing(msg) {
			if err := c.conn.Write(ctx, websocket.MessageText, eioPong); err != nil {
				return fmt.Errorf("send engine.io pong: %w", err)
			}
			continue
		}
		sid, err := parseSIOConnect(msg)
		if err != nil {
			return err
		}
		c.id = sid
		return nil
	}
	return errors.New("no socket.io CONNECT reply within 16 frames")
}

// readCtx reads one data message into c.buf (valid until the next read).
func (c *client) readCtx(ctx context.Context) ([]byte, error) {
	_, r, err := c.conn.Reader(ctx)
	if err != nil {
		return nil, err // callers wrap with what they were waiting for
	}
	b := c.buf[:0]
	for {
		if len(b) == cap(b) {
			b = append(b, 0)[:len(b)]
		}
		n, err := r.Read(b[len(b):cap(b)])
		b = b[:len(b)+n]
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("read message: %w", err)
		}
	}
	c.buf = b
	return b, nil
}

// next reads frames until one worth reporting, answering Engine.IO pings on
// the way. The returned bytes are valid until the next call.
func (c *client) next() (msgKind, []byte, error) {
	for {
		msg, err := c.readCtx(c.rctx)
		if err != nil {
			return kindOther, nil, err
		}
		if c.proto == protoSocketIO && isEIOPing(msg) {
			if err := c.write(eioPong); err != nil {
				return kindOther, nil, err
			}
			continue
		}
		return classify(c.proto, msg), msg, nil
	}
}

// write sends one text message.
func (c *client) write(b []byte) error {
	if err := c.conn.Write(c.rctx, websocket.MessageText, b); err != nil {
		return fmt.Errorf("write: %w", err)
	}
	return nil
}

// close closes the connection without a close handshake.
func (c *client) close() {
	_ = c.conn.CloseNow()
}

// closeGracefully performs the WebSocket close handshake (bounded by the
// library's 5 s + 5 s timeouts), as a well-behaved client does.
func (c *client) closeGracefully() error {
	if err := c.conn.Close(websocket.StatusNormalClosure, ""); err != nil {
		return fmt.Errorf("close: %w", err)
	}
	return nil
}

// classify returns what kind of message msg is.
func classify(p protoKind, msg []byte) msgKind {
	if p == protoSocketIO {
		return classifySocketIO(msg)
	}
	t, ok := topLevelString(msg, "type")
	if !ok {
		return kindOther
	}
	return kindForType(t)
}

func kindForType(t []byte) msgKind {
	switch string(t) {
	case "offer":
		return kindOffer
	case "answer":
		return kindAnswer
	case "ice-candidate":
		return kindCandidate
	case "peer-joined":
		return kindPeerJoined
	case "error":
		return kindError
	}
	return kindOther
}

// Engine.IO v4 / Socket.IO v5 packets used here.
var eioPong = []byte("3")

func isEIOPing(msg []byte) bool { return len(msg) == 1 && msg[0] == '2' }

// eioOpen is the payload of the Engine.IO open packet ("0{...}").
type eioOpen struct {
	SID          string `json:"sid"`
	PingInterval int    `json:"pingInterval"`
	PingTimeout  int    `json:"pingTimeout"`
	MaxPayload   int    `json:"maxPayload"`
}

func parseEIOOpen(msg []byte) (eioOpen, error) {
	var o eioOpen
	if len(msg) < 2 || msg[0] != '0' {
		return o, fmt.Errorf("want engine.io open packet, got %q", truncate(msg))
	}
	if err := json.Unmarshal(msg[1:], &o); err != nil {
		return o, fmt.Errorf("decode engine.io open %q: %w", truncate(msg), err)
	}
	if o.SID == "" {
		return o, fmt.Errorf("engine.io open without sid: %q", truncate(msg))
	}
	return o, nil
}

// parseSIOConnect returns the socket id from a Socket.IO CONNECT reply on the
// main namespace (`40{"sid":"..."}`).
func parseSIOConnect(msg []byte) (string, error) {
	switch {
	case bytes.HasPrefix(msg, []byte("44")):
		return "", fmt.Errorf("socket.io CONNECT_ERROR: %s", truncate(msg))
	case !bytes.HasPrefix(msg, []byte("40")):
		return "", fmt.Errorf("want socket.io CONNECT reply, got %q", truncate(msg))
	}
	var p struct {
		SID string `json:"sid"`
	}
	if err := json.Unmarshal(msg[2:], &p); err != nil {
		return "", fmt.Errorf("decode socket.io CONNECT reply %q: %w", truncate(msg), err)
	}
	if p.SID == "" {
		return "", fmt.Errorf("socket.io CONNECT reply without sid: %q", truncate(msg))
	}
	return p.SID, nil
}

// sioEventName returns the event name of a Socket.IO EVENT packet on the main
// namespace without an ack id (`42["name",...]`).
func sioEventName(msg []byte) ([]byte, bool) {
	if len(msg) < 5 || msg[0] != '4' || msg[1] != '2' || msg[2] != '[' || msg[3] != '"' {
		return nil, false
	}
	end, ok := skipString(msg, 3)
	if !ok {
		return nil, false
	}
	return msg[4 : end-1], true
}

func classifySocketIO(msg []byte) msgKind {
	if name, ok := sioEventName(msg); ok {
		switch k := kindForType(name); k {
		case kindOffer, kindAnswer, kindCandidate:
			return k
		}
		return kindOther
	}
	// "1" engine.io close, "41" socket.io DISCONNECT, "44" CONNECT_ERROR.
	if (len(msg) == 1 && msg[0] == '1') || bytes.HasPrefix(msg, []byte("41")) || bytes.HasPrefix(msg, []byte("44")) {
		return kindError
	}
	return kindOther
}

// peerJoinedID returns the peer id announced by a native peer-joined frame.
func peerJoinedID(msg []byte) (string, error) {
	var p struct {
		Peer struct {
			ID string `json:"id"`
		} `json:"peer"`
	}
	if err := json.Unmarshal(msg, &p); err != nil {
		return "", fmt.Errorf("decode peer-joined: %w", err)
	}
	if p.Peer.ID == "" {
		return "", fmt.Errorf("peer-joined without id: %s", truncate(msg))
	}
	return p.Peer.ID, nil
}

// truncate shortens a frame for an error message.
func truncate(b []byte) string {
	const n = 160
	if len(b) > n {
		return string(b[:n]) + "..."
	}
	return string(b)
}

// errorLog counts errors from many goroutines and prints the first few.
type errorLog struct {
	w       io.Writer
	limit   int64
	n       atomic.Int64
	printMu sync.Mutex
}

func newErrorLog(w io.Writer) *errorLog { return &errorLog{w: w, limit: 10} }

// add counts one error and prints it if it is among the first few.
func (l *errorLog) add(format string, args ...any) {
	n := l.n.Add(1)
	if n > l.limit {
		return
	}
	l.printMu.Lock()
	defer l.printMu.Unlock()
	msg := fmt.Sprintf(format, args...)
	if n == l.limit {
		msg += " (further errors are only counted)"
	}
	fmt.Fprintf(l.w, "bench: error: %s\n", strings.TrimRight(msg, "\n"))
}

// count returns the number of errors so far.
func (l *errorLog) count() int64 { return l.n.Load() }
