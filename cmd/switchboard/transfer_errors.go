package main

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/switchboard-rtc/switchboard/internal/transfer"
)

// fileFailure says in one line what happened to a file that did not make it, from the
// sender's side (the receiver's answer) or the receiver's, and what to do when there is
// something to do.
func fileFailure(r transfer.Result, sender bool, dir string) string {
	var fe *transfer.FileError
	if !errors.As(r.Err, &fe) {
		return fmt.Sprintf("%s: not transferred: %v", r.Name, r.Err)
	}
	switch {
	case fe.Code == transfer.CodeIO && diskFull(fe.Message) && sender:
		return fmt.Sprintf("%s: the receiver's disk is full; what arrived was deleted (once it has room, send again)", r.Name)
	case fe.Code == transfer.CodeIO && diskFull(fe.Message):
		return fmt.Sprintf("%s: not received: the disk of %s is full; what arrived was deleted (free some space and run recv again)", r.Name, dir)
	case fe.Code == transfer.CodeExists && sender:
		return fmt.Sprintf("%s: the receiver has a file of that name already; nothing was replaced (it can run recv with --overwrite)", r.Name)
	case fe.Code == transfer.CodeExists:
		return fmt.Sprintf("%s: not received: %s already has a file of that name (run recv with --overwrite to replace it)", r.Name, dir)
	case fe.Code == transfer.CodeBadName:
		return fmt.Sprintf("%s: refused: not a plain file name (%s)", r.Name, fe.Message)
	case fe.Code == transfer.CodeSize || fe.Code == transfer.CodeHash:
		return fmt.Sprintf("%s: arrived damaged (%s) and was discarded; send it again", r.Name, fe.Message)
	case fe.Code == transfer.CodeIO && sender:
		return fmt.Sprintf("%s: the receiver could not write it: %s", r.Name, fe.Message)
	case fe.Code == transfer.CodeIO:
		return fmt.Sprintf("%s: could not be written to %s: %s", r.Name, dir, fe.Message)
	}
	return fmt.Sprintf("%s: not transferred: %s", r.Name, fe.Message)
}

// diskFull reports whether msg, an I/O error's text (the receiver's, maybe from another
// system), says the disk or the quota is full.
func diskFull(msg string) bool {
	return strings.Contains(msg, "no space left on device") || strings.Contains(msg, "disk quota exceeded")
}

// transferError is the command's error once the files' lines are printed: how many failed
// when that is all that went wrong, else why the transfer stopped.
func transferError(ctx context.Context, err error, results []transfer.Result) error {
	failed := 0
	for _, r := range results {
		if r.Err != nil {
			failed++
		}
	}
	var fe *transfer.FileError
	if failed > 0 && errors.As(err, &fe) {
		return &filesFailed{failed: failed, total: len(results), err: err}
	}
	return interrupted(ctx, err)
}

// filesFailed is the error of a transfer whose failures are the files' (each printed on
// its own line already); it wraps them for callers that look.
type filesFailed struct {
	failed, total int
	err           error
}

func (e *filesFailed) Error() string {
	return fmt.Sprintf("%d of %d file(s) not transferred (see above)", e.failed, e.total)
}

func (e *filesFailed) Unwrap() error { return e.err }
