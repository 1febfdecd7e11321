package server_test

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/switchboard-rtc/switchboard/internal/config"
	"github.com/switchboard-rtc/switchboard/internal/server"
)

const waitFor = 5 * time.Second

// testServer is a real server on a loopback port.
type testServer struct {
	*server.Server
	base string // http://127.0.0.1:port
	ws   string // ws://127.0.0.1:port/ws
	stop context.CancelFunc
	done chan error
}

// startServer runs a server with the defaults changed by mod, and shuts it down at cleanup.
func startServer(t *testing.T, mod func(*config.Config)) *testServer {
	t.Helper()
	return startServerLog(t, mod, nil)
}

// startServerLog is startServer logging at debug level to logTo (nil: to t.Log when -v).
func startServerLog(t *testing.T, mod func(*config.Config), logTo io.Writer) *testServer {
	t.Helper()
	cfg := config.Default()
	cfg.Listen = "127.0.0.1:0"
	cfg.ShutdownTimeout = 3 * time.Second
	cfg.TURN = false // the TURN tests turn it on
	cfg.TURNListen = "127.0.0.1:0"
	if mod != nil {
		mod(&cfg)
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	switch {
	case logTo != nil:
		log = slog.New(slog.NewTextHandler(logTo, &slog.HandlerOptions{Level: slog.LevelDebug}))
	case testing.Verbose():
		log = slog.New(slog.NewTextHandler(newTestWriter(t), &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	srv, err := server.New(cfg, log)
	if err != nil {
		t.Fatalf("server.New: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	ts := &testServer{Server: srv, stop: cancel, done: make(chan error, 1)}
	ts.base = "http://" + srv.Addr().String()
	ts.ws = "ws://" + srv.Addr().String() + "/ws"
	go func() { ts.done <- srv.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-ts.done:
			if err != nil {
				t.Errorf("server.Run: %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Errorf("server did not stop")
		}
	})
	return ts
}

// testWriter forwards log lines to t.Log until the test's cleanups have run: a goroutine of
// the server that logs after the test ended (a TURN allocation timing out, a timer of the hub)
// must not panic the test binary with "Log in goroutine after Test... has completed".
type testWriter struct {
	t    *testing.T
	mu   sync.Mutex
	done bool
}

// newTestWriter returns a writer for t. Its cleanup is registered first, so it runs last,
// after the server's shutdown.
func newTestWriter(t *testing.T) *testWriter {
	w := &testWriter{t: t}
	t.Cleanup(func() {
		w.mu.Lock()
		w.done = true
		w.mu.Unlock()
	})
	return w
}

func (w *testWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.done {
		w.t.Log(strings.TrimRight(string(p), "\n"))
	}
	return len(p), nil
}

// msg is a decoded server frame.
type msg struct {
	Type    string          `json:"type"`
	ID      json.RawMessage `json:"id"`
	Peer    json.RawMessage `json:"peer"`
	Peers   []peerInfo      `json:"peers"`
	Room    string          `json:"room"`
	From    string          `json:"from"`
	Data    json.RawMessage `json:"data"`
	Code    string          `json:"code"`
	Message string          `json:"message"`
	Reason  string          `json:"reason"`
	V       int             `json:"v"`
	Resume  string          `json:"resume"`
	Resumed bool            `json:"resumed"`
	// Seq is an event's seq, or a resumed welcome's counter (0: absent, see Raw).
	Seq      uint64 `json:"seq"`
	Gap      bool   `json:"gap"`
	Restored bool   `json:"restored"`
	Raw      string `json:"-"`
}

type peerInfo struct {
	ID   string          `json:"id"`
	Name string          `json:"name"`
	Meta json.RawMessage `json:"meta"`
}

// peerID returns the id in a peer-joined/peer-left "peer" object or a welcome's "peer" string.
func (m msg) peerID() string {
	var s string
	if json.Unmarshal(m.Peer, &s) == nil {
		return s
	}
	var p peerInfo
	_ = json.Unmarshal(m.Peer, &p)
	return p.ID
}

// client is a real WebSocket client (coder/websocket) on loopback.
type client struct {
	t    *testing.T
	c    *websocket.Conn
	id   string
	msgs chan msg
	errc chan error
}

func dial(t *testing.T, ts *testServer) *client {
	t.Helper()
	return dialURL(t, ts.ws)
}

// dialURL is dial to a WebSocket URL (a proxy's, say).
func dialURL(t *testing.T, url string) *client {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	c, _, err := websocket.Dial(ctx, url, nil)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	c.SetReadLimit(1 << 20)
	cl := &client{t: t, c: c, msgs: make(chan msg, 1024), errc: make(chan error, 1)}
	go cl.readLoop()
	t.Cleanup(func() { c.CloseNow() })
	return cl
}

func (c *client) readLoop() {
	for {
		_, b, err := c.c.Read(context.Background())
		if err != nil {
			c.errc <- err
			close(c.msgs)
			return
		}
		var m msg
		if err := json.Unmarshal(b, &m); err != nil {
			c.errc <- fmt.Errorf("server sent invalid JSON %q: %w", b, err)
			close(c.msgs)
			return
		}
		m.Raw = string(b)
		c.msgs <- m
	}
}

func (c *client) sendRaw(s string) {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	if err := c.c.Write(ctx, websocket.MessageText, []byte(s)); err != nil {
		c.t.Fatalf("write: %v", err)
	}
}

func (c *client) send(v any) {
	c.t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		c.t.Fatal(err)
	}
	c.sendRaw(string(b))
}

// next returns the next frame, failing the test after waitFor.
func (c *client) next() msg {
	c.t.Helper()
	select {
	case m, ok := <-c.msgs:
		if !ok {
			c.t.Fatalf("connection ended: %v", <-c.errc)
		}
		return m
	case <-time.After(waitFor):
		c.t.Fatalf("no frame within %v", waitFor)
	}
	return msg{}
}

// expect returns the next frame and checks its type.
func (c *client) expect(typ string) msg {
	c.t.Helper()
	m := c.next()
	if m.Type != typ {
		c.t.Fatalf("got %s, want %s: %s", m.Type, typ, m.Raw)
	}
	return m
}

// expectError returns the next frame and checks it is an error with code.
func (c *client) expectError(code string) msg {
	c.t.Helper()
	m := c.expect("error")
	if m.Code != code {
		c.t.Fatalf("error code %q, want %q: %s", m.Code, code, m.Raw)
	}
	if m.Message == "" {
		c.t.Fatalf("error without a message: %s", m.Raw)
	}
	return m
}

// expectNothing checks no frame arrives for d.
func (c *client) expectNothing(d time.Duration) {
	c.t.Helper()
	select {
	case m, ok := <-c.msgs:
		if ok {
			c.t.Fatalf("unexpected frame: %s", m.Raw)
		}
	case <-time.After(d):
	}
}

// expectClose waits for the server to close the connection with code.
func (c *client) expectClose(code websocket.StatusCode) {
	c.t.Helper()
	deadline := time.After(waitFor)
	for {
		select {
		case _, ok := <-c.msgs:
			if ok {
				continue
			}
			err := <-c.errc
			if got := websocket.CloseStatus(err); got != code {
				c.t.Fatalf("closed with %v (%v), want %v", got, err, code)
			}
			return
		case <-deadline:
			c.t.Fatalf("not closed within %v", waitFor)
		}
	}
}

// join joins room and returns the welcome.
func (c *client) join(room string, extra map[string]any) msg {
	c.t.Helper()
	req := map[string]any{"type": "join", "room": room, "id": "join-" + room}
	for k, v := range extra {
		req[k] = v
	}
	c.send(req)
	m := c.expect("welcome")
	if string(m.ID) != `"join-`+room+`"` {
		c.t.Fatalf("welcome id %s does not echo the join", m.ID)
	}
	c.id = m.peerID()
	if len(c.id) < 22 {
		c.t.Fatalf("peer id %q is shorter than 128 bits of base64", c.id)
	}
	return m
}

// rawClient speaks WebSocket by hand over TCP, to send what a well-behaved library will not.
type rawClient struct {
	t    *testing.T
	conn net.Conn
	br   *bufio.Reader
}

func dialRaw(t *testing.T, ts *testServer, rcvbuf int) *rawClient {
	t.Helper()
	return dialRawPath(t, ts, "/ws", rcvbuf)
}

// dialRawPath is dialRaw to path (with its query).
func dialRawPath(t *testing.T, ts *testServer, path string, rcvbuf int) *rawClient {
	t.Helper()
	d := net.Dialer{Timeout: waitFor}
	if rcvbuf > 0 {
		// Set before connect so the advertised window is small from the start.
		d.Control = func(_, _ string, rc syscall.RawConn) error {
			var serr error
			err := rc.Control(func(fd uintptr) {
				serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, rcvbuf)
			})
			return errors.Join(err, serr)
		}
	}
	conn, err := d.Dial("tcp", strings.TrimPrefix(ts.base, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	var key [16]byte
	_, _ = rand.Read(key[:])
	req := "GET " + path + " HTTP/1.1\r\nHost: " + strings.TrimPrefix(ts.base, "http://") +
		"\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: " +
		base64.StdEncoding.EncodeToString(key[:]) + "\r\n\r\n"
	if _, err := conn.Write([]byte(req)); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(conn)
	_ = conn.SetReadDeadline(time.Now().Add(waitFor))
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("handshake: %s", resp.Status)
	}
	return &rawClient{t: t, conn: conn, br: br}
}

// writeFrame writes one frame with the given first byte (FIN, RSV, opcode), masked if mask.
func (r *rawClient) writeFrame(b0 byte, payload []byte, mask bool) {
	r.t.Helper()
	var hdr []byte
	hdr = append(hdr, b0)
	mbit := byte(0)
	if mask {
		mbit = 0x80
	}
	switch n := len(payload); {
	case n < 126:
		hdr = append(hdr, mbit|byte(n))
	case n <= 0xFFFF:
		hdr = append(hdr, mbit|126, byte(n>>8), byte(n))
	default:
		hdr = append(hdr, mbit|127)
		hdr = binary.BigEndian.AppendUint64(hdr, uint64(n))
	}
	p := append([]byte(nil), payload...)
	if mask {
		key := [4]byte{1, 2, 3, 4}
		hdr = append(hdr, key[:]...)
		for i := range p {
			p[i] ^= key[i&3]
		}
	}
	_ = r.conn.SetWriteDeadline(time.Now().Add(waitFor))
	if _, err := r.conn.Write(append(hdr, p...)); err != nil {
		r.t.Fatalf("raw write: %v", err)
	}
}

func (r *rawClient) sendText(s string) { r.writeFrame(0x81, []byte(s), true) }

// readFrame reads one server frame and returns its opcode and payload.
func (r *rawClient) readFrame() (byte, []byte, error) {
	_ = r.conn.SetReadDeadline(time.Now().Add(waitFor))
	var h [2]byte
	if _, err := io.ReadFull(r.br, h[:]); err != nil {
		return 0, nil, err
	}
	if h[1]&0x80 != 0 {
		return 0, nil, errors.New("server frame is masked")
	}
	n := uint64(h[1] & 0x7F)
	switch n {
	case 126:
		var b [2]byte
		if _, err := io.ReadFull(r.br, b[:]); err != nil {
			return 0, nil, err
		}
		n = uint64(binary.BigEndian.Uint16(b[:]))
	case 127:
		var b [8]byte
		if _, err := io.ReadFull(r.br, b[:]); err != nil {
			return 0, nil, err
		}
		n = binary.BigEndian.Uint64(b[:])
	}
	p := make([]byte, n)
	if _, err := io.ReadFull(r.br, p); err != nil {
		return 0, nil, err
	}
	return h[0] & 0x0F, p, nil
}

// expectClose reads frames until a close frame and checks its code.
func (r *rawClient) expectClose(code uint16) {
	r.t.Helper()
	for {
		op, p, err := r.readFrame()
		if err != nil {
			r.t.Fatalf("no close frame: %v", err)
		}
		if op != 0x8 {
			continue
		}
		if len(p) < 2 || binary.BigEndian.Uint16(p) != code {
			r.t.Fatalf("close payload %q, want code %d", p, code)
		}
		return
	}
}

// expectText reads the next data frame and decodes it.
func (r *rawClient) expectText(typ string) msg {
	r.t.Helper()
	for {
		op, p, err := r.readFrame()
		if err != nil {
			r.t.Fatalf("read: %v", err)
		}
		if op != 0x1 {
			continue
		}
		var m msg
		if err := json.Unmarshal(p, &m); err != nil {
			r.t.Fatalf("bad JSON %q: %v", p, err)
		}
		m.Raw = string(p)
		if m.Type != typ {
			r.t.Fatalf("got %s, want %s", m.Raw, typ)
		}
		return m
	}
}

// metricValue scrapes /metrics and returns the value of the series named exactly name.
func metricValue(t *testing.T, ts *testServer, name string) string {
	t.Helper()
	resp, err := http.Get(ts.base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	for _, line := range strings.Split(string(body), "\n") {
		if v, ok := strings.CutPrefix(line, name+" "); ok {
			return v
		}
	}
	return ""
}
