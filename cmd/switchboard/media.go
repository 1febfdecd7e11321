package main

import (
	"context"
	"errors"
	"io"
)

// streamMedia runs `switchboard stream`. Placeholder until the media commands land.
func streamMedia(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	return errors.New("stream: not implemented yet")
}

// recordMedia runs `switchboard record`. Placeholder until the media commands land.
func recordMedia(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	return errors.New("record: not implemented yet")
}

// echoBot runs `switchboard echo`. Placeholder until the media commands land.
func echoBot(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	return errors.New("echo: not implemented yet")
}
