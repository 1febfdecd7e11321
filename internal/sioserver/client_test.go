package sioserver

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
)

// wsClient is a raw Engine.IO v4 / Socket.IO v5 client over WebSocket for the Go tests: it
// sends and reads packets as strings and answers pings itself.
type wsClient struct {
	t   *testing.T
	c   *websocket.Conn
	id  string // socket id after connect
	sid string
}

func dialSIO(t *testing.T, base string, hdr http.Header) *wsClient {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	u := "ws" + strings.TrimPrefix(base, "http") + "socket.io/?EIO=4&transport=websocket"
	c, _, err := websocket.Dial(ctx, u, &websocket.DialOptions{HTTPHeader: hdr})
	if err != nil {
		t.Fatalf("dial %s: %v", u, err)
	}
	c.SetReadLimit(1 << 20)
	t.Cleanup(func() { _ = c.CloseNow() })
	cl := &wsClient{t: t, c: c}
	open := cl.read()
	var o struct {
		SID          string   `json:"sid"`
		Upgrades     []string `json:"upgrades"`
		PingInterval int      `json:"pingInterval"`
		PingTimeout  int      `json:"pingTimeout"`
		MaxPayload   int      `json:"maxPayload"`
	}
	if !strings.HasPrefix(open, "0") || json.Unmarshal([]byte(open[1:]), &o) != nil || o.SID == "" || o.PingInterval == 0 || o.MaxPayload == 0 {
		t.Fatalf("open packet %q", open)
	}
	cl.sid = o.SID
	return cl
}

// connect sends CONNECT to the main namespace and returns the socket id.
func (c *wsClient) connect() string {
	c.t.Helper()
	c.write("40")
	got := c.read()
	var m struct {
		SID string `json:"sid"`
	}
	if !strings.HasPrefix(got, "40{") || json.Unmarshal([]byte(got[2:]), &m) != nil || m.SID == "" {
		c.t.Fatalf("CONNECT reply %q", got)
	}
	c.id = m.SID
	return m.SID
}

func (c *wsClient) write(s string) {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := c.c.Write(ctx, websocket.MessageText, []byte(s)); err != nil {
		c.t.Fatalf("write %q: %v", s, err)
	}
}

// readErr returns the next packet that is not a ping (pings are answered).
func (c *wsClient) readErr(timeout time.Duration) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	for {
		_, b, err := c.c.Read(ctx)
		if err != nil {
			return "", err
		}
		if string(b) == "2" {
			if err := c.c.Write(ctx, websocket.MessageText, []byte("3")); err != nil {
				return "", err
			}
			continue
		}
		return string(b), nil
	}
}

func (c *wsClient) read() string {
	c.t.Helper()
	s, err := c.readErr(5 * time.Second)
	if err != nil {
		c.t.Fatalf("read: %v", err)
	}
	return s
}

// expectClosed waits for the server to close the connection.
func (c *wsClient) expectClosed() websocket.StatusCode {
	c.t.Helper()
	for {
		s, err := c.readErr(5 * time.Second)
		if err != nil {
			if code := websocket.CloseStatus(err); code != -1 {
				return code
			}
			if strings.Contains(err.Error(), "EOF") {
				return -1
			}
			c.t.Fatalf("want the server to close, got %v", err)
		}
		_ = s
	}
}

// event decodes an EVENT or ACK packet's arguments.
func (c *wsClient) expectEvent(prefix string) []json.RawMessage {
	c.t.Helper()
	got := c.read()
	if !strings.HasPrefix(got, prefix) {
		c.t.Fatalf("got %q, want a packet starting %q", got, prefix)
	}
	var args []json.RawMessage
	if err := json.Unmarshal([]byte(got[len(prefix):]), &args); err != nil {
		c.t.Fatalf("packet %q: %v", got, err)
	}
	return args
}

func httpDo(t *testing.T, method, u, body string, hdr http.Header) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, u, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range hdr {
		req.Header[k] = v
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := http.DefaultClient.Do(req.WithContext(ctx))
	if err != nil {
		t.Fatalf("%s %s: %v", method, u, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}
