package main

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"time"
)

// A WebSocket client spoken by hand (RFC 6455): cheap enough to hold thousands, and able to
// do what no library lets a client do on purpose — leave a frame unfinished, never read.

// WebSocket opcodes.
const (
	opText  = 0x1
	opClose = 0x8
	opPing  = 0x9
	opPong  = 0xA
)

// rawWS is one client WebSocket connection.
type rawWS struct {
	c   net.Conn
	br  *bufio.Reader
	wmu sync.Mutex // writers: the owner and the reader's pongs
}

// closeError is the server's close frame.
type closeError struct{ code int }

func (e *closeError) Error() string { return fmt.Sprintf("closed by the server: %d", e.code) }

// dialWS connects with d to addr and upgrades path; a refused upgrade is a *statusError.
// The whole exchange is bounded by timeout.
func dialWS(ctx context.Context, d *net.Dialer, addr, path string, timeout time.Duration) (*rawWS, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	c, err := d.DialContext(ctx, "tcp4", addr)
	if err != nil {
		return nil, fmt.Errorf("connect: %w", err)
	}
	ws, err := upgradeWS(c, addr, path, time.Now().Add(timeout))
	if err != nil {
		_ = c.Close()
		return nil, err
	}
	return ws, nil
}

// upgradeWS sends the upgrade request on c and reads the answer by deadline.
func upgradeWS(c net.Conn, host, path string, deadline time.Time) (*rawWS, error) {
	if err := c.SetDeadline(deadline); err != nil {
		return nil, fmt.Errorf("deadline: %w", err)
	}
	req := "GET " + path + " HTTP/1.1\r\nHost: " + host + "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
	if _, err := io.WriteString(c, req); err != nil {
		return nil, fmt.Errorf("send upgrade: %w", err)
	}
	br := bufio.NewReaderSize(c, 1024)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		return nil, fmt.Errorf("read upgrade answer: %w", err)
	}
	if resp.StatusCode != http.StatusSwitchingProtocols {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 256))
		_ = resp.Body.Close()
		return nil, &statusError{code: resp.StatusCode, body: string(b)}
	}
	if err := c.SetDeadline(time.Time{}); err != nil {
		return nil, fmt.Errorf("deadline: %w", err)
	}
	return &rawWS{c: c, br: br}, nil
}

// appendFrameHeader appends a masked client frame header for n payload bytes and returns it
// with the mask key.
func appendFrameHeader(b []byte, fin bool, op byte, n int) ([]byte, [4]byte) {
	b0 := op
	if fin {
		b0 |= 0x80
	}
	b = append(b, b0)
	switch {
	case n <= 125:
		b = append(b, 0x80|byte(n))
	case n <= 0xFFFF:
		b = append(b, 0x80|126, byte(n>>8), byte(n))
	default:
		b = append(b, 0x80|127)
		b = binary.BigEndian.AppendUint64(b, uint64(n))
	}
	var key [4]byte
	_, _ = rand.Read(key[:])
	return append(b, key[:]...), key
}

// writeFrame sends one whole masked frame.
func (w *rawWS) writeFrame(op byte, p []byte) error {
	b, key := appendFrameHeader(make([]byte, 0, 14+len(p)), true, op, len(p))
	start := len(b)
	b = append(b, p...)
	for i := range b[start:] {
		b[start+i] ^= key[i&3]
	}
	return w.write(b)
}

// write sends b as is, within 5 s.
func (w *rawWS) write(b []byte) error {
	w.wmu.Lock()
	defer w.wmu.Unlock()
	if err := w.c.SetWriteDeadline(time.Now().Add(5 * time.Second)); err != nil {
		return fmt.Errorf("deadline: %w", err)
	}
	if _, err := w.c.Write(b); err != nil {
		return fmt.Errorf("write: %w", err)
	}
	return nil
}

// readMessage returns the next data frame's payload, answering pings; the server's close
// frame is a *closeError. Fragmented messages are not expected from the server.
func (w *rawWS) readMessage() ([]byte, error) {
	for {
		var h [2]byte
		if _, err := io.ReadFull(w.br, h[:]); err != nil {
			return nil, fmt.Errorf("read frame: %w", err)
		}
		op, n := h[0]&0x0F, uint64(h[1]&0x7F)
		switch n {
		case 126:
			var e [2]byte
			if _, err := io.ReadFull(w.br, e[:]); err != nil {
				return nil, fmt.Errorf("read frame: %w", err)
			}
			n = uint64(binary.BigEndian.Uint16(e[:]))
		case 127:
			var e [8]byte
			if _, err := io.ReadFull(w.br, e[:]); err != nil {
				return nil, fmt.Errorf("read frame: %w", err)
			}
			n = binary.BigEndian.Uint64(e[:])
		}
		if n > 1<<20 {
			return nil, fmt.Errorf("frame of %d bytes", n)
		}
		p := make([]byte, n)
		if _, err := io.ReadFull(w.br, p); err != nil {
			return nil, fmt.Errorf("read frame: %w", err)
		}
		switch op {
		case opPing:
			if err := w.writeFrame(opPong, p); err != nil {
				return nil, err
			}
		case opPong:
		case opClose:
			code := 1005
			if len(p) >= 2 {
				code = int(binary.BigEndian.Uint16(p))
			}
			return nil, &closeError{code: code}
		default:
			return p, nil
		}
	}
}

// close closes the TCP connection without a closing handshake.
func (w *rawWS) close() { _ = w.c.Close() }

// welcome is what the attack and the probes need of a native welcome (or error) frame.
type welcome struct {
	Type       string      `json:"type"`
	Peer       string      `json:"-"`
	RawPeer    any         `json:"peer"`
	Code       string      `json:"code"`
	Message    string      `json:"message"`
	ICEServers []iceServer `json:"iceServers"`
}

// iceServer is one RTCIceServer of a welcome.
type iceServer struct {
	URLs       []string `json:"urls"`
	Username   string   `json:"username"`
	Credential string   `json:"credential"`
}

// errJoinRefused is a join answered with an error frame.
var errJoinRefused = errors.New("join refused")

// parseWelcome decodes a frame that should be the welcome; ok is false for other frames
// (peer-joined, acks) the caller should skip.
func parseWelcome(p []byte) (w welcome, ok bool, err error) {
	if err := json.Unmarshal(p, &w); err != nil {
		return w, false, fmt.Errorf("decode %.80q: %w", p, err)
	}
	switch w.Type {
	case "welcome":
		s, _ := w.RawPeer.(string)
		if s == "" {
			return w, false, fmt.Errorf("welcome without a peer id: %.80q", p)
		}
		w.Peer = s
		return w, true, nil
	case "error":
		return w, false, fmt.Errorf("%w: %s: %s", errJoinRefused, w.Code, w.Message)
	}
	return w, false, nil
}

// joinRaw joins room on w and waits for the welcome, within timeout.
func (w *rawWS) joinRaw(room string, timeout time.Duration) (welcome, error) {
	if err := w.c.SetReadDeadline(time.Now().Add(timeout)); err != nil {
		return welcome{}, fmt.Errorf("deadline: %w", err)
	}
	defer func() { _ = w.c.SetReadDeadline(time.Time{}) }()
	if err := w.writeFrame(opText, fmt.Appendf(nil, `{"type":"join","id":1,"v":1,"room":%q}`, room)); err != nil {
		return welcome{}, err
	}
	for range 64 {
		p, err := w.readMessage()
		if err != nil {
			return welcome{}, fmt.Errorf("wait for the welcome: %w", err)
		}
		wl, ok, err := parseWelcome(p)
		if err != nil {
			return welcome{}, err
		}
		if ok {
			return wl, nil
		}
	}
	return welcome{}, errors.New("no welcome within 64 frames")
}
