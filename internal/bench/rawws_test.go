package bench

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"go.uber.org/goleak"
)

// wsURL turns an httptest server URL into a ws:// URL for path.
func wsURL(srv *httptest.Server, path string) string {
	return "ws" + strings.TrimPrefix(srv.URL, "http") + path
}

// rawDialTo dials srv's path with a fresh rawConn.
func rawDialTo(t *testing.T, srv *httptest.Server, path string) (*rawConn, error) {
	t.Helper()
	d, err := newRawDialer(wsURL(srv, path), 4, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	c := newRawConn()
	return c, d.dial(context.Background(), c, 0)
}

// hijackServer serves an Upgrade by hand: respond writes the response to the
// request (given the client's key), then serve (if any) runs on the raw
// connection, which is closed when serve returns.
func hijackServer(t *testing.T, respond func(w io.Writer, key string), serve func(conn net.Conn, br *bufio.Reader)) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		conn, brw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			t.Error(err)
			return
		}
		defer conn.Close()
		respond(conn, r.Header.Get("Sec-WebSocket-Key"))
		if serve != nil {
			serve(conn, brw.Reader)
		}
	}))
	t.Cleanup(srv.Close)
	return srv
}

// discardAll reads the client's bytes until it closes the connection.
func discardAll(_ net.Conn, br *bufio.Reader) { _, _ = io.Copy(io.Discard, br) }

// respond101 writes a correct 101 response.
func respond101(w io.Writer, key string) {
	var acc [28]byte
	wsAccept(acc[:], []byte(key))
	fmt.Fprintf(w, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: %s\r\n\r\n", acc[:])
}

// readClientFrame reads one masked client frame.
func readClientFrame(br *bufio.Reader) (op byte, payload []byte, err error) {
	var h [2]byte
	if _, err := io.ReadFull(br, h[:]); err != nil {
		return 0, nil, err
	}
	if h[0]&0x80 == 0 || h[1]&0x80 == 0 {
		return 0, nil, fmt.Errorf("client frame not final or not masked: % x", h)
	}
	n := uint64(h[1] & 0x7F)
	switch n {
	case 126:
		var b [2]byte
		if _, err := io.ReadFull(br, b[:]); err != nil {
			return 0, nil, err
		}
		n = uint64(binary.BigEndian.Uint16(b[:]))
	case 127:
		var b [8]byte
		if _, err := io.ReadFull(br, b[:]); err != nil {
			return 0, nil, err
		}
		n = binary.BigEndian.Uint64(b[:])
	}
	var mask [4]byte
	if _, err := io.ReadFull(br, mask[:]); err != nil {
		return 0, nil, err
	}
	payload = make([]byte, n)
	if _, err := io.ReadFull(br, payload); err != nil {
		return 0, nil, err
	}
	for i := range payload {
		payload[i] ^= mask[i%4]
	}
	return h[0] & 0x0F, payload, nil
}

// serverFrame builds an unmasked server frame.
func serverFrame(fin bool, op byte, p []byte) []byte {
	b0 := op
	if fin {
		b0 |= 0x80
	}
	b := []byte{b0}
	switch n := len(p); {
	case n <= 125:
		b = append(b, byte(n))
	case n <= 0xFFFF:
		b = append(b, 126, byte(n>>8), byte(n))
	default:
		b = append(b, 127)
		b = binary.BigEndian.AppendUint64(b, uint64(n))
	}
	return append(b, p...)
}

func TestWSAcceptRFCExample(t *testing.T) {
	// RFC 6455, section 1.3.
	var got [28]byte
	wsAccept(got[:], []byte("dGhlIHNhbXBsZSBub25jZQ=="))
	if string(got[:]) != "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=" {
		t.Errorf("accept = %s", got[:])
	}
}

func TestRawHandshake(t *testing.T) {
	t.Cleanup(func() { goleak.VerifyNone(t) }) // after the servers' cleanups
	coderAccept := func(t *testing.T) *httptest.Server {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			c, err := websocket.Accept(w, r, nil)
			if err != nil {
				return
			}
			defer c.CloseNow()
			_, _, _ = c.Read(context.Background()) // until the client's close
		}))
		t.Cleanup(srv.Close)
		return srv
	}
	hijacked := func(resp func(w io.Writer, key string)) func(t *testing.T) *httptest.Server {
		return func(t *testing.T) *httptest.Server { return hijackServer(t, resp, nil) }
	}
	tests := []struct {
		name    string
		server  func(t *testing.T) *httptest.Server
		wantErr string // "" for success
	}{
		{"coder Accept", coderAccept, ""},
		{"hand-written 101", func(t *testing.T) *httptest.Server {
			// Reads the client's close frame, then closes the TCP connection.
			return hijackServer(t, respond101, func(_ net.Conn, br *bufio.Reader) { _, _, _ = readClientFrame(br) })
		}, ""},
		{"wrong accept key", hijacked(func(w io.Writer, key string) {
			fmt.Fprint(w, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n")
		}), "Sec-WebSocket-Accept"},
		{"no accept header", hijacked(func(w io.Writer, key string) {
			fmt.Fprint(w, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n")
		}), "without Sec-WebSocket-Accept"},
		{"no upgrade header", hijacked(func(w io.Writer, key string) {
			var acc [28]byte
			wsAccept(acc[:], []byte(key))
			fmt.Fprintf(w, "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: %s\r\n\r\n", acc[:])
		}), "without Upgrade"},
		{"extension not offered", hijacked(func(w io.Writer, key string) {
			var acc [28]byte
			wsAccept(acc[:], []byte(key))
			fmt.Fprintf(w, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: upgrade\r\nSec-WebSocket-Extensions: permessage-deflate\r\nSec-WebSocket-Accept: %s\r\n\r\n", acc[:])
		}), "none was offered"},
		{"not 101", hijacked(func(w io.Writer, key string) {
			fmt.Fprint(w, "HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
		}), "HTTP 400"},
		{"EOF in headers", hijacked(func(w io.Writer, key string) {
			fmt.Fprint(w, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n")
		}), "unexpected EOF"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := tt.server(t)
			c, err := rawDialTo(t, srv, "/ws")
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("dial: %v", err)
				}
				if err := c.closeGracefully(5 * time.Second); err != nil {
					t.Errorf("close: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("dial error = %v, want one containing %q", err, tt.wantErr)
			}
			if c.conn != nil {
				t.Error("failed dial left a connection behind")
			}
		})
	}
}

func TestRawRequestLine(t *testing.T) {
	got := make(chan *http.Request, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got <- r
		http.Error(w, "no", http.StatusForbidden)
	}))
	defer srv.Close()
	if _, err := rawDialTo(t, srv, "/socket.io/?EIO=4&transport=websocket"); err == nil || !strings.Contains(err.Error(), "HTTP 403") {
		t.Errorf("dial error = %v", err)
	}
	r := <-got
	if r.URL.RequestURI() != "/socket.io/?EIO=4&transport=websocket" || r.Host != strings.TrimPrefix(srv.URL, "http://") ||
		r.Header.Get("Upgrade") != "websocket" || r.Header.Get("Connection") != "Upgrade" ||
		r.Header.Get("Sec-WebSocket-Version") != "13" || len(r.Header.Get("Sec-WebSocket-Key")) != 24 {
		t.Errorf("request %s %s host %s headers %v", r.Method, r.URL, r.Host, r.Header)
	}
}

func TestRawFrameRoundTrip(t *testing.T) {
	t.Cleanup(func() { goleak.VerifyNone(t) }) // after the servers' cleanups
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := websocket.Accept(w, r, nil)
		if err != nil {
			return
		}
		defer c.CloseNow()
		c.SetReadLimit(1 << 20)
		ctx := context.Background()
		for {
			typ, msg, err := c.Read(ctx)
			if err != nil {
				return
			}
			if err := c.Write(ctx, typ, msg); err != nil {
				return
			}
		}
	}))
	defer srv.Close()
	c, err := rawDialTo(t, srv, "/")
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range []int{0, 125, 126, 65535, 65536, 70000} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			p := make([]byte, n)
			for i := range p {
				p[i] = 'a' + byte(i*7%26)
			}
			if err := c.writeText(p); err != nil {
				t.Fatal(err)
			}
			got, err := c.readMessage()
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, p) {
				t.Errorf("echo of %d bytes came back as %d bytes (equal prefix: %v)", n, len(got), bytes.HasPrefix(p, got))
			}
		})
	}
	if err := c.closeGracefully(5 * time.Second); err != nil {
		t.Errorf("close: %v", err)
	}
}

func TestMaskBytes(t *testing.T) {
	for n := range 20 {
		p := make([]byte, n)
		for i := range p {
			p[i] = byte(i * 31)
		}
		q := bytes.Clone(p)
		key := uint32(0xA1B2C3D4)
		maskBytes(q, key)
		var m [4]byte
		binary.LittleEndian.PutUint32(m[:], key)
		for i := range q {
			if q[i] != p[i]^m[i%4] {
				t.Fatalf("n=%d: byte %d = %#x, want %#x", n, i, q[i], p[i]^m[i%4])
			}
		}
	}
}

func TestRawPingAnswered(t *testing.T) {
	t.Cleanup(func() { goleak.VerifyNone(t) }) // after the servers' cleanups
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := websocket.Accept(w, r, nil)
		if err != nil {
			return
		}
		defer c.CloseNow()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		rctx := c.CloseRead(ctx) // reads (and so receives pongs) until the close
		result := "pong received"
		if err := c.Ping(ctx); err != nil {
			result = "ping: " + err.Error()
		}
		_ = c.Write(ctx, websocket.MessageText, []byte(result))
		<-rctx.Done()
	}))
	defer srv.Close()
	c, err := rawDialTo(t, srv, "/")
	if err != nil {
		t.Fatal(err)
	}
	msg, err := c.readMessage() // answers the ping while waiting
	if err != nil {
		t.Fatal(err)
	}
	if string(msg) != "pong received" {
		t.Errorf("server says %q", msg)
	}
	if err := c.closeGracefully(5 * time.Second); err != nil {
		t.Errorf("close: %v", err)
	}
}

// TestRawServerFrames drives the reader with hand-made frames: a 64-bit
// length, a fragmented message with a ping and a pong between the fragments,
// and the server's close.
func TestRawServerFrames(t *testing.T) {
	t.Cleanup(func() { goleak.VerifyNone(t) }) // after the servers' cleanups
	big := bytes.Repeat([]byte("x"), 70000)
	pong := make(chan string, 1)
	srv := hijackServer(t, respond101, func(conn net.Conn, br *bufio.Reader) {
		var b []byte
		b = append(b, serverFrame(true, opText, big)...)
		b = append(b, serverFrame(false, opText, []byte("hel"))...)
		b = append(b, serverFrame(true, opPing, []byte("p1"))...)
		b = append(b, serverFrame(true, opPong, []byte("unsolicited"))...)
		b = append(b, serverFrame(true, opContinuation, []byte("lo"))...)
		_, _ = conn.Write(b)
		op, p, err := readClientFrame(br)
		pong <- fmt.Sprintf("%#x %s %v", op, p, err)
		_, _ = conn.Write(serverFrame(true, opClose, []byte{0x03, 0xE9, 'b', 'y', 'e'}))
	})
	c, err := rawDialTo(t, srv, "/")
	if err != nil {
		t.Fatal(err)
	}
	defer c.close()
	for _, want := range [][]byte{big, []byte("hello")} {
		got, err := c.readMessage()
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("got %d bytes, want %d", len(got), len(want))
		}
	}
	if got := <-pong; got != "0xa p1 <nil>" {
		t.Errorf("answer to ping: %s", got)
	}
	_, err = c.readMessage()
	var ce *closeError
	if !errors.As(err, &ce) || ce.code != 1001 || ce.reason != "bye" {
		t.Errorf("err = %v, want the server's close 1001 bye", err)
	}
}

func TestRawCloseHandshake(t *testing.T) {
	t.Cleanup(func() { goleak.VerifyNone(t) }) // after the servers' cleanups
	t.Run("coder server", func(t *testing.T) {
		status := make(chan websocket.StatusCode, 1)
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			c, err := websocket.Accept(w, r, nil)
			if err != nil {
				return
			}
			defer c.CloseNow()
			_, _, err = c.Read(context.Background()) // answers the close frame
			status <- websocket.CloseStatus(err)
		}))
		defer srv.Close()
		c, err := rawDialTo(t, srv, "/")
		if err != nil {
			t.Fatal(err)
		}
		if err := c.closeGracefully(5 * time.Second); err != nil {
			t.Errorf("close: %v", err)
		}
		if !c.closeRecv {
			t.Error("no close frame from the server was read")
		}
		if s := <-status; s != websocket.StatusNormalClosure {
			t.Errorf("server saw status %v", s)
		}
	})
	t.Run("server closes TCP", func(t *testing.T) {
		got := make(chan string, 1)
		srv := hijackServer(t, respond101, func(conn net.Conn, br *bufio.Reader) {
			op, p, err := readClientFrame(br)
			got <- fmt.Sprintf("%#x % x %v", op, p, err)
			_ = conn.Close() // EOF instead of a close frame
		})
		c, err := rawDialTo(t, srv, "/")
		if err != nil {
			t.Fatal(err)
		}
		if err := c.closeGracefully(5 * time.Second); err != nil {
			t.Errorf("close: %v", err)
		}
		if s := <-got; s != "0x8 03 e8 <nil>" {
			t.Errorf("server read %s", s)
		}
	})
	t.Run("server silent", func(t *testing.T) {
		srv := hijackServer(t, respond101, discardAll)
		c, err := rawDialTo(t, srv, "/")
		if err != nil {
			t.Fatal(err)
		}
		if err := c.closeGracefully(200 * time.Millisecond); err == nil || !errors.Is(err, context.DeadlineExceeded) && !strings.Contains(err.Error(), "timeout") {
			t.Errorf("close: %v, want a timeout", err)
		}
	})
}

func TestOpenConnectProtocols(t *testing.T) {
	t.Cleanup(func() { goleak.VerifyNone(t) }) // after the servers' cleanups
	for _, p := range []protoKind{protoNative, protoSocketIO} {
		t.Run(p.String(), func(t *testing.T) {
			f := newFakeServer(t)
			d, err := newRawDialer(f.url(p), 2, 5*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			c := newRawConn()
			for k := range 5 { // the rawConn is reused
				if err := openConnect(context.Background(), d, c, p, k, fmt.Appendf(nil, "room-%d", k), ""); err != nil {
					t.Fatalf("open %d: %v", k, err)
				}
				if err := c.closeGracefully(5 * time.Second); err != nil {
					t.Fatalf("close %d: %v", k, err)
				}
			}
		})
	}
}

func TestOpenConnectErrors(t *testing.T) {
	t.Cleanup(func() { goleak.VerifyNone(t) }) // after the servers' cleanups
	tests := []struct {
		name    string
		proto   protoKind
		frames  [][]byte
		wantErr string
	}{
		{"native error frame", protoNative, [][]byte{[]byte(`{"type":"error","code":"room-full","message":"full"}`)}, "room-full: full"},
		{"welcome without peer", protoNative, [][]byte{[]byte(`{"type":"welcome","peers":[]}`)}, "without peer id"},
		{"not an engine.io open", protoSocketIO, [][]byte{[]byte(`40{"sid":"x"}`)}, "want engine.io open"},
		{"CONNECT_ERROR", protoSocketIO, [][]byte{[]byte(`0{"sid":"e"}`), []byte("2"), []byte(`44{"message":"no"}`)}, "CONNECT_ERROR"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := hijackServer(t, respond101, func(conn net.Conn, br *bufio.Reader) {
				for _, f := range tt.frames {
					_, _ = conn.Write(serverFrame(true, opText, f))
				}
				_, _ = io.Copy(io.Discard, br)
			})
			d, err := newRawDialer(wsURL(srv, "/"), 1, 5*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			c := newRawConn()
			err = openConnect(context.Background(), d, c, tt.proto, 0, []byte("r"), "")
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("err = %v, want one containing %q", err, tt.wantErr)
			}
			if c.conn != nil {
				t.Error("failed open left a connection behind")
			}
		})
	}
	t.Run("cancelled while waiting", func(t *testing.T) {
		srv := hijackServer(t, respond101, discardAll)
		d, err := newRawDialer(wsURL(srv, "/"), 1, 30*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		defer cancel()
		start := time.Now()
		err = openConnect(ctx, d, newRawConn(), protoNative, 0, []byte("r"), "")
		if err == nil || time.Since(start) > 5*time.Second {
			t.Errorf("err = %v after %v", err, time.Since(start))
		}
	})
}
