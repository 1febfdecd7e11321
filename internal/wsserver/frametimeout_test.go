package wsserver

import (
	"bufio"
	"context"
	"encoding/binary"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/switchboard-rtc/switchboard/internal/hub"
	"github.com/switchboard-rtc/switchboard/internal/stats"
)

// TestUnfinishedFrameIsClosed: a frame left incomplete (its bytes dripped slower than it can
// finish, so the connection never looks silent) and a fragmented message never finished are
// each closed with 1008 within the frame timeout, while a pair of peers on another source
// address joins and relays throughout.
func TestUnfinishedFrameIsClosed(t *testing.T) {
	const frameTimeout = 400 * time.Millisecond
	s, hs := startTestServer(t, hub.Config{}, Config{FrameTimeout: frameTimeout})
	addr := strings.TrimPrefix(hs.URL, "http://")

	cases := []struct {
		name  string
		first []byte        // sent at once
		drip  func() []byte // sent every 50 ms until the close
	}{
		{
			name: "partial frame",
			// A 1,000-byte masked text frame of which only the header and a byte arrive,
			// then a byte every 50 ms.
			first: append(binary.BigEndian.AppendUint16([]byte{0x81, 0x80 | 126}, 1000), 0, 0, 0, 0, ' '),
			drip:  func() []byte { return []byte{' '} },
		},
		{
			name: "fragmented message",
			// The first fragment of a text message, then only pings (complete frames).
			first: []byte{0x01, 0x80 | 1, 0, 0, 0, 0, '{'},
			drip:  func() []byte { return []byte{0x89, 0x80, 0, 0, 0, 0} },
		},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			before := s.stats.Timeouts[stats.TimeoutFrame].Load()
			attacker := rawDialIP(t, addr, net.IPv4(127, 0, 0, byte(10+i)))
			if _, err := attacker.conn.Write(tc.first); err != nil {
				t.Fatal(err)
			}
			// The attacker drips on its own goroutine until its connection ends.
			dripDone := make(chan struct{})
			stop := make(chan struct{})
			go func() {
				defer close(dripDone)
				tick := time.NewTicker(50 * time.Millisecond)
				defer tick.Stop()
				for {
					select {
					case <-stop:
						return
					case <-tick.C:
						if _, err := attacker.conn.Write(tc.drip()); err != nil {
							return
						}
					}
				}
			}()
			defer func() { close(stop); <-dripDone }()

			a, b := canaryPair(t, hs.URL, net.IPv4(127, 0, 0, 3))
			canaryRelay(t, a, b)

			start := time.Now()
			_ = attacker.conn.SetReadDeadline(start.Add(frameTimeout + 3*time.Second))
			code, reason := attacker.readClose(t)
			if code != hub.ClosePolicyViolation {
				t.Fatalf("closed with %d %q, want 1008", code, reason)
			}
			if waited := time.Since(start); waited > frameTimeout+2*time.Second {
				t.Errorf("closed after %v, frame timeout %v", waited, frameTimeout)
			}
			if got := s.stats.Timeouts[stats.TimeoutFrame].Load() - before; got != 1 {
				t.Errorf("ws-frame timeouts counted %d, want 1", got)
			}
			canaryRelay(t, a, b)
		})
	}
}

type rawConn struct {
	conn net.Conn
	br   *bufio.Reader
}

// rawDial opens a WebSocket to addr from the local address ip, by hand.
func rawDialIP(t *testing.T, addr string, ip net.IP) *rawConn {
	t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: ip}, Timeout: 5 * time.Second}
	conn, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	req := "GET /ws HTTP/1.1\r\nHost: " + addr + "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
		"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
	if _, err := conn.Write([]byte(req)); err != nil {
		t.Fatal(err)
	}
	_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, nil)
	if err != nil || resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("handshake: %v %v", resp, err)
	}
	return &rawConn{conn: conn, br: br}
}

// readClose reads frames until a close frame and returns its code and reason.
func (c *rawConn) readClose(t *testing.T) (int, string) {
	t.Helper()
	for {
		var h [2]byte
		if _, err := io.ReadFull(c.br, h[:]); err != nil {
			t.Fatalf("no close frame: %v", err)
		}
		n := int(h[1] & 0x7F) // the server sends only short frames here
		if n >= 126 {
			ext := make([]byte, map[int]int{126: 2, 127: 8}[n])
			if _, err := io.ReadFull(c.br, ext); err != nil {
				t.Fatal(err)
			}
			n = 0
			for _, b := range ext {
				n = n<<8 | int(b)
			}
		}
		p := make([]byte, n)
		if _, err := io.ReadFull(c.br, p); err != nil {
			t.Fatal(err)
		}
		if h[0]&0x0F == opClose {
			if len(p) < 2 {
				return 1005, ""
			}
			return int(binary.BigEndian.Uint16(p)), string(p[2:])
		}
	}
}

// canaryPair joins two peers from ip to one room and returns them with the second's id.
func canaryPair(t *testing.T, baseURL string, ip net.IP) (*websocket.Conn, canaryPeer) {
	t.Helper()
	dial := func() *websocket.Conn {
		d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: ip}}
		client := &http.Client{Transport: &http.Transport{DialContext: d.DialContext}}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		c, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(baseURL, "http")+"/ws", &websocket.DialOptions{HTTPClient: client})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.CloseNow() })
		return c
	}
	a, b := dial(), dial()
	writeT(t, a, `{"type":"join","room":"canary"}`)
	readType(t, a, "welcome")
	writeT(t, b, `{"type":"join","room":"canary"}`)
	var id string
	if err := json.Unmarshal(readType(t, b, "welcome").Peer, &id); err != nil {
		t.Fatal(err)
	}
	readType(t, a, "peer-joined")
	return a, canaryPeer{c: b, id: id}
}

type canaryPeer struct {
	c  *websocket.Conn
	id string
}

// canaryRelay sends a message from a to b and waits for it.
func canaryRelay(t *testing.T, a *websocket.Conn, b canaryPeer) {
	t.Helper()
	writeT(t, a, `{"type":"message","target":"`+b.id+`","data":{"canary":true}}`)
	readType(t, b.c, "message")
}

type typedMsg struct {
	Type string          `json:"type"`
	Peer json.RawMessage `json:"peer"` // an id in a welcome, an object elsewhere
}

// readType reads messages until one of type typ.
func readType(t *testing.T, c *websocket.Conn, typ string) typedMsg {
	t.Helper()
	for {
		s, err := readT(t, c)
		if err != nil {
			t.Fatalf("waiting for %s: %v", typ, err)
		}
		var m typedMsg
		if err := json.Unmarshal([]byte(s), &m); err != nil {
			t.Fatal(err)
		}
		if m.Type == typ {
			return m
		}
		if m.Type == "error" {
			t.Fatalf("waiting for %s: %s", typ, s)
		}
	}
}
