package wsserver

import (
	"bufio"
	"encoding/binary"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/switchboard-rtc/switchboard/internal/hub"
)

// rawClient is a hand-written WebSocket client bound to a chosen source address, so a test
// can stand for distinct clients (127.0.0.2, 127.0.0.3, ...) and send frames no library would.
type rawClient struct {
	conn net.Conn
	br   *bufio.Reader
}

// rawDial opens a WebSocket to addr (host:port) from source address src, with the request
// headers in extra ("Name: value\r\n" lines). It returns the client and the HTTP status.
func rawDial(t *testing.T, addr, src, extra string) (*rawClient, int) {
	t.Helper()
	d := net.Dialer{Timeout: 5 * time.Second, LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}}
	conn, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	if !strings.Contains(extra, "Host:") {
		extra = "Host: " + addr + "\r\n" + extra
	}
	req := "GET /ws HTTP/1.1\r\n" + extra + "Upgrade: websocket\r\nConnection: Upgrade\r\n" +
		"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := conn.Write([]byte(req)); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReaderSize(conn, 64<<10)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatalf("handshake: %v", err)
	}
	resp.Body.Close()
	return &rawClient{conn: conn, br: br}, resp.StatusCode
}

// frame returns a masked frame (all-zero mask, so the payload stays readable).
func rawFrame(first byte, p []byte) []byte {
	b := []byte{first, 0x80 | byte(len(p)), 0, 0, 0, 0} // payloads here are < 126 bytes
	return append(b, p...)
}

func (c *rawClient) send(t *testing.T, s string) {
	t.Helper()
	if _, err := c.conn.Write(rawFrame(0x81, []byte(s))); err != nil {
		t.Fatal(err)
	}
}

// next reads one frame: its opcode and payload.
func (c *rawClient) next() (byte, []byte, error) {
	op, n, err := readFrameHeader(c.br)
	if err != nil {
		return 0, nil, err
	}
	p := make([]byte, n)
	_, err = io.ReadFull(c.br, p)
	return op, p, err
}

// event reads frames until a text one and decodes it.
func (c *rawClient) event(t *testing.T) map[string]any {
	t.Helper()
	for {
		op, p, err := c.next()
		if err != nil {
			t.Fatalf("read: %v", err)
		}
		if op != opText {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal(p, &m); err != nil {
			t.Fatalf("%q: %v", p, err)
		}
		return m
	}
}

// closeCode reads until the close frame and returns its code, counting the pongs before it.
func (c *rawClient) closeCode(t *testing.T) (code, pongs int) {
	t.Helper()
	for {
		op, p, err := c.next()
		if err != nil {
			t.Fatalf("no close frame (after %d pongs): %v", pongs, err)
		}
		switch op {
		case opPong:
			pongs++
		case opClose:
			if len(p) < 2 {
				t.Fatalf("close frame without a code")
			}
			return int(binary.BigEndian.Uint16(p)), pongs
		}
	}
}

func newEdgeServer(t *testing.T, cfg Config, handler func(*Server) http.Handler) (*Server, string) {
	t.Helper()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	h, err := hub.New(hub.Config{Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	cfg.Hub, cfg.Logger = h, log
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	var hh http.Handler = s
	if handler != nil {
		hh = handler(s)
	}
	hs := httptest.NewServer(hh)
	t.Cleanup(func() {
		hs.Close()
		_ = s.Close()
	})
	return s, strings.TrimPrefix(hs.URL, "http://")
}

// canary is a pair of peers in one room, from source address src, that relay messages.
type canary struct {
	a, b *rawClient
	bID  string
}

func newCanary(t *testing.T, addr, src string) *canary {
	t.Helper()
	a, _ := rawDial(t, addr, src, "")
	b, _ := rawDial(t, addr, src, "")
	a.send(t, `{"type":"join","room":"canary"}`)
	a.event(t)
	b.send(t, `{"type":"join","room":"canary"}`)
	w := b.event(t)
	if w["type"] != "welcome" {
		t.Fatalf("canary welcome: %v", w)
	}
	if m := a.event(t); m["type"] != "peer-joined" {
		t.Fatalf("canary peer-joined: %v", m)
	}
	c := &canary{a: a, b: b}
	c.bID = w["peer"].(string)
	return c
}

// relay sends n messages from a to b and checks that each arrives.
func (c *canary) relay(t *testing.T, n int) {
	t.Helper()
	for i := range n {
		c.a.send(t, `{"type":"message","target":"`+c.bID+`","data":`+strconv.Itoa(i)+`}`)
		m := c.b.event(t)
		if m["type"] != "message" || m["data"] != float64(i) {
			t.Fatalf("canary message %d: %v", i, m)
		}
	}
}

// flood is one attack on the rate limit: frames that are not whole messages.
var floods = []struct {
	name  string
	first []byte // sent once before the flood
	frame []byte // repeated
}{
	{"pings", nil, rawFrame(0x89, nil)},
	{"pongs", nil, rawFrame(0x8A, nil)},
	{"empty continuations", rawFrame(0x01, []byte(`{"type":`)), rawFrame(0x00, nil)},
}

// A flood of control frames or empty continuations (bounded: 20,000 frames) is rate-limited
// like messages and ends in close 1008, while a canary pair on another source address keeps
// relaying, before, during and after it.
func TestControlFramesAreRateLimited(t *testing.T) {
	for _, f := range floods {
		t.Run(f.name, func(t *testing.T) {
			s, addr := newEdgeServer(t, Config{}, nil)
			can := newCanary(t, addr, "127.0.0.3")
			can.relay(t, 5)
			atk, status := rawDial(t, addr, "127.0.0.2", "")
			if status != http.StatusSwitchingProtocols {
				t.Fatalf("attacker handshake: %d", status)
			}
			const n = 20000
			buf := append([]byte(nil), f.first...)
			for range n {
				buf = append(buf, f.frame...)
			}
			wrote := make(chan error, 1)
			go func() {
				_, err := atk.conn.Write(buf) // the server may close before it has read it all
				wrote <- err
			}()
			can.relay(t, 20)
			code, pongs := atk.closeCode(t)
			if code != hub.ClosePolicyViolation {
				t.Fatalf("attacker closed with %d, want 1008", code)
			}
			// Default budget: a burst of 400 and 100 strikes.
			if pongs > 500 {
				t.Fatalf("%d pongs answered to a flood", pongs)
			}
			atk.conn.Close()
			<-wrote
			if got := s.stats.FramesRateLimited.Load(); got < 100 {
				t.Fatalf("frames rate-limited %d, want ≥ 100", got)
			}
			can.relay(t, 5)
		})
	}
}

// testHandler is an adopted protocol that echoes text.
type testHandler struct{ c *Conn }

func (h *testHandler) Text(p []byte, now time.Time) error {
	h.c.SendText(func(dst []byte) []byte { return append(dst, p...) })
	return nil
}
func (h *testHandler) Binary(p []byte, now time.Time) error { return nil }
func (h *testHandler) Ping(now time.Time)                   {}
func (h *testHandler) Closed(reason string)                 {}

// An adopted connection (Socket.IO's WebSocket) has the same budget for its pings.
func TestAdoptedControlFramesAreRateLimited(t *testing.T) {
	_, addr := newEdgeServer(t, Config{}, func(s *Server) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			s.Adopt(w, r, func(c *Conn) Handler { return &testHandler{c: c} })
		})
	})
	atk, _ := rawDial(t, addr, "127.0.0.2", "")
	buf := []byte{}
	for range 5000 {
		buf = append(buf, rawFrame(0x89, nil)...)
	}
	go func() { _, _ = atk.conn.Write(buf) }()
	if code, _ := atk.closeCode(t); code != hub.ClosePolicyViolation {
		t.Fatalf("closed with %d, want 1008", code)
	}
	// A fresh connection is served.
	ok, _ := rawDial(t, addr, "127.0.0.3", "")
	ok.send(t, `"hi"`)
	if op, p, err := ok.next(); err != nil || op != opText || string(p) != `"hi"` {
		t.Fatalf("echo: %d %q %v", op, p, err)
	}
}

// A fragmented message within the limit still arrives whole.
func TestFragmentedMessageWithinTheLimit(t *testing.T) {
	_, addr := newEdgeServer(t, Config{}, nil)
	c, _ := rawDial(t, addr, "127.0.0.2", "")
	msg := append(rawFrame(0x01, []byte(`{"type":`)), rawFrame(0x00, []byte(`"join","room"`))...)
	msg = append(msg, rawFrame(0x80, []byte(`:"r"}`))...)
	if _, err := c.conn.Write(msg); err != nil {
		t.Fatal(err)
	}
	if m := c.event(t); m["type"] != "welcome" {
		t.Fatalf("got %v", m)
	}
}
