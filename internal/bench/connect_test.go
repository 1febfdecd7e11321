package bench

import (
	"bytes"
	"context"
	"strings"
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
		"--warmup", "50ms", "--duration", "300ms", "--api-key", key.Spec())
	if m["errors"] != "0" || m["tokens"] != "1" || num(t, m, "handshakes_per_s") < 10 {
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
