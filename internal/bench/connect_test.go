package bench

import (
	"bytes"
	"context"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/switchboard-rtc/switchboard/internal/auth"
	"github.com/switchboard-rtc/switchboard/internal/config"
	"github.com/switchboard-rtc/switchboard/internal/testserver"
)

// Against a real server with API keys, connect joins with the tokens it minted (no errors);
// without --api-key every join is refused.
func TestConnectWithTokens(t *testing.T) {
	key := auth.NewKey()
	base := testserver.Start(t, func(c *config.Config) { c.APIKeys = []string{key.Spec()} })
	url := "ws" + strings.TrimPrefix(base, "http") + "/ws"
	m := runMain(t, "connect", "--url", url, "--concurrency", "3", "--source-ips", "1",
		"--warmup", "50ms", "--duration", "1s", "--api-key", key.Spec())
	// Rates are for benchmarks: here, only that joins with tokens went through.
	if m["errors"] != "0" || m["tokens"] != "1" || num(t, m, "handshakes_per_s") <= 0 {
		t.Fatalf("RESULT %v", m)
	}

	var out, errOut bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := Main(ctx, []string{"connect", "--url", url, "--concurrency", "1", "--source-ips", "1",
		"--warmup", "0s", "--duration", "200ms"}, &out, &errOut); err != nil {
		t.Fatal(err)
	}
	m = resultFields(t, out.String())
	if m["tokens"] != "0" || m["handshakes_per_s"] != "0.0" || !strings.Contains(errOut.String(), "token-missing") {
		t.Fatalf("without tokens: RESULT %v\nstderr:\n%s", m, &errOut)
	}
}

// An attempt still under way when the measured window closes is waited for, and if it fails
// its error is counted and printed: against a server whose handshakes outlast the window (one
// that never answers here; on a loaded machine, the first TLS handshake parsing the system's
// roots) connect must not report 0 handshakes and 0 errors.
func TestConnectCountsAttemptFailingAfterWindow(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var held []net.Conn
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { // accepts and never answers
		defer wg.Done()
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			held = append(held, c)
			mu.Unlock()
		}
	}()
	defer func() {
		_ = l.Close()
		wg.Wait()
		for _, c := range held {
			_ = c.Close()
		}
	}()

	var out, errOut bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	// The window (50ms) ends long before the attempt's bound (1s) fails it.
	if err := Main(ctx, []string{"connect", "--url", "ws://" + l.Addr().String() + "/ws", "--concurrency", "1",
		"--source-ips", "1", "--warmup", "0s", "--duration", "50ms", "--dial-timeout", "1s"}, &out, &errOut); err != nil {
		t.Fatal(err)
	}
	m := resultFields(t, out.String())
	if m["handshakes_per_s"] != "0.0" || m["errors"] != "1" || !strings.Contains(errOut.String(), "timeout") {
		t.Fatalf("a server that never answers: RESULT %v (want 0 handshakes, 1 error)\nstderr:\n%s", m, &errOut)
	}
}
