// Package testenv holds the rule for tests that need a tool outside Go (a browser, Node and
// the official Socket.IO client, network namespaces): on a developer's machine without it
// they skip, loudly; under CI=true, where scripts/install-test-deps.sh must have installed
// it, they fail.
package testenv

import (
	"os"
	"testing"
)

// Missing ends the test because what it needs is missing: t.Fatalf under CI=true, else a loud
// t.Skipf. fix says how to get it.
func Missing(tb testing.TB, what, fix string) {
	tb.Helper()
	if os.Getenv("CI") == "true" {
		tb.Fatalf("%s: %s (CI must run this test)", what, fix)
	}
	tb.Skipf("\n\n*** SKIPPING: %s. %s ***\n", what, fix)
}
