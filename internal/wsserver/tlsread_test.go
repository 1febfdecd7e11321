package wsserver

import (
	"bufio"
	"crypto/tls"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/switchboard-rtc/switchboard/internal/hub"
)

// TestTLSAlertWrittenUnderLock: a TLS record the loop cannot decrypt makes crypto/tls write
// an alert from inside Read, through loopConn.Write into the connection's send queue, whose
// every other user holds c.mu. Here the hub closes the connection (CloseConn, another
// goroutine, c.mu held) while a bad record waits in the socket; the loop then reads it. The
// alert's write must be ordered after CloseConn's changes to the queue (the race detector
// reports it otherwise), and the connection ends.
func TestTLSAlertWrittenUnderLock(t *testing.T) {
	cert, pool := testCert(t)
	h, err := hub.New(hub.Config{Logger: discardLogger()})
	if err != nil {
		t.Fatal(err)
	}
	s, err := New(Config{Hub: h, Logger: discardLogger(), Loops: 1})
	if err != nil {
		t.Fatal(err)
	}
	inner, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hs := &http.Server{Handler: s, ReadHeaderTimeout: 5 * time.Second}
	done := make(chan error, 1)
	go func() {
		done <- hs.Serve(TLSListener(inner, &tls.Config{Certificates: []tls.Certificate{cert}, NextProtos: []string{"http/1.1"}}))
	}()
	t.Cleanup(func() {
		_ = s.Close()
		_ = hs.Close()
		<-done
	})

	cli, err := tls.Dial("tcp", inner.Addr().String(), &tls.Config{RootCAs: pool, NextProtos: []string{"http/1.1"}})
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	_, _ = cli.Write([]byte("GET /ws HTTP/1.1\r\nHost: " + inner.Addr().String() + "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
		"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"))
	_ = cli.SetReadDeadline(time.Now().Add(5 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(cli), nil)
	if err != nil || resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("upgrade: %v %v", resp, err)
	}
	l := s.loops[0]
	var c *conn
	waitUntil(t, "the loop to own the connection", func() bool {
		cs := l.snapshot()
		if len(cs) == 1 {
			c = cs[0]
		}
		return c != nil
	})

	// Hold the loop in a task until the test writes to a pipe.
	var pipe [2]int
	if err := unix.Pipe2(pipe[:], unix.O_CLOEXEC); err != nil {
		t.Fatal(err)
	}
	defer unix.Close(pipe[0])
	defer unix.Close(pipe[1])
	held := make(chan struct{})
	l.post(func(time.Time) {
		close(held)
		var b [1]byte
		_, _ = unix.Read(pipe[0], b[:])
	})
	<-held
	// A record of application data that does not decrypt.
	bad := append([]byte{23, 3, 3, 0, 40}, []byte(strings.Repeat("x", 40))...)
	if _, err := cli.NetConn().Write(bad); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "the record in the server's socket", func() bool {
		n, err := unix.IoctlGetInt(c.fd, unix.SIOCINQ)
		return err == nil && n >= len(bad)
	})
	c.CloseConn("kicked")
	// A raw write: x/sys/unix's Write and Read tell the race detector they order what came
	// before them, which real interleavings do not.
	one := []byte{1}
	_, _, _ = unix.RawSyscall(unix.SYS_WRITE, uintptr(pipe[1]), uintptr(unsafe.Pointer(&one[0])), 1)
	// The client sees the end on its socket (nothing the race detector counts as ordering);
	// the test looks at the loop's table only then.
	_ = cli.NetConn().SetReadDeadline(time.Now().Add(5 * time.Second))
	var b [256]byte
	for {
		if _, err := cli.NetConn().Read(b[:]); err != nil {
			if ne, ok := err.(net.Error); ok && ne.Timeout() {
				t.Fatal("the connection did not end")
			}
			break
		}
	}
	waitUntil(t, "the loop to drop the connection", func() bool { return len(l.snapshot()) == 0 })
}
