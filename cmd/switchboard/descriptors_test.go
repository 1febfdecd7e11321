package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os/exec"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
)

// fdLimit is the descriptor limit the server runs under in these tests.
const fdLimit = 256

// fdServer is a `switchboard serve` running under `ulimit -n fdLimit`, its log collected.
type fdServer struct {
	addr  string
	mu    sync.Mutex
	log   []string
	added chan struct{} // closed (and replaced) when a line is added
}

// waitLine waits until a line of the log contains substr, at most d.
func (s *fdServer) waitLine(substr string, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	for {
		s.mu.Lock()
		added := s.added
		s.mu.Unlock()
		if s.lines(substr) > 0 {
			return true
		}
		select {
		case <-added:
		case <-t.C:
			return false
		}
	}
}

func (s *fdServer) lines(substr string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, l := range s.log {
		if strings.Contains(l, substr) {
			n++
		}
	}
	return n
}

// startFDServer runs the binary with a lowered descriptor limit. The process
// is killed and its log reader ended when the test ends.
func startFDServer(t *testing.T, args ...string) *fdServer {
	t.Helper()
	bin := cliBinary(t)
	argv := append([]string{"-c", fmt.Sprintf(`ulimit -n %d && exec "$0" "$@"`, fdLimit), bin,
		"serve", "--listen", "127.0.0.1:0", "--turn=false", "--log-format", "json", "--shutdown-timeout", "1s"}, args...)
	cmd := exec.Command("bash", argv...)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	s := &fdServer{added: make(chan struct{})}
	addrc := make(chan string, 1)
	readDone := make(chan struct{})
	go func() {
		defer close(readDone)
		addrRE := regexp.MustCompile(`"addr":"([0-9.]+:[0-9]+)"`)
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			l := sc.Text()
			s.mu.Lock()
			s.log = append(s.log, l)
			close(s.added)
			s.added = make(chan struct{})
			s.mu.Unlock()
			if m := addrRE.FindStringSubmatch(l); m != nil && strings.Contains(l, "switchboard serving") {
				addrc <- m[1]
			}
		}
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-readDone
		_ = cmd.Wait()
		if t.Failed() {
			s.mu.Lock()
			t.Logf("server log:\n%s", strings.Join(s.log, "\n"))
			s.mu.Unlock()
		}
	})
	select {
	case s.addr = <-addrc:
	case <-readDone:
		t.Fatal("server exited before listening")
	case <-time.After(15 * time.Second):
		t.Fatal("server did not log its address")
	}
	return s
}

// rawWS is a WebSocket handshake done by hand, so the test sees exactly what the server
// answered: status, headers, and whether the socket then lives.
type rawWS struct {
	c  net.Conn
	br *bufio.Reader
}

// dialWS sends an upgrade to /ws and reads the answer's status line and headers within d.
// A status of 0 means no answer arrived in time.
func dialWS(addr string, d time.Duration) (*rawWS, *http.Response, error) {
	return dialPath(addr, "/ws", d)
}

func dialPath(addr, path string, d time.Duration) (*rawWS, *http.Response, error) {
	c, err := net.DialTimeout("tcp", addr, d)
	if err != nil {
		return nil, nil, err
	}
	req := "GET " + path + " HTTP/1.1\r\nHost: " + addr + "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
	_ = c.SetDeadline(time.Now().Add(d))
	if _, err := io.WriteString(c, req); err != nil {
		c.Close()
		return nil, nil, err
	}
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		return &rawWS{c: c, br: br}, nil, err
	}
	_ = c.SetDeadline(time.Time{})
	return &rawWS{c: c, br: br}, resp, nil
}

// pingPong sends a masked ping and waits for the pong: the upgraded socket is alive.
func (w *rawWS) pingPong(d time.Duration) error {
	_ = w.c.SetDeadline(time.Now().Add(d))
	defer w.c.SetDeadline(time.Time{})
	if _, err := w.c.Write([]byte{0x89, 0x80, 1, 2, 3, 4}); err != nil {
		return err
	}
	for {
		var h [2]byte
		if _, err := io.ReadFull(w.br, h[:]); err != nil {
			return err
		}
		if h[1]&0x7f > 125 {
			return fmt.Errorf("unexpected frame % x", h)
		}
		if _, err := w.br.Discard(int(h[1] & 0x7f)); err != nil {
			return err
		}
		switch h[0] & 0x0f {
		case 0xA:
			return nil
		case 0x9:
			continue
		default:
			return fmt.Errorf("unexpected frame % x", h)
		}
	}
}

func httpGet(addr, path string) (int, string, error) {
	cl := &http.Client{Timeout: 3 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := cl.Get("http://" + addr + path)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err
}

// joinWithin waits until a new native client can connect and join.
func joinWithin(t *testing.T, addr string, d time.Duration) {
	t.Helper()
	deadline := time.Now().Add(d)
	var last error
	for time.Now().Before(deadline) {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		c, _, err := websocket.Dial(ctx, "ws://"+addr+"/ws", nil)
		if err == nil {
			err = c.Write(ctx, websocket.MessageText, []byte(`{"type":"join","room":"after-flood"}`))
			var b []byte
			if err == nil {
				_, b, err = c.Read(ctx)
			}
			c.CloseNow()
			if err == nil && strings.Contains(string(b), `"welcome"`) {
				cancel()
				return
			}
			if err == nil {
				err = fmt.Errorf("no welcome: %s", b)
			}
		}
		cancel()
		last = err
		time.Sleep(50 * time.Millisecond) // retry pace: the server frees descriptors on its own time
	}
	t.Fatalf("no client could join %v after the flood: %v", d, last)
}

// TestDescriptorReserve fills a server's descriptors with WebSocket connections: past the
// reserve, upgrades get 503 with Retry-After (never a 101 on a socket that is then dropped),
// /healthz and /metrics still answer, nothing floods the log, and once the connections go a
// newcomer joins.
func TestDescriptorReserve(t *testing.T) {
	s := startFDServer(t, "--fd-reserve", "64")
	var open []*rawWS
	defer func() {
		for _, w := range open {
			w.c.Close()
		}
	}()
	var upgraded, refused int
	for i := 0; i < fdLimit+50 && refused < 20; i++ {
		w, resp, err := dialWS(s.addr, 3*time.Second)
		if err != nil {
			t.Fatalf("handshake %d: %v (after %d upgraded, %d refused)", i, err, upgraded, refused)
		}
		switch resp.StatusCode {
		case http.StatusSwitchingProtocols:
			upgraded++
			open = append(open, w)
		case http.StatusServiceUnavailable:
			refused++
			if ra := resp.Header.Get("Retry-After"); ra == "" {
				t.Errorf("503 without Retry-After")
			}
			w.c.Close()
		default:
			t.Fatalf("handshake %d: status %d", i, resp.StatusCode)
		}
	}
	t.Logf("limit %d, reserve 64: %d upgraded, %d refused with 503", fdLimit, upgraded, refused)
	if refused == 0 {
		t.Fatalf("no upgrade refused within %d attempts", fdLimit+50)
	}
	if upgraded < fdLimit-64-40 || upgraded > fdLimit-64 {
		t.Errorf("%d upgraded: want close to %d (limit minus reserve minus the server's own)", upgraded, fdLimit-64)
	}
	// A Socket.IO WebSocket is refused the same way.
	w, resp, err := dialPath(s.addr, "/socket.io/?EIO=4&transport=websocket", 3*time.Second)
	if err != nil {
		t.Fatalf("Socket.IO handshake at the reserve: %v", err)
	}
	w.c.Close()
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("Socket.IO handshake at the reserve: %d, Retry-After %q", resp.StatusCode, resp.Header.Get("Retry-After"))
	}
	refused++
	// Every 101 is a live WebSocket.
	for i, w := range open {
		if err := w.pingPong(3 * time.Second); err != nil {
			t.Fatalf("upgraded connection %d is dead: %v", i, err)
		}
	}
	// The reserve keeps the probes and the metrics answering while the connections stay.
	for _, p := range []string{"/healthz", "/readyz"} {
		if code, _, err := httpGet(s.addr, p); err != nil || code != http.StatusOK {
			t.Fatalf("%s at the reserve: %d %v", p, code, err)
		}
	}
	code, body, err := httpGet(s.addr, "/metrics")
	if err != nil || code != http.StatusOK {
		t.Fatalf("/metrics at the reserve: %d %v", code, err)
	}
	m := regexp.MustCompile(`switchboard_connections_refused_total\{reason="descriptors"\} (\d+)`).FindStringSubmatch(body)
	if m == nil || m[1] != fmt.Sprint(refused) {
		t.Errorf("connections_refused_total{reason=descriptors}: got %v, want %d", m, refused)
	}
	// Idle connections (no request) fill the reserve: short of the limit the server stops
	// accepting, and after a hold closes what it then accepts, so it never runs out itself.
	var idle []net.Conn
	defer func() {
		for _, c := range idle {
			c.Close()
		}
	}()
	for i := 0; i < 64; i++ {
		c, err := net.DialTimeout("tcp", s.addr, 3*time.Second)
		if err != nil {
			t.Fatalf("idle connection %d: %v", i, err)
		}
		idle = append(idle, c)
	}
	var eofs sync.WaitGroup
	var closedMu sync.Mutex
	closed := 0
	for _, c := range idle {
		eofs.Add(1)
		go func() {
			defer eofs.Done()
			_ = c.SetReadDeadline(time.Now().Add(3 * time.Second))
			if _, err := c.Read(make([]byte, 1)); errors.Is(err, io.EOF) {
				closedMu.Lock()
				closed++
				closedMu.Unlock()
			}
		}()
	}
	eofs.Wait()
	t.Logf("idle connections past the reserve closed at accept within 3 s: %d of 64", closed)
	if closed == 0 || closed > 16 {
		t.Fatalf("%d idle connections closed at accept: want a few (the floor is 16 below the limit, one per 500 ms hold)", closed)
	}
	for _, c := range idle {
		c.Close()
	}
	idle = nil
	deadline := time.Now().Add(5 * time.Second)
	for {
		code, body, err = httpGet(s.addr, "/metrics")
		if err == nil && code == http.StatusOK {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("/metrics once the idle connections closed: %d %v", code, err)
		}
		time.Sleep(20 * time.Millisecond) // the server sees the closes on its own time
	}
	m = regexp.MustCompile(`switchboard_connections_refused_total\{reason="descriptors"\} (\d+)`).FindStringSubmatch(body)
	if m == nil || m[1] == fmt.Sprint(refused) {
		t.Errorf("connections closed at accept not counted: %v (503s: %d)", m, refused)
	}
	t.Logf("refused in all (503s and closed at accept): %s", m[1])
	if n := s.lines("Accept error"); n != 0 {
		t.Errorf("%d accept errors logged", n)
	}
	for _, w := range open {
		w.c.Close()
	}
	open = nil
	joinWithin(t, s.addr, 10*time.Second)
}

// TestDescriptorExhaustion runs a server without a reserve into the limit itself: an upgrade
// that cannot get a descriptor gets 503 (not a 101 then a drop), idle connections past the
// limit wait in the backlog while accept errors are logged once, not per error, and the
// server serves again once they go.
func TestDescriptorExhaustion(t *testing.T) {
	s := startFDServer(t, "--fd-reserve", "0")
	var open []net.Conn
	defer func() {
		for _, c := range open {
			c.Close()
		}
	}()
	var upgraded, refused int
	var live []*rawWS
	for i := 0; i < fdLimit+50 && refused < 5; i++ {
		w, resp, err := dialWS(s.addr, 3*time.Second)
		if err != nil {
			t.Fatalf("handshake %d: %v (after %d upgraded, %d refused)", i, err, upgraded, refused)
		}
		switch resp.StatusCode {
		case http.StatusSwitchingProtocols:
			upgraded++
			open = append(open, w.c)
			live = append(live, w)
		case http.StatusServiceUnavailable:
			refused++
			w.c.Close()
		default:
			t.Fatalf("handshake %d: status %d", i, resp.StatusCode)
		}
	}
	t.Logf("limit %d, no reserve: %d upgraded, %d refused with 503", fdLimit, upgraded, refused)
	if refused == 0 {
		t.Fatal("no upgrade refused at the limit")
	}
	for i, w := range live {
		if err := w.pingPong(3 * time.Second); err != nil {
			t.Fatalf("upgraded connection %d is dead: %v", i, err)
		}
	}
	// Idle connections past the limit: accept fails with EMFILE over and over.
	for i := 0; i < 40; i++ {
		c, err := net.DialTimeout("tcp", s.addr, 3*time.Second)
		if err != nil {
			break // the backlog is full
		}
		open = append(open, c)
	}
	if !s.waitLine("out of file descriptors", 10*time.Second) {
		t.Fatal("accept errors at the limit were not logged")
	}
	// Let the accept loop fail for a while: it must not log per error.
	<-time.After(2 * time.Second)
	if n := s.lines("out of file descriptors"); n > 2 {
		t.Errorf("%d accept-error lines in ~2 s", n)
	}
	if n := s.lines("Accept error"); n != 0 {
		t.Errorf("net/http logged %d accept errors", n)
	}
	for _, c := range open {
		c.Close()
	}
	open = nil
	joinWithin(t, s.addr, 10*time.Second)
	if code, _, err := httpGet(s.addr, "/healthz"); err != nil || code != http.StatusOK {
		t.Fatalf("/healthz after the flood: %d %v", code, err)
	}
}
