package main

import (
	"os"
	"path/filepath"
	"testing"
)

func TestCPUProfileWritten(t *testing.T) {
	path := filepath.Join(t.TempDir(), "cpu.prof")
	stop := startCPUProfile(path)
	stop()
	if fi, err := os.Stat(path); err != nil || fi.Size() == 0 {
		t.Fatalf("profile %s: %v (size %v)", path, err, fi)
	}
	startCPUProfile("")() // off: nothing to stop
}
