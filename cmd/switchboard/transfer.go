package main

import (
	"context"
	"errors"
	"io"
)

// sendFiles runs `switchboard send`. Placeholder until the file-transfer commands land.
func sendFiles(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	return errors.New("send: not implemented yet")
}

// recvFiles runs `switchboard recv`. Placeholder until the file-transfer commands land.
func recvFiles(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	return errors.New("recv: not implemented yet")
}
