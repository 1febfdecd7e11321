// Command genwasm builds what the browser needs to run the code phrases' exchange
// (internal/wormhole/wasm, for GOOS=js GOARCH=wasm) into internal/web/static: the module
// gzipped as wormhole.wasm.gz (served at /sdk/wormhole.wasm) and the toolchain's
// wasm_exec.js (which loads it), both from the Go toolchain that runs it. `go generate
// ./internal/web` runs it; TestWASMCurrent runs it into a temporary directory and fails when
// what is committed differs. The build is reproducible: -trimpath, no VCS stamp, no symbol
// tables, a gzip header without name or time.
//
// Usage: go run ./internal/web/genwasm [-out DIR]
package main

import (
	"bytes"
	"compress/gzip"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// Package is the import path of what is built.
const Package = "github.com/switchboard-rtc/switchboard/internal/wormhole/wasm"

func main() {
	out := flag.String("out", "static", "directory to write wormhole.wasm.gz and wasm_exec.js into")
	flag.Parse()
	if err := generate(*out); err != nil {
		fmt.Fprintln(os.Stderr, "genwasm:", err)
		os.Exit(1)
	}
}

func generate(out string) error {
	tmp, err := os.MkdirTemp("", "genwasm-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	wasmPath := filepath.Join(tmp, "wormhole.wasm")
	build := exec.Command("go", "build", "-trimpath", "-buildvcs=false", "-ldflags=-s -w", "-o", wasmPath, Package)
	build.Env = append(os.Environ(), "GOOS=js", "GOARCH=wasm", "GOWASM=", "CGO_ENABLED=0", "GOFLAGS=")
	if b, err := build.CombinedOutput(); err != nil {
		return fmt.Errorf("go build %s: %w\n%s", Package, err, b)
	}
	wasm, err := os.ReadFile(wasmPath)
	if err != nil {
		return err
	}
	root, err := exec.Command("go", "env", "GOROOT").Output()
	if err != nil {
		return fmt.Errorf("go env GOROOT: %w", err)
	}
	execJS, err := os.ReadFile(filepath.Join(strings.TrimSpace(string(root)), "lib", "wasm", "wasm_exec.js"))
	if err != nil {
		return err
	}
	var gz bytes.Buffer
	zw, err := gzip.NewWriterLevel(&gz, gzip.BestCompression)
	if err != nil {
		return err
	}
	if _, err := zw.Write(wasm); err != nil {
		return err
	}
	if err := zw.Close(); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(out, "wormhole.wasm.gz"), gz.Bytes(), 0o644); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(out, "wasm_exec.js"), execJS, 0o644)
}
