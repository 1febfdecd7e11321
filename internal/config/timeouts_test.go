package config

import (
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestTimeoutsLoad: the timeouts are top-level YAML keys, environment variables and flags, in
// that order of precedence, and must be positive.
func TestTimeoutsLoad(t *testing.T) {
	path := filepath.Join(t.TempDir(), "c.yaml")
	if err := os.WriteFile(path, []byte("read-timeout: 2s\nframe-timeout: 3s\nconnect-timeout: 4s\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	env := fakeEnv(map[string]string{"SWITCHBOARD_FRAME_TIMEOUT": "5s"})
	cfg, err := Load([]string{"--config", path, "--connect-timeout", "6s"}, env, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	want := Timeouts{HeaderTimeout: 10 * time.Second, ReadTimeout: 2 * time.Second, FrameTimeout: 5 * time.Second, ConnectTimeout: 6 * time.Second, UpgradeTimeout: 10 * time.Second}
	if cfg.Timeouts != want {
		t.Errorf("timeouts = %+v, want %+v", cfg.Timeouts, want)
	}
	_, err = Load([]string{"--read-timeout", "0s"}, fakeEnv(nil), io.Discard)
	if err == nil || !strings.Contains(err.Error(), "read-timeout 0s: must be positive") {
		t.Errorf("read-timeout 0: err = %v", err)
	}
}
