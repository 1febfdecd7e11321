package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/switchboard-rtc/switchboard/internal/transfer"
)

// stdin is what `send -` reads (tests replace it).
var stdin io.Reader = os.Stdin

// stagedInputs turns send's arguments into files: --text into a file holding the text, "-"
// into a file holding standard input (named name): the protocol announces a file's size
// before its bytes, so both are read first. cleanup removes what was staged.
func stagedInputs(paths []string, text, name string) (out []string, cleanup func(), err error) {
	dir := ""
	cleanup = func() {
		if dir != "" {
			_ = os.RemoveAll(dir)
		}
	}
	stage := func(base string, r io.Reader) (string, error) {
		if dir == "" {
			if dir, err = os.MkdirTemp("", "switchboard-send-"); err != nil {
				return "", err
			}
		}
		p := filepath.Join(dir, base)
		f, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if err != nil {
			return "", err
		}
		if _, err := io.Copy(f, r); err != nil {
			_ = f.Close()
			return "", fmt.Errorf("read standard input: %w", err)
		}
		return p, f.Close()
	}
	if text != "" {
		if len(paths) > 0 {
			return nil, cleanup, errors.New("--text goes alone, without files")
		}
		if len(text) > transfer.MaxText {
			return nil, cleanup, fmt.Errorf("--text is %d bytes; at most %d (send a file instead)", len(text), transfer.MaxText)
		}
		p, err := stage("message.txt", strings.NewReader(text))
		if err != nil {
			return nil, cleanup, err
		}
		return []string{p}, cleanup, nil
	}
	seen := false
	for _, p := range paths {
		if p != "-" {
			out = append(out, p)
			continue
		}
		if seen {
			return nil, cleanup, errors.New("- (standard input) can be given once")
		}
		seen = true
		if err := transfer.CheckName(name); err != nil {
			return nil, cleanup, fmt.Errorf("--name: %w", err)
		}
		sp, err := stage(name, stdin)
		if err != nil {
			return nil, cleanup, err
		}
		out = append(out, sp)
	}
	return out, cleanup, nil
}

// copyOut writes the one file recv received into dir to w (recv --out -).
func copyOut(w io.Writer, dir string, results []transfer.Result) error {
	var files []transfer.Result
	for _, r := range results {
		if r.Err == nil && !r.Text {
			files = append(files, r)
		}
	}
	if len(files) != 1 {
		return fmt.Errorf("--out - takes one file; the sender sent %d (nothing was written)", len(files))
	}
	f, err := os.Open(filepath.Join(dir, filepath.FromSlash(files[0].Name)))
	if err != nil {
		return err
	}
	defer f.Close()
	if _, err := io.Copy(w, f); err != nil {
		return fmt.Errorf("write to standard output: %w", err)
	}
	return nil
}

// showText is recv's ReceiveOptions.Text: the message goes to stdout, ended by a newline.
func showText(stdout, stderr io.Writer) func(string, []byte) error {
	return func(_ string, b []byte) error {
		fmt.Fprintln(stderr, "a message from the sender:")
		if _, err := stdout.Write(b); err != nil {
			return err
		}
		if len(b) == 0 || b[len(b)-1] != '\n' {
			_, err := io.WriteString(stdout, "\n")
			return err
		}
		return nil
	}
}
