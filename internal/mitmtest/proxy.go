// Package mitmtest is a man in the middle for tests: a signaling proxy that peers dial
// instead of a real server (`--server` pointing at it). It relays every WebSocket frame of
// /ws between each peer and the server untouched, and everything else over HTTP, except
// what its Options tell it to change:
//
//   - Terminate: it takes the WebRTC of every pair of peers that both come through it. The
//     offering peer's offer is answered by a Pion PeerConnection of the proxy (its own DTLS
//     certificate), and the proxy offers to the other peer with another; offers, answers,
//     ICE candidates and the SDK's renegotiation requests between the two never reach the
//     server. Every data channel one peer opens is opened towards the other with the same
//     label, protocol and reliability, and the two are piped message for message, byte for
//     byte, both ways: without anything that checks the certificates end to end, the peers
//     talk through it and cannot tell.
//   - StripQUIC: it removes "quic" from the meta of each join, so that no pair sets up the
//     SDK's QUIC connection and every pair uses its peer connection's data channels.
//
// Each peer is a connection to the proxy, matched to its peer id by the server's welcome.
// A pair is terminated only when both peers came through the proxy. Data channels only:
// media sections of an offer are not terminated.
package mitmtest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"
)

// Options say what the proxy changes; the zero value relays everything untouched.
type Options struct {
	// Terminate makes the proxy the far end of every pair's WebRTC connection (see the
	// package comment).
	Terminate bool
	// StripQUIC removes "quic" from the meta of every join.
	StripQUIC bool
}

// Stats are what the proxy did so far.
type Stats struct {
	// Pairs is how many pairs' connections it terminated.
	Pairs int
	// Channels are the labels of the data channels it piped, in the order they were opened.
	Channels []string
	// Bytes is the payload it piped over data channels, both ways.
	Bytes int64
	// Joins is how many joins it relayed; Stripped, how many of them had "quic" removed.
	Joins, Stripped int
}

// Proxy is a running man in the middle.
type Proxy struct {
	opts     Options
	srv      *httptest.Server
	upstream string // the server's /ws URL
	ctx      context.Context
	cancel   context.CancelFunc
	wg       sync.WaitGroup // the relays of the connections
	bytes    atomic.Int64   // data-channel payload piped

	mu      sync.Mutex
	conns   map[string]*conn // by peer id, from the welcome
	arrived chan struct{}    // closed and replaced when a peer id is registered
	pairs   map[[2]string]*pair
	stats   Stats
	errs    []error
	closed  bool
}

// Start runs a proxy in front of the server at upstream (http://host:port) on a free
// loopback port; it is closed when the test ends.
func Start(tb testing.TB, upstream string, o Options) *Proxy {
	tb.Helper()
	u, err := url.Parse(upstream)
	if err != nil || u.Host == "" {
		tb.Fatalf("mitmtest: upstream %q: %v", upstream, err)
	}
	ws := *u
	ws.Scheme = strings.Replace(u.Scheme, "http", "ws", 1)
	ws.Path = "/ws"
	p := &Proxy{
		opts: o, upstream: ws.String(),
		conns: make(map[string]*conn), arrived: make(chan struct{}), pairs: make(map[[2]string]*pair),
	}
	p.ctx, p.cancel = context.WithCancel(context.Background())
	mux := http.NewServeMux()
	mux.HandleFunc("/ws", p.serveWS)
	mux.Handle("/", httputil.NewSingleHostReverseProxy(u))
	p.srv = httptest.NewServer(mux)
	tb.Cleanup(p.Close)
	return p
}

// URL is the proxy's base URL, for --server: http://127.0.0.1:PORT.
func (p *Proxy) URL() string { return p.srv.URL }

// Stats returns what the proxy did so far.
func (p *Proxy) Stats() Stats {
	p.mu.Lock()
	defer p.mu.Unlock()
	s := p.stats
	s.Channels = append([]string(nil), s.Channels...)
	s.Bytes = p.bytes.Load()
	return s
}

// Errors returns what went wrong in the pairs it terminated (a description it could not
// apply, a channel it could not open): a test that expects a working man in the middle
// checks there is none.
func (p *Proxy) Errors() []error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]error(nil), p.errs...)
}

func (p *Proxy) fail(err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.closed {
		p.errs = append(p.errs, err)
	}
}

// Close ends every connection and pair and stops the proxy. It may be called more than once.
func (p *Proxy) Close() {
	p.mu.Lock()
	p.closed = true
	p.mu.Unlock()
	p.cancel()
	p.wg.Wait()
	p.mu.Lock()
	pairs := p.pairs
	p.pairs = make(map[[2]string]*pair)
	p.mu.Unlock()
	for _, pr := range pairs {
		pr.close()
	}
	p.srv.Close()
}

// conn is one peer's connection through the proxy.
type conn struct {
	p        *Proxy
	down, up *websocket.Conn
	mu       sync.Mutex
	id       string // the peer id of its welcome
}

func (c *conn) peerID() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.id
}

// inject writes a frame to the peer as if the server had relayed it from peer from.
func (c *conn) inject(typ, from string, data any) {
	b, err := json.Marshal(map[string]any{"type": typ, "from": from, "data": data})
	if err != nil {
		c.p.fail(fmt.Errorf("mitmtest: encode %s: %w", typ, err))
		return
	}
	c.write(b)
}

// write writes a frame to the peer; a failed write means the peer is gone.
func (c *conn) write(b []byte) {
	ctx, cancel := context.WithTimeout(c.p.ctx, 5*time.Second)
	defer cancel()
	_ = c.down.Write(ctx, websocket.MessageText, b)
}

// frame is what the proxy reads of a signaling frame.
type frame struct {
	Type   string          `json:"type"`
	ID     json.RawMessage `json:"id"`
	Target string          `json:"target"`
	Data   json.RawMessage `json:"data"`
	Peer   json.RawMessage `json:"peer"`
}

const readLimit = 1 << 20

func (p *Proxy) serveWS(w http.ResponseWriter, r *http.Request) {
	target := p.upstream
	if r.URL.RawQuery != "" {
		target += "?" + r.URL.RawQuery
	}
	dctx, cancel := context.WithTimeout(p.ctx, 10*time.Second)
	up, _, err := websocket.Dial(dctx, target, nil)
	cancel()
	if err != nil {
		http.Error(w, "mitmtest: upstream: "+err.Error(), http.StatusBadGateway)
		return
	}
	down, err := websocket.Accept(w, r, &websocket.AcceptOptions{InsecureSkipVerify: true})
	if err != nil {
		_ = up.CloseNow()
		return
	}
	up.SetReadLimit(readLimit)
	down.SetReadLimit(readLimit)
	c := &conn{p: p, down: down, up: up}
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		_ = up.CloseNow()
		_ = down.CloseNow()
		return
	}
	p.wg.Add(3)
	p.mu.Unlock()
	ctx, stop := context.WithCancel(p.ctx)
	go func() {
		defer p.wg.Done()
		defer stop()
		c.fromServer(ctx)
	}()
	go func() {
		defer p.wg.Done()
		defer stop()
		c.fromPeer(ctx)
	}()
	go func() { // both ways end together
		defer p.wg.Done()
		<-ctx.Done()
		_ = up.CloseNow()
		_ = down.CloseNow()
	}()
}

// fromServer relays the server's frames to the peer, noting its peer id and the peers that
// leave.
func (c *conn) fromServer(ctx context.Context) {
	defer c.p.forget(c)
	for {
		typ, b, err := c.up.Read(ctx)
		if err != nil {
			var ce websocket.CloseError
			if errors.As(err, &ce) {
				_ = c.down.Close(ce.Code, ce.Reason)
			}
			return
		}
		if typ == websocket.MessageText {
			var f frame
			if json.Unmarshal(b, &f) == nil {
				switch f.Type {
				case "welcome":
					var id string
					if json.Unmarshal(f.Peer, &id) == nil && id != "" {
						c.p.register(c, id)
					}
				case "peer-left":
					var info struct {
						ID string `json:"id"`
					}
					if json.Unmarshal(f.Peer, &info) == nil {
						c.p.dropPair(c.peerID(), info.ID)
					}
				}
			}
		}
		if err := c.down.Write(ctx, typ, b); err != nil {
			return
		}
	}
}

// fromPeer relays the peer's frames to the server, except those the proxy changes or takes.
func (c *conn) fromPeer(ctx context.Context) {
	for {
		typ, b, err := c.down.Read(ctx)
		if err != nil {
			var ce websocket.CloseError
			if errors.As(err, &ce) {
				_ = c.up.Close(ce.Code, ce.Reason)
			}
			return
		}
		if typ == websocket.MessageText {
			var taken bool
			if b, taken = c.p.fromPeer(c, b); taken {
				continue
			}
		}
		if err := c.up.Write(ctx, typ, b); err != nil {
			return
		}
	}
}

// fromPeer returns the frame to relay for b, or taken when the proxy keeps it.
func (p *Proxy) fromPeer(c *conn, b []byte) ([]byte, bool) {
	var f frame
	if json.Unmarshal(b, &f) != nil {
		return b, false
	}
	switch f.Type {
	case "join":
		p.mu.Lock()
		p.stats.Joins++
		p.mu.Unlock()
		if p.opts.StripQUIC {
			return p.stripQUIC(b), false
		}
	case "offer", "answer", "ice-candidate", "message":
		if !p.opts.Terminate || f.Target == "" || c.peerID() == "" {
			return b, false
		}
		if f.Type == "message" && !isNegotiate(f.Data) {
			return b, false // the application's messages (the code's exchange) go through
		}
		if !p.terminate(c, f) {
			return b, false
		}
		// The server would have acked it. (The SDK takes an ack for every relay it wrote
		// before too: those the server has not acked yet are not sent again after a
		// reconnection through the proxy.)
		if len(f.ID) > 0 {
			ack, err := json.Marshal(map[string]any{"type": "ack", "id": f.ID})
			if err == nil {
				c.write(ack)
			}
		}
		return nil, true
	}
	return b, false
}

// stripQUIC returns the join b without "quic" in its meta.
func (p *Proxy) stripQUIC(b []byte) []byte {
	var m map[string]json.RawMessage
	if json.Unmarshal(b, &m) != nil {
		return b
	}
	var meta map[string]json.RawMessage
	if json.Unmarshal(m["meta"], &meta) != nil {
		return b
	}
	if _, ok := meta["quic"]; !ok {
		return b
	}
	delete(meta, "quic")
	mb, err := json.Marshal(meta)
	if err != nil {
		return b
	}
	m["meta"] = mb
	out, err := json.Marshal(m)
	if err != nil {
		return b
	}
	p.mu.Lock()
	p.stats.Stripped++
	p.mu.Unlock()
	return out
}

// isNegotiate reports whether a message's data is the SDK's renegotiation request.
func isNegotiate(data json.RawMessage) bool {
	var m struct {
		Switchboard string `json:"switchboard"`
	}
	return json.Unmarshal(data, &m) == nil && m.Switchboard == "negotiate"
}

// register notes that c is peer id.
func (p *Proxy) register(c *conn, id string) {
	c.mu.Lock()
	c.id = id
	c.mu.Unlock()
	p.mu.Lock()
	defer p.mu.Unlock()
	p.conns[id] = c
	close(p.arrived)
	p.arrived = make(chan struct{})
}

// forget drops c and the pairs of its peer once its connection is over.
func (p *Proxy) forget(c *conn) {
	id := c.peerID()
	p.mu.Lock()
	if p.conns[id] == c {
		delete(p.conns, id)
	}
	var drop []*pair
	for k, pr := range p.pairs {
		if k[0] == id || k[1] == id {
			drop = append(drop, pr)
			delete(p.pairs, k)
		}
	}
	p.mu.Unlock()
	for _, pr := range drop {
		pr.close()
	}
}

// peerConn returns the connection of peer id, waiting up to wait for it to be welcomed (its
// welcome and the other peer's news of it come on two connections, in either order).
func (p *Proxy) peerConn(id string, wait time.Duration) *conn {
	t := time.NewTimer(wait)
	defer t.Stop()
	for {
		p.mu.Lock()
		c, arrived := p.conns[id], p.arrived
		p.mu.Unlock()
		if c != nil || wait == 0 {
			return c
		}
		select {
		case <-arrived:
		case <-t.C:
			return nil
		case <-p.ctx.Done():
			return nil
		}
	}
}

// pairKey is the key of the pair of a and b, either way round.
func pairKey(a, b string) [2]string {
	if a > b {
		a, b = b, a
	}
	return [2]string{a, b}
}

// dropPair closes the pair of a and b, if the proxy terminated it.
func (p *Proxy) dropPair(a, b string) {
	p.mu.Lock()
	pr := p.pairs[pairKey(a, b)]
	delete(p.pairs, pairKey(a, b))
	p.mu.Unlock()
	if pr != nil {
		pr.close()
	}
}
