package wsserver

import (
	"bufio"
	"context"
	"encoding/binary"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/coder/websocket"

	"github.com/switchboard-rtc/switchboard/internal/hub"
	"github.com/switchboard-rtc/switchboard/internal/membudget"
	"github.com/switchboard-rtc/switchboard/protocol"
)

// BenchmarkRelay measures one relayed 3 KB offer, client to server to client, over real
// loopback sockets, against the naive anchor below in the same run:
//
//	go test -run '^$' -bench Relay ./internal/wsserver/
func BenchmarkRelay(b *testing.B) {
	for _, budget := range []int64{0, 1 << 30} {
		name := "switchboard"
		if budget > 0 {
			name += "-with-memory-budget" // as serve runs: every queue charged
		}
		b.Run(name, func(b *testing.B) {
			log := slog.New(slog.NewTextHandler(io.Discard, nil))
			h, err := hub.New(hub.Config{Logger: log, RateLimit: 1e9, RateBurst: 1e9})
			if err != nil {
				b.Fatal(err)
			}
			var mb *membudget.Budget
			if budget > 0 {
				mb = membudget.New(budget)
			}
			s, err := New(Config{Hub: h, Logger: log, Budget: mb, KernelSendBuffer: 128 << 10})
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			benchRelay(b, s)
		})
	}
	b.Run("naive-goroutine-per-conn", func(b *testing.B) {
		benchRelay(b, newNaiveServer())
	})
}

func benchRelay(b *testing.B, handler http.Handler) {
	hs := httptest.NewServer(handler)
	defer hs.Close()
	addr := strings.TrimPrefix(hs.URL, "http://")
	callee := benchDial(b, addr)
	caller := benchDial(b, addr)
	defer callee.Close()
	defer caller.Close()
	callee.write(`{"type":"join","room":"bench"}`)
	calleeID := callee.readJSON().Peer
	caller.write(`{"type":"join","room":"bench"}`)
	caller.readJSON()
	callee.readJSON() // peer-joined

	sdp := strings.Repeat(`a=candidate:1 1 udp 2122260223 192.0.2.10 54400 typ host\r\n`, 50)
	frame := callee.frame(`{"type":"offer","target":"` + calleeID + `","data":{"type":"offer","sdp":"` + sdp + `"}}`)
	b.SetBytes(int64(len(frame)))
	b.ReportAllocs()
	b.ResetTimer()
	// At most 64 messages in flight: the server drops a peer that falls a send queue behind,
	// and the benchmark measures relaying, not that.
	window := make(chan struct{}, 64)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; i < b.N; i++ {
			window <- struct{}{}
			if _, err := caller.conn.Write(frame); err != nil {
				b.Error(err)
				return
			}
		}
	}()
	for i := 0; i < b.N; i++ {
		op, p, err := callee.readFrame()
		if err != nil {
			b.Fatal(err)
		}
		if op == opPing {
			// A mark ping (the server asks what was read): answered as every client does.
			if _, err := callee.conn.Write(callee.control(opPong, p)); err != nil {
				b.Fatal(err)
			}
			i--
			continue
		}
		<-window
	}
	wg.Wait()
}

type benchConn struct {
	conn net.Conn
	br   *bufio.Reader
	buf  []byte
}

func benchDial(b *testing.B, addr string) *benchConn {
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		b.Fatal(err)
	}
	req := "GET /ws HTTP/1.1\r\nHost: " + addr + "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
		"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
	if _, err := conn.Write([]byte(req)); err != nil {
		b.Fatal(err)
	}
	br := bufio.NewReaderSize(conn, 64<<10)
	resp, err := http.ReadResponse(br, nil)
	if err != nil || resp.StatusCode != http.StatusSwitchingProtocols {
		b.Fatalf("handshake: %v %v", resp, err)
	}
	return &benchConn{conn: conn, br: br}
}

func (c *benchConn) Close() { c.conn.Close() }

// frame returns a masked text frame (all-zero mask, so the payload stays readable).
func (c *benchConn) frame(s string) []byte {
	n := len(s)
	var hdr []byte
	switch {
	case n < 126:
		hdr = []byte{0x81, 0x80 | byte(n)}
	case n <= 0xFFFF:
		hdr = []byte{0x81, 0x80 | 126, byte(n >> 8), byte(n)}
	default:
		hdr = binary.BigEndian.AppendUint64([]byte{0x81, 0x80 | 127}, uint64(n))
	}
	hdr = append(hdr, 0, 0, 0, 0)
	return append(hdr, s...)
}

func (c *benchConn) write(s string) { _, _ = c.conn.Write(c.frame(s)) }

// control returns a masked control frame (all-zero mask) carrying p (≤ 125 bytes).
func (c *benchConn) control(op byte, p []byte) []byte {
	return append([]byte{0x80 | op, 0x80 | byte(len(p)), 0, 0, 0, 0}, p...)
}

func (c *benchConn) readFrame() (byte, []byte, error) {
	op, n, err := readFrameHeader(c.br)
	if err != nil {
		return 0, nil, err
	}
	if cap(c.buf) < n {
		c.buf = make([]byte, n)
	}
	p := c.buf[:n]
	_, err = io.ReadFull(c.br, p)
	return op, p, err
}

// readFrameHeader reads an unmasked server frame's header: its opcode and payload length.
func readFrameHeader(br io.Reader) (byte, int, error) {
	var h [2]byte
	if _, err := io.ReadFull(br, h[:]); err != nil {
		return 0, 0, err
	}
	n := int(h[1] & 0x7F)
	switch n {
	case 126:
		var l [2]byte
		if _, err := io.ReadFull(br, l[:]); err != nil {
			return 0, 0, err
		}
		n = int(binary.BigEndian.Uint16(l[:]))
	case 127:
		var l [8]byte
		if _, err := io.ReadFull(br, l[:]); err != nil {
			return 0, 0, err
		}
		n = int(binary.BigEndian.Uint64(l[:]))
	}
	return h[0] & 0x0F, n, nil
}

type benchMsg struct {
	Type string `json:"type"`
	Peer string `json:"peer"`
}

func (c *benchConn) readJSON() benchMsg {
	_, p, _ := c.readFrame()
	var m benchMsg
	_ = json.Unmarshal(p, &m)
	return m
}

// naiveServer is the anchor: a straightforward goroutine-per-connection relay on
// coder/websocket that decodes each frame with encoding/json and re-encodes it.
type naiveServer struct {
	mu    sync.Mutex
	peers map[string]*websocket.Conn
	rooms map[string][]string
}

func newNaiveServer() *naiveServer {
	return &naiveServer{peers: map[string]*websocket.Conn{}, rooms: map[string][]string{}}
}

func (n *naiveServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	c, err := websocket.Accept(w, r, nil)
	if err != nil {
		return
	}
	c.SetReadLimit(64 << 10)
	id := string(protocol.NewPeerID())
	ctx := context.Background()
	defer func() {
		n.mu.Lock()
		delete(n.peers, id)
		n.mu.Unlock()
		c.CloseNow()
	}()
	for {
		_, b, err := c.Read(ctx)
		if err != nil {
			return
		}
		var in struct {
			Type   string          `json:"type"`
			Room   string          `json:"room"`
			Target string          `json:"target"`
			Data   json.RawMessage `json:"data"`
		}
		if json.Unmarshal(b, &in) != nil {
			continue
		}
		switch in.Type {
		case "join":
			n.mu.Lock()
			others := n.rooms[in.Room]
			n.rooms[in.Room] = append(others, id)
			n.peers[id] = c
			var conns []*websocket.Conn
			for _, o := range others {
				conns = append(conns, n.peers[o])
			}
			n.mu.Unlock()
			out, _ := json.Marshal(map[string]any{"type": "welcome", "peer": id, "peers": others})
			_ = c.Write(ctx, websocket.MessageText, out)
			pj, _ := json.Marshal(map[string]any{"type": "peer-joined", "peer": map[string]string{"id": id}})
			for _, o := range conns {
				_ = o.Write(ctx, websocket.MessageText, pj)
			}
		default:
			n.mu.Lock()
			t := n.peers[in.Target]
			n.mu.Unlock()
			if t == nil {
				continue
			}
			out, _ := json.Marshal(map[string]any{"type": in.Type, "from": id, "data": in.Data})
			_ = t.Write(ctx, websocket.MessageText, out)
		}
	}
}
