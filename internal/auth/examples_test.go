package auth_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/switchboard-rtc/switchboard/internal/auth"
	"github.com/switchboard-rtc/switchboard/internal/testenv"
)

// exampleDir is docs/examples/mint-token, the Node and Go examples docs/auth.md shows.
func exampleDir(t *testing.T) string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..", "docs", "examples", "mint-token")
}

// checkMinted verifies a token an example printed: the server's verifier accepts it with the
// claims the example set.
func checkMinted(t *testing.T, key auth.Key, out []byte) {
	t.Helper()
	v, err := auth.NewVerifier([]auth.Key{{ID: "other", Secret: []byte(strings.Repeat("o", 40))}, key})
	if err != nil {
		t.Fatal(err)
	}
	c, e := v.Verify(strings.TrimSpace(string(out)), time.Now())
	if e != nil {
		t.Fatalf("the example's token is refused: %v (%s)", e, out)
	}
	if c.Subject != "user-42" || c.Room != "sales" || !c.Join || !c.TURN || c.Name != "Alice" || string(c.Meta) != `{"role":"host"}` {
		t.Fatalf("claims %+v", c)
	}
	if exp := time.Until(c.ExpiresAt.Time); exp < 59*time.Minute || exp > time.Hour+time.Minute {
		t.Fatalf("expires in %v, want 1h", exp)
	}
	room, e := c.RoomFor("")
	if e != nil || room != "sales" {
		t.Fatalf("room %q %v", room, e)
	}
}

// TestGoMintExample runs docs/auth.md's Go example (golang-jwt only, none of Switchboard's
// code) and checks the server accepts what it minted.
func TestGoMintExample(t *testing.T) {
	key := auth.NewKey()
	cmd := exec.Command("go", "run", ".")
	cmd.Dir = exampleDir(t)
	cmd.Env = append(os.Environ(), "SWITCHBOARD_KEY="+key.Spec())
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go run: %v", err)
	}
	checkMinted(t, key, out)
}

// TestNodeMintExample runs docs/auth.md's Node example (jsonwebtoken from npm).
func TestNodeMintExample(t *testing.T) {
	dir := exampleDir(t)
	if _, err := exec.LookPath("node"); err != nil {
		testenv.Missing(t, "node is not installed", "install Node.js 20+")
	}
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "jsonwebtoken")); err != nil {
		testenv.Missing(t, "jsonwebtoken is not installed in docs/examples/mint-token", "run scripts/install-test-deps.sh")
	}
	key := auth.NewKey()
	cmd := exec.Command("node", "mint.mjs")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "SWITCHBOARD_KEY="+key.Spec())
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("node mint.mjs: %v", err)
	}
	checkMinted(t, key, out)
}
