package turnserver

import (
	"crypto/tls"
	"errors"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pion/stun/v4"
	"golang.org/x/sys/unix"

	"github.com/switchboard-rtc/switchboard/internal/testenv"
)

// TestListenersOutlastDescriptorExhaustion: when the process runs out of descriptors, the
// TURN TCP port and TURN over TLS's own port keep accepting once descriptors are free again
// (accept's EMFILE must not end pion's accept loop, or the server's own for ListenTLS): the
// connections that waited in the backlog meanwhile are served. Run in a child process with a
// low descriptor limit.
func TestListenersOutlastDescriptorExhaustion(t *testing.T) {
	if os.Getenv("TURN_FDLIMIT_CHILD") == "1" {
		exhaustionChild(t)
		return
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestListenersOutlastDescriptorExhaustion$", "-test.v", "-test.count=1")
	cmd.Env = append(os.Environ(), "TURN_FDLIMIT_CHILD=1")
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "--- PASS: TestListenersOutlastDescriptorExhaustion") {
		t.Fatalf("child: %v\n%s", err, out)
	}
}

// acceptFailures counts log lines of failed accepts for lack of descriptors.
type acceptFailures struct {
	testenv.Buffer
	mu sync.Mutex
	n  int
}

func (w *acceptFailures) Write(p []byte) (int, error) {
	if s := string(p); strings.Contains(s, "too many open files") || strings.Contains(s, "out of file descriptors") {
		w.mu.Lock()
		w.n++
		w.mu.Unlock()
	}
	return w.Buffer.Write(p)
}

func (w *acceptFailures) count() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.n
}

func exhaustionChild(t *testing.T) {
	if err := unix.Setrlimit(unix.RLIMIT_NOFILE, &unix.Rlimit{Cur: 128, Max: 128}); err != nil {
		t.Fatal(err)
	}
	logged := new(acceptFailures)
	s := startServer(t, func(c *Config) {
		c.Logger = slog.New(slog.NewTextHandler(logged, &slog.HandlerOptions{Level: slog.LevelDebug}))
	})
	srvCfg, cliCfg := testTLS(t)
	tlsAddr, err := s.ListenTLS("127.0.0.1:0", srvCfg)
	if err != nil {
		t.Fatal(err)
	}
	// The clients' sockets first; then the table is filled to the last descriptor; then
	// they connect, which needs no descriptor: their connections wait in the backlog and
	// accept fails with EMFILE.
	var socks []int
	for range 2 {
		fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			t.Fatal(err)
		}
		socks = append(socks, fd)
	}
	var filler []int
	release := func() {
		for _, fd := range filler {
			_ = unix.Close(fd)
		}
		filler = nil
	}
	defer release()
	for {
		fd, err := unix.FcntlInt(0, unix.F_DUPFD_CLOEXEC, 0)
		if err != nil {
			if !errors.Is(err, unix.EMFILE) {
				t.Fatal(err)
			}
			break
		}
		filler = append(filler, fd)
	}
	for i, addr := range []*net.TCPAddr{s.TCPAddr(), tlsAddr} {
		sa := &unix.SockaddrInet4{Port: addr.Port}
		copy(sa.Addr[:], addr.IP.To4())
		if err := unix.Connect(socks[i], sa); err != nil {
			t.Fatal(err)
		}
	}
	// Both accept loops wake at once; the first failure logged, the other has had its turn
	// within the margin (an accept loop that gives up need not log).
	deadline := time.Now().Add(5 * time.Second)
	for logged.count() < 1 {
		if time.Now().After(deadline) {
			release()
			t.Fatalf("accept did not fail:\n%s", logged.String())
		}
		time.Sleep(5 * time.Millisecond)
	}
	for margin := time.Now().Add(500 * time.Millisecond); logged.count() < 2 && time.Now().Before(margin); {
		time.Sleep(5 * time.Millisecond)
	}
	release()

	conns := make([]net.Conn, 2)
	for i, fd := range socks {
		f := os.NewFile(uintptr(fd), "client")
		c, err := net.FileConn(f)
		_ = f.Close()
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = c.Close() })
		conns[i] = c
	}
	tc := tls.Client(conns[1], cliCfg)
	for name, c := range map[string]net.Conn{"TCP": conns[0], "TLS": tc} {
		_ = c.SetDeadline(time.Now().Add(5 * time.Second))
		req := stun.MustBuild(stun.TransactionID, stun.BindingRequest)
		if _, err := c.Write(req.Raw); err != nil {
			t.Errorf("%s: write: %v", name, err)
			continue
		}
		buf := make([]byte, 1500)
		n, err := c.Read(buf)
		if err != nil {
			t.Errorf("%s: no answer once descriptors were free again: %v", name, err)
			continue
		}
		var m stun.Message
		m.Raw = buf[:n]
		if err := m.Decode(); err != nil || m.Type != stun.BindingSuccess {
			t.Errorf("%s: answer %v (%v)", name, m.Type, err)
		}
	}
}
