package fdlimit

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/switchboard-rtc/switchboard/internal/testenv"
)

// procCount counts /proc/self/fd the slow way, without the descriptor it reads it with.
func procCount(t *testing.T) int {
	t.Helper()
	es, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	return len(es) - 1
}

// openDescriptors lists what this process's descriptors point at, for a failure message.
func openDescriptors() string {
	es, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return err.Error()
	}
	kinds := map[string]int{}
	for _, e := range es {
		target, err := os.Readlink("/proc/self/fd/" + e.Name())
		if err != nil {
			continue
		}
		if i := strings.IndexByte(target, ':'); i > 0 && !strings.HasPrefix(target, "/") {
			target = target[:i]
		}
		kinds[target]++
	}
	return fmt.Sprint(kinds)
}

// pipes opens n pipes (2n descriptors), closed when the test ends or by the returned func.
func pipes(t *testing.T, n int) (closeAll func()) {
	t.Helper()
	var fds []int
	for i := 0; i < n; i++ {
		var p [2]int
		if err := unix.Pipe2(p[:], unix.O_CLOEXEC); err != nil {
			t.Fatal(err)
		}
		fds = append(fds, p[0], p[1])
	}
	var once sync.Once
	closeAll = func() {
		once.Do(func() {
			for _, fd := range fds {
				unix.Close(fd)
			}
		})
	}
	t.Cleanup(closeAll)
	return closeAll
}

func newGauge(t *testing.T, limit, reserve int) *Gauge {
	t.Helper()
	g, err := New(limit, reserve)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { g.Close() })
	return g
}

func TestGaugeCounts(t *testing.T) {
	g := newGauge(t, 1<<20, 64)
	if err := g.refresh(time.Now()); err != nil {
		t.Fatal(err)
	}
	if got, want := g.Open(), procCount(t); got != want {
		t.Fatalf("gauge %d, /proc/self/fd %d", got, want)
	}
	before := g.Open()
	pipes(t, 50)
	if err := g.refresh(time.Now()); err != nil {
		t.Fatal(err)
	}
	if got := g.Open(); got != before+100 {
		t.Fatalf("after 100 more descriptors: %d, want %d", got, before+100)
	}
	g.Note(7)
	if got := g.estimate(); got != before+107 {
		t.Fatalf("after Note(7): %d, want %d", got, before+107)
	}
}

// waitFor polls cond (a cheap read of the gauge) until it holds or d passes.
func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v", what, d)
		}
		time.Sleep(MinAge / 2) // the gauge refreshes on its own clock
	}
}

func TestGaugeFullAndExhausted(t *testing.T) {
	base := procCount(t) + 1 // the gauge's own
	g := newGauge(t, base+40, 16)
	if g.Full() || g.Exhausted() {
		t.Fatalf("full at start: open %d, limit %d", g.Open(), g.Limit())
	}
	// Descriptors not noted are seen at the next read of /proc/self/fd: within MaxAge.
	pipes(t, 13) // open = limit - 14: within the reserve, above the floor (4)
	waitFor(t, MaxAge+time.Second, "full", g.Full)
	if g.Exhausted() {
		t.Fatalf("exhausted %d below the limit", g.Limit()-g.Open())
	}
	pipes(t, 6) // limit - 2
	waitFor(t, MaxAge+time.Second, "exhausted", g.Exhausted)
}

// serve accepts from l until it fails, holding every connection and reporting how many
// it holds on count; stop closes the listener and the held connections.
func serve(l net.Listener) (count <-chan int, stop func()) {
	var wg sync.WaitGroup
	var held []net.Conn
	counts := make(chan int, 16)
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			held = append(held, c)
			counts <- len(held)
		}
	}()
	return counts, func() {
		l.Close()
		wg.Wait()
		for _, c := range held {
			c.Close()
		}
	}
}

func TestListenerShedsWhenExhausted(t *testing.T) {
	inner, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	base := procCount(t) + 1
	g := newGauge(t, base+30, 16)
	var shed int
	var mu sync.Mutex
	l := NewListener(inner, g, slog.New(slog.NewTextHandler(io.Discard, nil)), func() { mu.Lock(); shed++; mu.Unlock() })
	accepted, stop := serve(l)
	defer stop()
	free := pipes(t, 14) // limit - 2: exhausted
	waitFor(t, MaxAge+time.Second, "exhausted", g.Exhausted)
	c, err := net.Dial("tcp", inner.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Read(make([]byte, 1)); !errors.Is(err, io.EOF) {
		t.Fatalf("connection past the limit: read %v, want EOF (closed at accept)", err)
	}
	mu.Lock()
	defer mu.Unlock()
	if shed != 1 || l.Shed() != 1 {
		t.Fatalf("shed %d (listener says %d), want 1", shed, l.Shed())
	}
	if got := g.tracked.Load(); got != 0 {
		t.Fatalf("tracked %d after a shed connection, want 0 (its note undone)", got)
	}
	mu.Unlock()
	// Still exhausted, the listener holds off: a new connection waits in the backlog, and
	// is served once descriptors are freed within MaxHold.
	c2, err := net.Dial("tcp", inner.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	free()
	select {
	case n := <-accepted:
		if n != 1 || l.Shed() != 1 {
			t.Fatalf("held %d, shed %d: want the waiting connection served", n, l.Shed())
		}
	case <-time.After(MaxHold + MaxAge + time.Second):
		t.Fatalf("waiting connection not accepted once descriptors were freed (shed %d)", l.Shed())
	}
	mu.Lock()
}

// TestListenerAcceptErrors runs itself again with RLIMIT_NOFILE lowered (the limit is the
// process's, so the rest of the package must not share it): connections past the limit
// make accept fail with EMFILE, which must be logged once, not per error, and never
// returned; once descriptors are free the waiting connection is accepted.
func TestListenerAcceptErrors(t *testing.T) {
	if os.Getenv("FDLIMIT_CHILD") == "1" {
		acceptErrorsChild(t)
		return
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestListenerAcceptErrors$", "-test.v", "-test.count=1")
	cmd.Env = append(os.Environ(), "FDLIMIT_CHILD=1")
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "--- PASS: TestListenerAcceptErrors") {
		t.Fatalf("child: %v\n%s", err, out)
	}
	for _, l := range strings.Split(string(out), "\n") {
		if strings.Contains(l, "accept_errors") {
			t.Log(strings.TrimSpace(l))
		}
	}
}

func acceptErrorsChild(t *testing.T) {
	if err := unix.Setrlimit(unix.RLIMIT_NOFILE, &unix.Rlimit{Cur: 64, Max: 64}); err != nil {
		t.Fatal(err)
	}
	inner, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	logged := &signalWriter{text: "out of file descriptors", seen: make(chan struct{})}
	l := NewListener(inner, nil, slog.New(slog.NewTextHandler(logged, nil)), nil)
	accepted := make(chan net.Conn, 4)
	errc := make(chan error, 1)
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				errc <- err
				return
			}
			accepted <- c
		}
	}()
	// The client's socket comes first; then the table is filled to the last descriptor
	// with duplicates of stdin; then the client connects, which needs no descriptor, so
	// its connection waits in the backlog with nothing left for accept to return it in.
	client, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(client)
	var filler []int
	defer func() {
		for _, fd := range filler {
			unix.Close(fd)
		}
	}()
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
	addr := inner.Addr().(*net.TCPAddr)
	sa := &unix.SockaddrInet4{Port: addr.Port}
	copy(sa.Addr[:], addr.IP.To4())
	if err := unix.Connect(client, sa); err != nil {
		t.Fatal(err)
	}
	select {
	case <-logged.seen:
	case c := <-accepted:
		t.Fatalf("accepted %v with the table full (%d fillers)", c.RemoteAddr(), len(filler))
	case <-time.After(5 * time.Second):
		t.Fatalf("no accept error logged; %d fillers; open: %s", len(filler), openDescriptors())
	}
	<-time.After(time.Second) // accept keeps failing meanwhile
	if n := strings.Count(logged.String(), "out of file descriptors"); n != 1 {
		t.Fatalf("%d log lines in a second of accept errors:\n%s", n, logged.String())
	}
	l.mu.Lock()
	errs := l.errs
	l.mu.Unlock()
	// Paused 5 ms, doubling to 250 ms: a handful of retries in a second, not a spin.
	if errs < 3 || errs > 20 {
		t.Fatalf("%d accept errors counted since the line, want a handful (backoff)", errs)
	}
	t.Logf("%d fillers, %d more accept errors after the line; log: %s", len(filler), errs, strings.TrimSpace(logged.String()))
	// Free descriptors: the connection waiting in the backlog is accepted.
	for _, fd := range filler[:8] {
		unix.Close(fd)
	}
	filler = filler[8:]
	select {
	case c := <-accepted:
		c.Close()
	case err := <-errc:
		t.Fatalf("Accept returned %v", err)
	case <-time.After(10 * time.Second):
		t.Fatalf("waiting connection not accepted after 8 descriptors were freed; open: %s", openDescriptors())
	}
	l.Close()
	if err := <-errc; !errors.Is(err, net.ErrClosed) {
		t.Fatalf("Accept after Close: %v", err)
	}
}

// signalWriter is a log destination that closes seen the first time text is written.
type signalWriter struct {
	testenv.Buffer
	text string
	seen chan struct{}
	once sync.Once
}

func (w *signalWriter) Write(p []byte) (int, error) {
	n, err := w.Buffer.Write(p)
	if strings.Contains(string(p), w.text) {
		w.once.Do(func() { close(w.seen) })
	}
	return n, err
}

// BenchmarkCount is the cost of one read of /proc/self/fd with b.N's process holding about
// 10,000 descriptors (20,000 is the hard limit here).
func BenchmarkCount(b *testing.B) {
	var rl unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &rl); err != nil {
		b.Fatal(err)
	}
	if rl.Cur < 11000 && rl.Max >= 11000 {
		// The soft limit may be raised up to the hard one: do so for this process.
		raised := unix.Rlimit{Cur: rl.Max, Max: rl.Max}
		if err := unix.Setrlimit(unix.RLIMIT_NOFILE, &raised); err != nil {
			b.Fatal(err)
		}
		defer func() { _ = unix.Setrlimit(unix.RLIMIT_NOFILE, &rl) }()
		rl = raised
	}
	if rl.Cur < 11000 {
		testenv.Missing(b, "a descriptor limit of 11,000 (hard limit "+strconv.FormatUint(rl.Max, 10)+")", "raise it with ulimit -Hn as root")
	}
	for i := 0; i < 5000; i++ {
		var p [2]int
		if err := unix.Pipe2(p[:], unix.O_CLOEXEC); err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { unix.Close(p[0]); unix.Close(p[1]) })
	}
	g, err := New(int(rl.Cur), 64)
	if err != nil {
		b.Fatal(err)
	}
	defer g.Close()
	b.ResetTimer()
	for b.Loop() {
		if err := g.refresh(time.Now()); err != nil {
			b.Fatal(err)
		}
	}
}
