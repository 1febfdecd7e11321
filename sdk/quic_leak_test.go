package sdk_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/switchboard-rtc/switchboard/internal/testserver"
	"github.com/switchboard-rtc/switchboard/sdk"
)

// udpSockets returns the UDP sockets this process holds: its descriptors that are sockets
// listed in /proc/net/udp or udp6.
func udpSockets(t *testing.T) map[string]bool {
	t.Helper()
	inodes := make(map[string]bool)
	for _, f := range []string{"/proc/net/udp", "/proc/net/udp6"} {
		b, err := os.ReadFile(f)
		if err != nil {
			if os.IsNotExist(err) {
				continue
			}
			t.Fatal(err)
		}
		for _, line := range strings.Split(string(b), "\n")[1:] {
			if fs := strings.Fields(line); len(fs) > 9 {
				inodes[fs[9]] = true
			}
		}
	}
	fds, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatalf("no /proc/self/fd (this project runs on Linux): %v", err)
	}
	out := make(map[string]bool)
	for _, fd := range fds {
		link, err := os.Readlink("/proc/self/fd/" + fd.Name())
		if err != nil || !strings.HasPrefix(link, "socket:[") {
			continue
		}
		if ino := strings.TrimSuffix(strings.TrimPrefix(link, "socket:["), "]"); inodes[ino] {
			out[ino] = true
		}
	}
	return out
}

// udpPortBound reports whether a UDP socket on port is open (in this process: the tests
// bind on loopback only).
func udpPortBound(t *testing.T, port int) bool {
	t.Helper()
	hex := fmt.Sprintf(":%04X ", port)
	for _, f := range []string{"/proc/net/udp", "/proc/net/udp6"} {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(b), "\n")[1:] {
			if fs := strings.Fields(line); len(fs) > 1 && strings.HasSuffix(fs[1]+" ", hex) {
				return true
			}
		}
	}
	return false
}

// quicPorts records the ports of the QUIC candidates each side sends (its own socket's).
type quicPorts struct {
	mu    sync.Mutex
	ports map[int]bool
	added chan int // each new port
}

func recordQUICPorts(t *testing.T) *quicPorts {
	t.Helper()
	qp := &quicPorts{ports: make(map[int]bool), added: make(chan int, 64)}
	restore := sdk.SetQUICCandidateHook(func(_ *sdk.Peer, _ bool, cand string) {
		if cand == "" {
			return
		}
		if a := candAddr(t, cand); a != nil {
			qp.mu.Lock()
			if !qp.ports[a.Port] {
				qp.ports[a.Port] = true
				qp.added <- a.Port
			}
			qp.mu.Unlock()
		}
	})
	t.Cleanup(restore)
	return qp
}

// released fails t unless, within 5 s, the process holds the UDP sockets of before and no
// more, and no QUIC socket port qp saw is bound. (Sockets closing is no event to wait on:
// this polls.)
func released(t *testing.T, before map[string]bool, qp *quicPorts) {
	t.Helper()
	qp.mu.Lock()
	ports := make([]int, 0, len(qp.ports))
	for p := range qp.ports {
		ports = append(ports, p)
	}
	qp.mu.Unlock()
	if len(ports) == 0 {
		t.Fatal("no QUIC candidate was sent: the setup did not get as far as its socket")
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		var left []string
		if before != nil {
			now := udpSockets(t)
			for ino := range now {
				if !before[ino] {
					left = append(left, "socket:["+ino+"]")
				}
			}
		}
		for _, p := range ports {
			if udpPortBound(t, p) {
				left = append(left, fmt.Sprintf("port %d", p))
			}
		}
		if len(left) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("UDP sockets left after the QUIC setup failed: %v", left)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestQUICSetupFailuresCloseSocket: whichever step a QUIC setup fails at, its UDP socket (and
// ICE agent) is closed when QUIC returns its error, not when the peer goes; once the clients
// close, no SDK, Pion or quic-go goroutine is left.
func TestQUICSetupFailuresCloseSocket(t *testing.T) {
	t.Run("ctx ends waiting for the remote", func(t *testing.T) {
		url := testserver.Start(t, nil)
		pa, _, _, _ := quicPair(t, url, "quic-leak-ctx", sdk.Options{})
		qp := recordQUICPorts(t)
		before := udpSockets(t)
		ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
		defer cancel()
		if _, err := pa.QUIC(ctx); !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("QUIC alone: %v", err)
		}
		released(t, before, qp)
	})
	t.Run("handshake refused", func(t *testing.T) {
		url := testserver.Start(t, nil)
		pa, pb, _, _ := quicPair(t, url, "quic-leak-fp", sdk.Options{})
		qp := recordQUICPorts(t)
		defer sdk.SetQUICHelloHook(func(_ bool, _, _, fp *string) { *fp = strings.Repeat("ab", 32) })()
		before := udpSockets(t)
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if _, _, ea, eb := bothQUIC(ctx, pa, pb); ea == nil || eb == nil {
			t.Fatalf("QUIC with wrong fingerprints: %v / %v", ea, eb)
		}
		released(t, before, qp)
	})
	t.Run("ICE fails", func(t *testing.T) {
		url := testserver.Start(t, nil)
		pa, pb, _, _ := quicPair(t, url, "quic-leak-ice", sdk.Options{})
		qp := recordQUICPorts(t)
		defer sdk.SetQUICHelloHook(func(newcomer bool, _, pwd, _ *string) {
			if newcomer {
				*pwd = strings.Repeat("x", 24) // not b's: a's checks fail b's integrity check
			}
		})()
		before := udpSockets(t)
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		if _, _, ea, eb := bothQUIC(ctx, pa, pb); ea == nil || eb == nil {
			t.Fatalf("QUIC with a wrong ICE password: %v / %v", ea, eb)
		}
		released(t, before, qp)
	})
	t.Run("peer closes mid-setup", func(t *testing.T) {
		url := testserver.Start(t, nil)
		pa, pb, _, b := quicPair(t, url, "quic-leak-close", sdk.Options{})
		qp := recordQUICPorts(t)
		defer sdk.SetQUICHelloHook(func(newcomer bool, _, pwd, _ *string) {
			if newcomer {
				*pwd = strings.Repeat("x", 24) // ICE never completes on a's side
			}
		})()
		ctx, cancel := context.WithTimeout(context.Background(), wait)
		defer cancel()
		errs := make(chan error, 2)
		go func() { _, err := pa.QUIC(ctx); errs <- err }()
		go func() { _, err := pb.QUIC(ctx); errs <- err }()
		// b controls and selects (a answers its checks); a never does. b waits for a's dial.
		waitChan(t, qp.added, "a QUIC socket")
		waitChan(t, qp.added, "the other QUIC socket")
		b.Close()
		for range 2 {
			if err := waitChan(t, errs, "QUIC's end"); !errors.Is(err, sdk.ErrPeerClosed) {
				t.Errorf("QUIC when the peer closed: %v; want ErrPeerClosed", err)
			}
		}
		released(t, nil, qp)
	})
	noQUICGoroutines(t, "TestQUICSetupFailuresCloseSocket")
}
