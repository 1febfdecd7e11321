package bench

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha1"
	"crypto/tls"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/url"
	"slices"
	"strconv"
	"time"
)

// A minimal WebSocket client (RFC 6455) for connect mode. Connect mode
// measures handshakes/s, so the load tool's own cost per handshake must stay
// well below the server's: this client dials with a net.Dialer, writes the
// HTTP/1.1 Upgrade request by hand, parses the 101 with a bufio.Reader and
// speaks unfragmented masked frames. A rawConn is reused connection after
// connection by one worker, so steady state allocates almost nothing beyond
// what the net package and the kernel need. No extensions or subprotocols are
// offered, so the server may use neither.
//
// Both servers are driven by exactly this code, so the comparison stays fair.

// WebSocket opcodes.
const (
	opContinuation = 0x0
	opText         = 0x1
	opBinary       = 0x2
	opClose        = 0x8
	opPing         = 0x9
	opPong         = 0xA
)

// wsAcceptGUID is appended to the client's key to derive Sec-WebSocket-Accept.
const wsAcceptGUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

// rawReadBufSize is the bufio.Reader size: the 101 response and the first
// frames fit in it with room to spare.
const rawReadBufSize = 4096

// rawDialer opens raw WebSocket connections to one URL, round-robin over
// loopback source addresses like dialer.
type rawDialer struct {
	url     string
	addr    string        // host:port to dial
	req     []byte        // Upgrade request up to and including "Sec-WebSocket-Key: "
	tlsConf *tls.Config   // nil for ws://
	dialers []*net.Dialer // one per source address
	timeout time.Duration // per connection: TCP connect + WebSocket + protocol handshake
}

// newRawDialer returns a rawDialer for rawURL. When the URL's host is a
// loopback address, connections are bound to source addresses 127.0.0.1 ..
// 127.0.0.sourceIPs; otherwise the system picks the source address.
func newRawDialer(rawURL string, sourceIPs int, timeout time.Duration) (*rawDialer, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, fmt.Errorf("parse --url: %w", err)
	}
	d := &rawDialer{url: rawURL, timeout: timeout}
	port := u.Port()
	switch u.Scheme {
	case "ws", "http":
		if port == "" {
			port = "80"
		}
	case "wss", "https":
		if port == "" {
			port = "443"
		}
		d.tlsConf = &tls.Config{ServerName: u.Hostname(), NextProtos: []string{"http/1.1"}}
	default:
		return nil, fmt.Errorf("--url %q: scheme must be ws or wss", rawURL)
	}
	host := u.Hostname()
	if host == "" {
		return nil, fmt.Errorf("--url %q: no host", rawURL)
	}
	d.addr = net.JoinHostPort(host, port)
	d.req = fmt.Appendf(nil, "GET %s HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: ",
		u.RequestURI(), u.Host)

	loopback := host == "localhost"
	if ip := net.ParseIP(host); ip != nil && ip.IsLoopback() && ip.To4() != nil {
		loopback = true
	}
	if !loopback || sourceIPs < 1 {
		sourceIPs = 1
	}
	sourceIPs = min(sourceIPs, 254)
	for i := range sourceIPs {
		nd := &net.Dialer{Timeout: timeout, KeepAlive: -1}
		if loopback {
			nd.LocalAddr = &net.TCPAddr{IP: net.IPv4(127, 0, 0, byte(1+i))}
		}
		d.dialers = append(d.dialers, nd)
	}
	return d, nil
}

// rawConn is one client WebSocket connection. It is not safe for concurrent
// use; after close or closeGracefully it can be handed to rawDialer.dial again.
type rawConn struct {
	conn      net.Conn
	br        *bufio.Reader
	wbuf      []byte // frame being written (header + masked payload)
	rbuf      []byte // last data message read; valid until the next read
	ctl       [125]byte
	hdr       [8]byte
	closeSent bool
	closeRecv bool
}

func newRawConn() *rawConn {
	return &rawConn{
		br:   bufio.NewReaderSize(nil, rawReadBufSize),
		wbuf: make([]byte, 0, 512),
		rbuf: make([]byte, 0, 512),
	}
}

// dial connects connection number slot, bounds everything that follows by
// the dialer's timeout (a deadline the caller may move), and performs the
// opening handshake. On error c holds no connection.
func (d *rawDialer) dial(ctx context.Context, c *rawConn, slot int) error {
	start := time.Now()
	conn, err := d.dialers[slot%len(d.dialers)].DialContext(ctx, "tcp", d.addr)
	if err != nil {
		return fmt.Errorf("dial %s: %w", d.url, err)
	}
	if err := conn.SetDeadline(start.Add(d.timeout)); err != nil {
		_ = conn.Close()
		return fmt.Errorf("dial %s: %w", d.url, err)
	}
	if d.tlsConf != nil {
		tc := tls.Client(conn, d.tlsConf)
		if err := tc.Handshake(); err != nil {
			_ = conn.Close()
			return fmt.Errorf("dial %s: TLS: %w", d.url, err)
		}
		conn = tc
	}
	c.conn = conn
	c.br.Reset(conn)
	c.closeSent, c.closeRecv = false, false
	if err := c.upgrade(d.req); err != nil {
		c.close()
		return fmt.Errorf("dial %s: %w", d.url, err)
	}
	return nil
}

// upgrade sends the HTTP/1.1 Upgrade request and checks the 101 response.
func (c *rawConn) upgrade(reqPrefix []byte) error {
	var nonce [16]byte
	binary.LittleEndian.PutUint64(nonce[0:], rand.Uint64())
	binary.LittleEndian.PutUint64(nonce[8:], rand.Uint64())
	var key [24]byte
	base64.StdEncoding.Encode(key[:], nonce[:])
	var want [28]byte
	wsAccept(want[:], key[:])

	b := append(c.wbuf[:0], reqPrefix...)
	b = append(b, key[:]...)
	b = append(b, "\r\n\r\n"...)
	c.wbuf = b
	if _, err := c.conn.Write(b); err != nil {
		return fmt.Errorf("write upgrade request: %w", err)
	}

	line, err := c.readLine()
	if err != nil {
		return fmt.Errorf("read upgrade response: %w", err)
	}
	// "HTTP/1.1 101 Switching Protocols"
	if len(line) < 12 || !bytes.HasPrefix(line, []byte("HTTP/1.")) || line[8] != ' ' {
		return fmt.Errorf("malformed status line %q", truncate(line))
	}
	code, err := strconv.Atoi(string(line[9:12]))
	if err != nil {
		return fmt.Errorf("malformed status line %q", truncate(line))
	}
	if code != 101 {
		return fmt.Errorf("HTTP %d, want 101", code)
	}
	var gotUpgrade, gotConnection, gotAccept bool
	for range 100 {
		line, err := c.readLine()
		if err != nil {
			return fmt.Errorf("read upgrade response: %w", err)
		}
		if len(line) == 0 {
			switch {
			case !gotAccept:
				return errors.New("101 without Sec-WebSocket-Accept")
			case !gotUpgrade:
				return errors.New("101 without Upgrade: websocket")
			case !gotConnection:
				return errors.New("101 without Connection: Upgrade")
			}
			return nil
		}
		name, value, ok := bytes.Cut(line, []byte(":"))
		if !ok {
			continue // obs-fold continuation or junk: not a header we check
		}
		value = bytes.TrimSpace(value)
		switch {
		case bytes.EqualFold(name, []byte("Sec-WebSocket-Accept")):
			if !bytes.Equal(value, want[:]) {
				return fmt.Errorf("Sec-WebSocket-Accept %q, want %q", value, want[:])
			}
			gotAccept = true
		case bytes.EqualFold(name, []byte("Upgrade")):
			if !bytes.EqualFold(value, []byte("websocket")) {
				return fmt.Errorf("Upgrade: %q, want websocket", truncate(value))
			}
			gotUpgrade = true
		case bytes.EqualFold(name, []byte("Connection")):
			for tok := range bytes.SplitSeq(value, []byte(",")) {
				if bytes.EqualFold(bytes.TrimSpace(tok), []byte("upgrade")) {
					gotConnection = true
				}
			}
		case bytes.EqualFold(name, []byte("Sec-WebSocket-Extensions")),
			bytes.EqualFold(name, []byte("Sec-WebSocket-Protocol")):
			if len(value) > 0 {
				return fmt.Errorf("server chose %s %q, none was offered", name, truncate(value))
			}
		}
	}
	return errors.New("too many header lines in the upgrade response")
}

// readLine returns the next CRLF- (or LF-) terminated line without its line
// ending; it is valid until the next read.
func (c *rawConn) readLine() ([]byte, error) {
	line, err := c.br.ReadSlice('\n')
	if err != nil {
		if errors.Is(err, bufio.ErrBufferFull) {
			return nil, errors.New("header line too long")
		}
		if errors.Is(err, io.EOF) {
			return nil, io.ErrUnexpectedEOF
		}
		return nil, err
	}
	line = line[:len(line)-1]
	if n := len(line); n > 0 && line[n-1] == '\r' {
		line = line[:n-1]
	}
	return line, nil
}

// wsAccept writes the Sec-WebSocket-Accept value for key into dst[:28].
func wsAccept(dst, key []byte) {
	var buf [64]byte
	n := copy(buf[:], key)
	n += copy(buf[n:], wsAcceptGUID)
	sum := sha1.Sum(buf[:n])
	base64.StdEncoding.Encode(dst, sum[:])
}

// writeText sends one text message in a single masked frame.
func (c *rawConn) writeText(p []byte) error { return c.writeFrame(opText, p) }

// writeFrame sends one final frame with a fresh random mask, header and
// payload in one write.
func (c *rawConn) writeFrame(op byte, p []byte) error {
	n := len(p)
	b := append(c.wbuf[:0], 0x80|op)
	switch {
	case n <= 125:
		b = append(b, 0x80|byte(n))
	case n <= 0xFFFF:
		b = append(b, 0x80|126, byte(n>>8), byte(n))
	default:
		b = append(b, 0x80|127)
		b = binary.BigEndian.AppendUint64(b, uint64(n))
	}
	key := rand.Uint32()
	b = binary.LittleEndian.AppendUint32(b, key)
	start := len(b)
	b = append(b, p...)
	maskBytes(b[start:], key)
	c.wbuf = b
	if _, err := c.conn.Write(b); err != nil {
		return fmt.Errorf("write: %w", err)
	}
	return nil
}

// maskBytes XORs p with the 4-byte mask whose wire bytes are key in
// little-endian order (as writeFrame puts it on the wire).
func maskBytes(p []byte, key uint32) {
	k8 := uint64(key) | uint64(key)<<32
	for len(p) >= 8 {
		binary.LittleEndian.PutUint64(p, binary.LittleEndian.Uint64(p)^k8)
		p = p[8:]
	}
	for i := range p {
		p[i] ^= byte(key >> (8 * (i & 3)))
	}
}

// closeError is the server's close frame.
type closeError struct {
	code   int // 1005 when the frame carried no code
	reason string
}

func (e *closeError) Error() string {
	if e.reason == "" {
		return fmt.Sprintf("server closed the WebSocket: status %d", e.code)
	}
	return fmt.Sprintf("server closed the WebSocket: status %d: %s", e.code, e.reason)
}

// readMessage returns the next data message (text or binary, reassembled if
// fragmented), valid until the next read. It answers pings, skips pongs and
// returns a *closeError when the server's close frame arrives.
func (c *rawConn) readMessage() ([]byte, error) {
	msg := c.rbuf[:0]
	inMessage := false
	for {
		fin, op, n, err := c.readHeader()
		if err != nil {
			return nil, err
		}
		if op&0x8 != 0 {
			if err := c.control(fin, op, n); err != nil {
				return nil, err
			}
			continue
		}
		switch op {
		case opContinuation:
			if !inMessage {
				return nil, errors.New("continuation frame outside a message")
			}
		case opText, opBinary:
			if inMessage {
				return nil, errors.New("new data frame inside a fragmented message")
			}
			inMessage = true
		default:
			return nil, fmt.Errorf("reserved opcode %#x", op)
		}
		if n > uint64(maxFrameBytes-len(msg)) {
			return nil, fmt.Errorf("message larger than %d bytes", maxFrameBytes)
		}
		l := len(msg)
		msg = slices.Grow(msg, int(n))[:l+int(n)]
		if _, err := io.ReadFull(c.br, msg[l:]); err != nil {
			return nil, fmt.Errorf("read frame payload: %w", noEOF(err))
		}
		c.rbuf = msg[:0]
		if fin {
			return msg, nil
		}
	}
}

// readHeader reads a frame header from the server: unmasked, no RSV bits.
func (c *rawConn) readHeader() (fin bool, op byte, n uint64, err error) {
	h := c.hdr[:2]
	if _, err := io.ReadFull(c.br, h); err != nil {
		if errors.Is(err, io.EOF) {
			return false, 0, 0, io.EOF // clean end between frames
		}
		return false, 0, 0, fmt.Errorf("read frame header: %w", err)
	}
	b0, b1 := h[0], h[1]
	if b0&0x70 != 0 {
		return false, 0, 0, fmt.Errorf("frame with RSV bits %#x, no extension was negotiated", b0&0x70)
	}
	if b1&0x80 != 0 {
		return false, 0, 0, errors.New("masked frame from the server")
	}
	fin, op, n = b0&0x80 != 0, b0&0x0F, uint64(b1&0x7F)
	switch n {
	case 126:
		if _, err := io.ReadFull(c.br, c.hdr[:2]); err != nil {
			return false, 0, 0, fmt.Errorf("read frame length: %w", noEOF(err))
		}
		n = uint64(binary.BigEndian.Uint16(c.hdr[:2]))
	case 127:
		if _, err := io.ReadFull(c.br, c.hdr[:8]); err != nil {
			return false, 0, 0, fmt.Errorf("read frame length: %w", noEOF(err))
		}
		n = binary.BigEndian.Uint64(c.hdr[:8])
		if n>>63 != 0 {
			return false, 0, 0, errors.New("frame length with the top bit set")
		}
	}
	return fin, op, n, nil
}

// control handles a control frame whose header has been read.
func (c *rawConn) control(fin bool, op byte, n uint64) error {
	if !fin || n > 125 {
		return fmt.Errorf("bad control frame (opcode %#x, fin %v, %d bytes)", op, fin, n)
	}
	p := c.ctl[:n]
	if _, err := io.ReadFull(c.br, p); err != nil {
		return fmt.Errorf("read control frame: %w", noEOF(err))
	}
	switch op {
	case opPing:
		if c.closeSent {
			return nil // nothing more may follow our close frame
		}
		return c.writeFrame(opPong, p)
	case opPong:
		return nil
	case opClose:
		c.closeRecv = true
		e := &closeError{code: 1005}
		if len(p) >= 2 {
			e.code = int(binary.BigEndian.Uint16(p))
			e.reason = string(p[2:])
		} else if len(p) == 1 {
			return errors.New("close frame with a 1-byte payload")
		}
		return e
	}
	return fmt.Errorf("reserved control opcode %#x", op)
}

// noEOF turns an EOF inside a frame into io.ErrUnexpectedEOF.
func noEOF(err error) error {
	if errors.Is(err, io.EOF) {
		return io.ErrUnexpectedEOF
	}
	return err
}

// closeFrame1000 is the payload of a close frame with status 1000 (normal
// closure) and no reason.
var closeFrame1000 = []byte{0x03, 0xE8}

// closeGracefully performs the closing handshake within timeout: it sends a
// close frame (1000), reads until the server's close frame or EOF, and closes
// the TCP connection. Data frames still in flight are discarded.
func (c *rawConn) closeGracefully(timeout time.Duration) error {
	defer c.close()
	if err := c.conn.SetDeadline(time.Now().Add(timeout)); err != nil {
		return fmt.Errorf("close: %w", err)
	}
	if err := c.writeFrame(opClose, closeFrame1000); err != nil {
		return fmt.Errorf("close: %w", err)
	}
	c.closeSent = true
	for range 1000 {
		_, err := c.readMessage()
		if err == nil {
			continue
		}
		var ce *closeError
		if errors.As(err, &ce) || errors.Is(err, io.EOF) {
			return nil
		}
		return fmt.Errorf("close: wait for the server's close frame: %w", err)
	}
	return errors.New("close: no close frame from the server within 1000 messages")
}

// close closes the TCP connection without a closing handshake.
func (c *rawConn) close() {
	if c.conn != nil {
		_ = c.conn.Close()
		c.conn = nil
	}
	c.br.Reset(nil)
}
