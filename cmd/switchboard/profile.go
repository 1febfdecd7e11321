package main

import (
	"fmt"
	"os"
	"runtime/pprof"
)

// startCPUProfile writes a CPU profile of the whole command to path (the environment's
// SWITCHBOARD_CPUPROFILE; nothing when empty), for `go tool pprof`. It returns the function
// that ends the profile. A profile that cannot start is a warning, not a failure.
func startCPUProfile(path string) (stop func()) {
	if path == "" {
		return func() {}
	}
	f, err := os.Create(path)
	if err == nil {
		err = pprof.StartCPUProfile(f)
		if err != nil {
			_ = f.Close()
		}
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "switchboard: no CPU profile (SWITCHBOARD_CPUPROFILE=%s): %v\n", path, err)
		return func() {}
	}
	return func() {
		pprof.StopCPUProfile()
		_ = f.Close()
	}
}
