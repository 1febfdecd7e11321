package testserver

import (
	"context"
	"testing"
	"time"

	"github.com/switchboard-rtc/switchboard/sdk"
)

// DialPeer joins room at url as a Go SDK peer with WebRTC kept on loopback, within timeout,
// and closes it when the test ends.
func DialPeer(tb testing.TB, url, room string, opts sdk.Options, timeout time.Duration) *sdk.Client {
	tb.Helper()
	opts.Loopback = true
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	c, err := sdk.Dial(ctx, url, room, &opts)
	if err != nil {
		tb.Fatalf("dial: %v", err)
	}
	tb.Cleanup(func() { c.Close() })
	return c
}

// Recv returns the next value from ch, failing the test if none comes within timeout.
func Recv[T any](tb testing.TB, ch <-chan T, timeout time.Duration, what string) T {
	tb.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(timeout):
		tb.Fatalf("timed out waiting for %s", what)
	}
	var zero T
	return zero
}
