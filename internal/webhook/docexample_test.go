package webhook_test

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/switchboard-rtc/switchboard/internal/bus"
	"github.com/switchboard-rtc/switchboard/internal/testenv"
)

// doc:begin — docs/webhooks.md shows this function verbatim (TestWebhookDocGoExample checks).

// verify reports whether body, a webhook's raw body, was signed with secret and sent less
// than 5 minutes from now; header is the Switchboard-Signature header.
func verify(secret, body []byte, header string, now time.Time) bool {
	mac := hmac.New(sha256.New, secret)
	mac.Write(body)
	want := "sha256=" + hex.EncodeToString(mac.Sum(nil))
	if !hmac.Equal([]byte(header), []byte(want)) {
		return false
	}
	var e struct {
		SentAt time.Time `json:"sentAt"`
	}
	return json.Unmarshal(body, &e) == nil && now.Sub(e.SentAt).Abs() < 5*time.Minute
}

// doc:end

// captured is one real delivery of a Sender, as a receiver got it.
func captured(t *testing.T) delivery {
	t.Helper()
	rc := newReceiver(t, nil)
	s, _ := newSender(t, nil, rc.url())
	e := joined("sales", "Vb4k7hVd0S2v0w9Jv1qgXA")
	e.Kind, e.Reason = bus.PeerLeft, "left"
	s.RoomEvent(e)
	return rc.next()
}

// docBlock returns the code block of docs/webhooks.md that follows the line starting with
// marker.
func docBlock(t *testing.T, marker string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", "docs", "webhooks.md"))
	if err != nil {
		t.Fatal(err)
	}
	_, rest, ok := strings.Cut(string(b), "\n"+marker)
	if !ok {
		t.Fatalf("docs/webhooks.md has no %q", marker)
	}
	_, rest, _ = strings.Cut(rest, "```")
	_, rest, _ = strings.Cut(rest, "\n") // the fence's language
	code, _, ok := strings.Cut(rest, "```")
	if !ok {
		t.Fatalf("no code block after %q", marker)
	}
	return code
}

// verifyCase is one check every verifier must get right.
type verifyCase struct {
	name         string
	secret, body []byte
	header       string
	nowOffset    time.Duration
	want         bool
}

// verifyCases are the checks on a real delivery d.
func verifyCases(d delivery) []verifyCase {
	tampered := []byte(strings.Replace(string(d.body), `"left"`, `"kicked"`, 1))
	sig := d.header.Get("Switchboard-Signature")
	return []verifyCase{
		{"genuine", testKey.Secret, d.body, sig, 0, true},
		{"genuine, clocks 2 minutes apart", testKey.Secret, d.body, sig, -2 * time.Minute, true},
		{"tampered body", testKey.Secret, tampered, sig, 0, false},
		{"wrong secret", []byte("another-secret-another-secret-xx"), d.body, sig, 0, false},
		{"no signature", testKey.Secret, d.body, "", 0, false},
		{"truncated signature", testKey.Secret, d.body, sig[:len(sig)-2], 0, false},
		{"replayed 10 minutes later", testKey.Secret, d.body, sig, 10 * time.Minute, false},
	}
}

func TestWebhookDocGoExample(t *testing.T) {
	src, err := os.ReadFile("docexample_test.go")
	if err != nil {
		t.Fatal(err)
	}
	_, fn, _ := strings.Cut(string(src), "// doc:begin")
	_, fn, _ = strings.Cut(fn, "\n\n")
	fn, _, _ = strings.Cut(fn, "\n// doc:end")
	if doc := docBlock(t, "<!-- verify-go"); strings.TrimSpace(doc) != strings.TrimSpace(fn) {
		t.Fatalf("docs/webhooks.md's Go example differs from the tested one:\n--- doc\n%s\n--- test\n%s", doc, fn)
	}
	d := captured(t)
	for _, c := range verifyCases(d) {
		if got := verify(c.secret, c.body, c.header, time.Now().Add(c.nowOffset)); got != c.want {
			t.Errorf("%s: verify = %v, want %v", c.name, got, c.want)
		}
	}
}

func TestWebhookDocNodeExample(t *testing.T) {
	node, err := exec.LookPath("node")
	if err != nil {
		testenv.Missing(t, "node is not installed", "install Node.js (scripts/install-test-deps.sh)")
	}
	d := captured(t)
	dir := t.TempDir()
	var script strings.Builder
	script.WriteString(docBlock(t, "<!-- verify-node"))
	script.WriteString(`
const fs = require('node:fs');
const cases = JSON.parse(fs.readFileSync(process.argv[2]));
for (const c of cases) {
  const got = verify(Buffer.from(c.secret, 'base64'), Buffer.from(c.body, 'base64'), c.header, Date.now() + c.offsetMs);
  console.log(c.name + ': ' + got);
  if (got !== c.want) { console.error('FAIL ' + c.name); process.exitCode = 1; }
}
`)
	type jcase struct {
		Name     string `json:"name"`
		Secret   []byte `json:"secret"`
		Body     []byte `json:"body"`
		Header   string `json:"header"`
		OffsetMs int64  `json:"offsetMs"`
		Want     bool   `json:"want"`
	}
	var cases []jcase
	for _, c := range verifyCases(d) {
		cases = append(cases, jcase{c.name, c.secret, c.body, c.header, c.nowOffset.Milliseconds(), c.want})
	}
	cj, err := json.Marshal(cases)
	if err != nil {
		t.Fatal(err)
	}
	js, cf := filepath.Join(dir, "verify.js"), filepath.Join(dir, "cases.json")
	if err := os.WriteFile(js, []byte(script.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(cf, cj, 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(node, js, cf).CombinedOutput()
	t.Logf("node:\n%s", out)
	if err != nil {
		t.Fatalf("the Node example failed: %v", err)
	}
	if n := strings.Count(string(out), ": "); n != len(cases) {
		t.Fatalf("node ran %d cases, want %d", n, len(cases))
	}
}
