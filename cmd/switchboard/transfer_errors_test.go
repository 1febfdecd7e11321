package main

import (
	"strings"
	"syscall"
	"testing"

	"github.com/switchboard-rtc/switchboard/internal/transfer"
)

// A full disk (or quota) is said in words on both sides, with what to do; other I/O errors
// keep their text.
func TestFileFailureDiskFull(t *testing.T) {
	for _, errno := range []syscall.Errno{syscall.ENOSPC, syscall.EDQUOT} {
		r := transfer.Result{Name: "a.bin", Err: &transfer.FileError{Code: transfer.CodeIO, Message: "write /tmp/x/a.bin.part: " + errno.Error()}}
		if got := fileFailure(r, true, ""); !strings.Contains(got, "the receiver's disk is full") || strings.Contains(got, "/tmp") {
			t.Errorf("sender, %v: %q", errno, got)
		}
		if got := fileFailure(r, false, "/tmp/x"); !strings.Contains(got, "the disk of /tmp/x is full") || !strings.Contains(got, "run recv again") {
			t.Errorf("receiver, %v: %q", errno, got)
		}
	}
	r := transfer.Result{Name: "a.bin", Err: &transfer.FileError{Code: transfer.CodeIO, Message: "write a.bin.part: input/output error"}}
	if got := fileFailure(r, false, "/tmp/x"); !strings.Contains(got, "input/output error") {
		t.Errorf("other I/O error: %q", got)
	}
}
