// Command switchboard is the Switchboard binary: `switchboard serve` runs the signaling server,
// `switchboard bench` measures it (or any server speaking its protocol).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/switchboard-rtc/switchboard/internal/bench"
	"github.com/switchboard-rtc/switchboard/internal/config"
	"github.com/switchboard-rtc/switchboard/internal/server"
)

// version is stamped at build time with -ldflags "-X main.version=...".
var version = "dev"

const usage = `Usage: switchboard <command> [flags]

Commands:
  serve     run the signaling server (switchboard serve --help)
  send      send files: switchboard send FILE... (prints a code for recv)
  recv      receive files: switchboard recv CODE [--out DIR]
  stream    send an IVF or Ogg file as a media track to every peer in a room
  record    save every track received in a room to IVF/Ogg files
  echo      a bot that sends each peer's tracks and data back to it
  key new   print a fresh API key KEY_ID:SECRET for serve --api-keys
  token     print an access token, or with --url a web-app link (switchboard token --help)
  bench     measure a server or the peer stack (switchboard bench --help)
  version   print the version

Peer commands take --server URL (default http://localhost:8080, env SWITCHBOARD_SERVER) and,
for a server with API keys, --token (env SWITCHBOARD_TOKEN).
`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	// quic-go prints a paragraph (with a link to its wiki) when the kernel caps the UDP
	// receive buffer below 7 MiB, as it does for unprivileged users: send and recv work all
	// the same, and their output is for people, not for library advice.
	if os.Getenv("QUIC_GO_DISABLE_RECEIVE_BUFFER_WARNING") == "" {
		_ = os.Setenv("QUIC_GO_DISABLE_RECEIVE_BUFFER_WARNING", "true")
	}
	stopProfile := startCPUProfile(os.Getenv("SWITCHBOARD_CPUPROFILE"))
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stopProfile()
	stop()
	if err != nil && !errors.Is(err, flag.ErrHelp) {
		fmt.Fprintln(os.Stderr, "switchboard:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return errors.New("no command")
	}
	switch args[0] {
	case "serve":
		return serve(ctx, args[1:], stderr)
	case "send":
		return sendFiles(ctx, args[1:], stdout, stderr)
	case "recv":
		return recvFiles(ctx, args[1:], stdout, stderr)
	case "stream":
		return streamMedia(ctx, args[1:], stdout, stderr)
	case "record":
		return recordMedia(ctx, args[1:], stdout, stderr)
	case "echo":
		return echoBot(ctx, args[1:], stdout, stderr)
	case "key":
		return keyCommand(args[1:], stdout, stderr)
	case "token":
		return tokenCommand(args[1:], stdout, stderr)
	case "bench":
		return bench.Main(ctx, args[1:], stdout, stderr)
	case "version":
		fmt.Fprintln(stdout, "switchboard", version)
		return nil
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return nil
	}
	fmt.Fprint(stderr, usage)
	return fmt.Errorf("unknown command %q", args[0])
}

func serve(ctx context.Context, args []string, stderr io.Writer) error {
	cfg, err := config.Load(args, os.LookupEnv, stderr)
	if err != nil {
		return err
	}
	log, err := newLogger(cfg, stderr)
	if err != nil {
		return err
	}
	srv, err := server.New(cfg, log)
	if err != nil {
		return err
	}
	return srv.Run(ctx)
}

func newLogger(cfg config.Config, w io.Writer) (*slog.Logger, error) {
	var level slog.Level
	if err := level.UnmarshalText([]byte(cfg.LogLevel)); err != nil {
		return nil, fmt.Errorf("log-level: %w", err)
	}
	opts := &slog.HandlerOptions{Level: level}
	if cfg.LogFormat == "json" {
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	}
	return slog.New(slog.NewTextHandler(w, opts)), nil
}
