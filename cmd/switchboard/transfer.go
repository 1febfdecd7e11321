package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/webrtc/v4"
	"github.com/quic-go/quic-go"

	"github.com/switchboard-rtc/switchboard/internal/transfer"
	"github.com/switchboard-rtc/switchboard/internal/wormhole"
	"github.com/switchboard-rtc/switchboard/sdk"
)

// defaultServer is the signaling server of the peer commands unless --server or
// SWITCHBOARD_SERVER says otherwise.
const defaultServer = "http://localhost:8080"

const sendUsage = `Usage: switchboard send FILE|FOLDER... [--server URL] [--room R]

Send files and folders (their tree; links inside are left out) directly over WebRTC (QUIC
between two switchboard commands) and wait until the receiver has confirmed each one. send prints a code such as 7-gravity-lemon-orbit and the
command to run on the receiving side; only a receiver with that code gets the files: both
sides prove the code with a PAKE and check that their connection is the one the code
authenticated, so the server cannot read or change what goes through. A wrong code is
reported at once; after 3 wrong codes send gives up. --room R sends instead to the first
peer in room R, with no code (anyone who joins R can take the files).

Flags (before or after the files):
`

const recvUsage = `Usage: switchboard recv CODE [--out DIR] [--overwrite] [--server URL]
       switchboard recv --room R [--out DIR] ...

Receive files from the sender whose code is CODE (switchboard send prints it) into DIR, or
from the first sender in room R. Each file is written to NAME.part and renamed to NAME only
once its size and SHA-256 match; a failed or interrupted file leaves nothing behind. Only
plain names are accepted (no paths), and existing files are refused unless --overwrite.

Flags:
`

// peerFlags are the flags shared by the peer commands.
type peerFlags struct {
	server   string
	token    string
	loopback bool
	relay    bool
}

func (f *peerFlags) register(fs *flag.FlagSet) {
	server := os.Getenv("SWITCHBOARD_SERVER")
	if server == "" {
		server = defaultServer
	}
	fs.StringVar(&f.server, "server", server, "signaling server URL (env SWITCHBOARD_SERVER)")
	fs.StringVar(&f.token, "token", "", "access token for a server with API keys (env SWITCHBOARD_TOKEN; 'switchboard token' mints one); the room comes from it")
	fs.BoolVar(&f.loopback, "loopback", false, "keep WebRTC traffic on 127.0.0.1: every peer on this host (tests, local use)")
	fs.BoolVar(&f.relay, "relay", false, "send everything through the server's TURN relay (a network that lets nothing direct through, or to hide your address from the peer)")
}

// cliReconnect is how the peer commands ride out a lost signaling connection: transfers and
// media go on peer to peer meanwhile; after about 45 s of failed attempts the command gives up.
var cliReconnect = sdk.ReconnectOptions{MaxAttempts: 12}

func (f *peerFlags) options(role string, stderr io.Writer) *sdk.Options {
	var o sdk.Options
	f.fill(&o, role, stderr)
	return &o
}

// fill sets what every peer command's options share: its role as name (shown in the web
// app's grid and chat) and meta, the flags, reconnection and a warnings-only logger.
func (f *peerFlags) fill(o *sdk.Options, role string, stderr io.Writer) {
	o.Name = role
	o.Meta = map[string]string{"role": role}
	o.Reconnect = cliReconnect
	o.Token = f.tokenFor()
	o.Loopback = f.loopback
	if f.relay {
		o.ICETransportPolicy = webrtc.ICETransportPolicyRelay
	}
	o.Logger = slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
}

// newFlagSet returns a flag set that prints usage, then the flags, to stderr.
func newFlagSet(name, usage string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), usage)
		fs.PrintDefaults()
	}
	return fs
}

// parseInterspersed parses flags anywhere among the positional arguments (the standard
// flag package stops at the first one); everything after "--" is positional.
func parseInterspersed(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		rest := fs.Args()
		if len(rest) == 0 {
			return pos, nil
		}
		if used := len(args) - len(rest); used > 0 && args[used-1] == "--" {
			return append(pos, rest...), nil
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
}

// roleOf returns the role a peer announced in its meta, if any.
func roleOf(p *sdk.Peer) string {
	var m struct {
		Role string `json:"role"`
	}
	_ = json.Unmarshal(p.Meta(), &m)
	return m.Role
}

// peerName names a peer for messages.
func peerName(p *sdk.Peer) string {
	if p.Name() != "" {
		return fmt.Sprintf("%s (%s)", p.Name(), p.ID())
	}
	return p.ID()
}

// watchPeer cancels ctx with a cause when p leaves or its connection fails, until ctx ends.
// The returned function stops the watch and waits for it.
func watchPeer(ctx context.Context, cancel context.CancelCauseFunc, p *sdk.Peer, failed <-chan struct{}, who string) (stop func()) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		select {
		case <-p.Closed():
			cancel(fmt.Errorf("the %s left", who))
		case <-failed:
			cancel(fmt.Errorf("the connection to the %s failed", who))
		case <-ctx.Done():
		}
	}()
	return func() {
		cancel(nil)
		<-done
	}
}

// onFailed returns a channel closed when p's connection fails. Set it up from OnPeer.
func onFailed(p *sdk.Peer) <-chan struct{} {
	failed := make(chan struct{})
	var once sync.Once
	p.OnConnectionState(func(s webrtc.PeerConnectionState) {
		if s == webrtc.PeerConnectionStateFailed {
			once.Do(func() { close(failed) })
		}
	})
	return failed
}

// interrupted turns a transfer error into what the user should read: the cause of a
// cancellation (the peer left) rather than "context canceled".
func interrupted(ctx context.Context, err error) error {
	if cause := context.Cause(ctx); cause != nil && !errors.Is(cause, context.Canceled) && errors.Is(err, context.Canceled) {
		return fmt.Errorf("%w (%w)", cause, err)
	}
	return err
}

// sendFiles runs `switchboard send`.
func sendFiles(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("send", sendUsage, stderr)
	var pf peerFlags
	pf.register(fs)
	room := fs.String("room", "", "room to meet the receiver in, with no code: anyone who joins it can take the files (default: a code, printed)")
	noQUIC := fs.Bool("no-quic", false, "send over the WebRTC data channel even when the receiver can take QUIC")
	text := fs.String("text", "", "send this text instead of files: the receiver shows it (at most 64 KiB)")
	stdinName := fs.String("name", "stdin", "the name standard input (-) is sent as")
	paths, err := parseInterspersed(fs, args)
	if err != nil {
		return err
	}
	paths, cleanup, err := stagedInputs(paths, *text, *stdinName)
	defer cleanup()
	if err != nil {
		return fmt.Errorf("send: %w", err)
	}
	if len(paths) == 0 {
		fs.Usage()
		return errors.New("send: no files given")
	}
	plan, skipped, err := transfer.Plan(paths)
	if err != nil {
		return fmt.Errorf("send: %w", err)
	}
	for _, n := range skipped {
		fmt.Fprintf(stderr, "%s: left out (a link or a special file, not a regular file)\n", n)
	}
	var auth *pairAuth // code mode: neither --room nor --token
	if *room == "" && pf.tokenFor() == "" {
		auth = newPairAuth(wormhole.Code{}, wormhole.Sender, stderr)
	}

	// A receiver that announced QUIC gets its QUIC setup started at once (OnPeer), beside
	// the peer connection's negotiation; the sender takes the receiver whose QUIC connection
	// or peer connection is up first (transfer_quic.go).
	type candidate struct {
		p      *sdk.Peer
		failed <-chan struct{}
		quic   *quicAttempt // nil: no QUIC with this peer
		code   *codePeer    // code mode: the exchange with this peer
	}
	candidates := make(chan candidate, 16)
	var proving sync.WaitGroup // goroutines waiting for a receiver to prove the code
	defer proving.Wait()
	setups := newQUICSetups(ctx, quicSendLimit)
	defer setups.stop()
	opts := pf.options("send", stderr)
	opts.Meta = transferMeta("send", !*noQUIC)
	opts.OnPeer = func(p *sdk.Peer) {
		if roleOf(p) == "send" || len(candidates) == cap(candidates) {
			return // plenty already
		}
		c := candidate{p: p, failed: onFailed(p)}
		if auth != nil {
			if c.code = auth.watch(p); c.code == nil {
				return // busy with maxCodePeers exchanges
			}
		}
		if !*noQUIC && quicOf(p) {
			c.quic = setups.start(p, c.failed, quicSendWait, nil)
		}
		push := func() {
			select {
			case candidates <- c:
			default: // filled meanwhile: its QUIC setup ends with its bound
			}
		}
		if c.code == nil {
			push()
			return
		}
		// A receiver is a candidate once it has proved the code.
		proving.Add(1)
		go func() {
			defer proving.Done()
			if c.code.waitReady(ctx, p) == nil {
				push()
			}
		}()
	}
	defer auth.close() // on every return, once the client is closed too
	var client *sdk.Client
	if auth != nil {
		var code wormhole.Code
		client, code, err = joinCodeRoom(ctx, func(c wormhole.Code) (*sdk.Client, error) {
			auth.setCode(c)
			return dialPeer(ctx, pf.server, c.Room(), opts)
		})
		if err == nil {
			printRecvHint(stdout, code.String(), pf)
		}
	} else {
		client, err = dialPeer(ctx, pf.server, *room, opts)
	}
	if err != nil {
		return fmt.Errorf("send: %w", err)
	}
	defer client.Close()
	defer auth.close()    // before client.Close: its peers leaving are no attempts
	*room = client.Room() // the token's, when it named the room

	var total int64
	for _, r := range plan {
		total += r.Size
	}
	fmt.Fprintf(stderr, "%d file(s), %s; waiting for a receiver in room %s ...\n", len(plan), humanBytes(total), *room)
	var t candidate
	for t.p == nil {
		var c candidate
		select {
		case c = <-candidates:
		case <-gaveUp(auth):
			return fmt.Errorf("send: %d wrong codes: giving up (run send again for a new code)", maxWrongCodes)
		case <-client.Done():
			return fmt.Errorf("send: %w", client.Err())
		case <-ctx.Done():
			return fmt.Errorf("send: %w", ctx.Err())
		}
		var quicUp, quicDone <-chan struct{} // nil: never
		if c.quic != nil {
			quicUp, quicDone = c.quic.up, c.quic.done
		}
		for t.p == nil && c.p != nil {
			select {
			case <-quicUp:
				t = c
			case <-quicDone: // no QUIC: wait for the peer connection alone
				quicUp, quicDone = nil, nil
			case <-c.p.Connected():
				t = c
			case <-c.p.Closed():
				fmt.Fprintf(stderr, "%s left before connecting\n", peerName(c.p))
				c.p = nil
			case <-c.failed:
				fmt.Fprintf(stderr, "could not connect to %s\n", peerName(c.p))
				c.p = nil
			case <-client.Done():
				return fmt.Errorf("send: %w", client.Err())
			case <-ctx.Done():
				return fmt.Errorf("send: %w", ctx.Err())
			}
		}
	}
	pr := newProgressPrinter(stderr, "sending")
	var results []transfer.Result
	var tctx context.Context
	var start time.Time
	for q := t.quic; ; q = nil {
		ch, how, cerr := senderChannel(ctx, t.p, q, t.failed)
		if cerr != nil {
			return fmt.Errorf("send: %w", cerr)
		}
		if t.code != nil {
			if err := t.code.bind(ctx, t.p, bindPath(how)); err != nil {
				_ = ch.Close()
				return fmt.Errorf("send: %w", err)
			}
		}
		failed := t.failed
		var heard *heardChannel
		if strings.HasPrefix(how, "over QUIC") {
			failed = nil // the transfer does not need the peer connection
			heard = &heardChannel{Channel: ch}
			ch = heard
		}
		sender := transfer.NewSenderOn(ch, &transfer.SendOptions{Progress: pr.update, Resume: resumeOf(t.p), Text: *text != ""})
		fmt.Fprintf(stderr, "sending to %s %s\n", peerName(t.p), how)
		var cancel context.CancelCauseFunc
		tctx, cancel = context.WithCancelCause(ctx)
		stop := watchPeer(tctx, cancel, t.p, failed, "receiver")
		start = time.Now()
		results, err = sender.Send(tctx, paths)
		stop()
		if heard != nil && !heard.any.Load() && errors.Is(err, transfer.ErrClosed) && ctx.Err() == nil {
			// The receiver closed the stream before answering anything (its QUIC wait ran
			// out as the stream arrived): nothing of the files is there; the data channel.
			fmt.Fprintf(stderr, "the QUIC stream closed before the receiver answered; trying the data channel\n")
			continue
		}
		break
	}
	pr.finish()
	elapsed := time.Since(start)
	var sent int64
	for _, r := range results {
		if r.Err != nil {
			fmt.Fprintln(stderr, fileFailure(r, true, ""))
			continue
		}
		if r.Resumed > 0 {
			fmt.Fprintf(stderr, "%s: the receiver had %s of it from an earlier transfer; sent the rest\n", r.Name, humanBytes(r.Resumed))
		}
		sent += r.Size
	}
	if err != nil {
		return fmt.Errorf("send: %w", transferError(tctx, err, results))
	}
	fmt.Fprintf(stderr, "sent %d file(s), %s in %s (%s/s); the receiver confirmed each\n",
		len(results), humanBytes(sent), elapsed.Round(time.Millisecond), humanBytes(int64(float64(sent)/elapsed.Seconds())))
	return nil
}

// recvProgressHook, when set (tests), sees every progress report of recv.
var recvProgressHook func(transfer.Progress)

// recvFiles runs `switchboard recv`.
func recvFiles(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("recv", recvUsage, stderr)
	var pf peerFlags
	pf.register(fs)
	room := fs.String("room", "", "room to meet the sender in (required: the sender prints it)")
	out := fs.String("out", ".", "directory to write the files into (created if missing); - writes the one file to standard output")
	overwrite := fs.Bool("overwrite", false, "replace existing files of the same name")
	noQUIC := fs.Bool("no-quic", false, "receive over the WebRTC data channel only (do not offer QUIC)")
	wait := fs.Duration("wait", defaultCodeWait, "with a code: how long to wait for its sender to show up")
	discard := fs.Bool("discard-partial", false, "delete what arrived of a file when the transfer stops in its middle (by default NAME.part is kept, and the next transfer of it continues from there)")
	rest, err := parseInterspersed(fs, args)
	if err != nil {
		return err
	}
	var auth *pairAuth
	switch {
	case len(rest) == 1 && *room == "" && pf.tokenFor() == "":
		code, cerr := wormhole.ParseCode(rest[0])
		if cerr != nil {
			return fmt.Errorf("recv: %q: %w", rest[0], cerr)
		}
		auth = newPairAuth(code, wormhole.Receiver, stderr)
		*room = code.Room()
	case len(rest) > 0:
		fs.Usage()
		return fmt.Errorf("recv: unexpected argument %q", rest[0])
	case *room == "" && pf.tokenFor() == "":
		fs.Usage()
		return errors.New("recv: give the code switchboard send printed (or --room, or --token for the token's room)")
	}
	toStdout := *out == "-" // the one file to standard output, once verified
	if toStdout {
		dir, err := os.MkdirTemp("", "switchboard-recv-")
		if err != nil {
			return fmt.Errorf("recv: %w", err)
		}
		defer os.RemoveAll(dir)
		*out, *discard = dir, true
	} else if err := os.MkdirAll(*out, 0o755); err != nil {
		return fmt.Errorf("recv: %w", err)
	}

	type source struct {
		p      *sdk.Peer
		r      *transfer.Receiver
		failed <-chan struct{}
		how    string
		ch     transfer.Channel
		code   *codePeer // code mode: the exchange with p
	}
	var codeLost <-chan error // code mode: every sender's exchange failed
	if auth != nil {
		codeLost = auth.lost
	}
	defer auth.close() // on every return, once the client is closed too
	sources := make(chan source, 1)
	var taken atomic.Bool
	pr := newProgressPrinter(stderr, "receiving")
	ropts := transfer.ReceiveOptions{Dir: *out, Overwrite: *overwrite, Progress: pr.update, Resume: !*discard,
		Text: showText(stdout, stderr)}
	if hook := recvProgressHook; hook != nil {
		ropts.ProgressInterval = time.Nanosecond
		ropts.Progress = func(p transfer.Progress) { pr.update(p); hook(p) }
	}
	opts := pf.options("recv", stderr)
	meta := transferMeta("recv", !*noQUIC)
	if !*discard {
		meta["resume"] = 1 // it keeps partial files and continues them
	}
	opts.Meta = meta
	setups := newQUICSetups(ctx, quicRecvLimit)
	defer setups.stop()
	opts.OnPeer = func(p *sdk.Peer) {
		failed := onFailed(p)
		var cp *codePeer
		if auth != nil {
			if roleOf(p) != "send" {
				return // code mode: only a sender, and only once it proved the code
			}
			if cp = auth.watch(p); cp == nil {
				return
			}
		}
		// proved reports whether p may send: in code mode, only once it proved the code (this
		// side's exchange is confirmed before its confirm goes, and the sender opens its
		// channel only after it, so a real sender's channel always finds it so).
		proved := func() bool { return cp == nil || cp.isReady() }
		p.OnDataChannel(func(dc *webrtc.DataChannel) {
			if !transfer.Accept(dc) {
				return
			}
			if !proved() || !taken.CompareAndSwap(false, true) {
				_ = dc.Close() // a peer that did not prove the code, or busy with another sender
				return
			}
			ch := transfer.DataChannel(dc, nil)
			sources <- source{p, transfer.NewReceiverOn(ch, ropts), failed, "over the data channel", ch, cp}
		})
		if !*noQUIC && quicOf(p) && roleOf(p) == "send" {
			// At once, beside the peer connection; the sender's stream is taken unless its
			// data channel came first. The transfer then does not need the peer connection.
			// Beyond quicMaxSetups running, a sender goes without (nil): its data channel.
			setups.start(p, failed, quicRecvWait, func(ctx context.Context, conn *quic.Conn) bool {
				ch, err := transfer.AcceptStream(ctx, conn)
				if err != nil {
					return false // the data channel, then
				}
				if !proved() || !taken.CompareAndSwap(false, true) {
					_ = ch.Close() // not proved, busy with another sender, or its data channel came first
					return false
				}
				sources <- source{p, transfer.NewReceiverOn(ch, ropts), nil, "over QUIC (" + p.QUICPath() + ")", ch, cp}
				return true
			})
		}
	}
	client, err := dialPeer(ctx, pf.server, *room, opts)
	if err != nil {
		return fmt.Errorf("recv: %w", err)
	}
	defer client.Close()
	defer auth.close() // before client.Close: its peers leaving are no failures
	*room = client.Room()
	var deadline <-chan time.Time // code mode: no sender within --wait
	if auth != nil {
		fmt.Fprintf(stderr, "waiting for the sender of %s; files go to %s\n", auth.code(), *out)
		if !hasSender(client) {
			fmt.Fprintf(stderr, "(no sender with this code on the server yet: it may not have started; waiting up to %s)\n", *wait)
		}
		t := time.NewTimer(*wait)
		defer t.Stop()
		deadline = t.C
	} else {
		fmt.Fprintf(stderr, "waiting for a sender in room %s; files go to %s\n", *room, *out)
	}
	var src source
	select {
	case src = <-sources:
	case err := <-codeLost:
		return fmt.Errorf("recv: %w", err)
	case <-deadline:
		return fmt.Errorf("recv: no sender came with code %s within %s (check the code, or ask for a new one)", auth.code(), *wait)
	case <-client.Done():
		return fmt.Errorf("recv: %w", client.Err())
	case <-ctx.Done():
		return fmt.Errorf("recv: %w", ctx.Err())
	}
	if src.code != nil {
		if err := bindSource(ctx, src.code, src.p, bindPath(src.how)); err != nil {
			_ = src.ch.Close()
			return fmt.Errorf("recv: %w", err)
		}
	}
	fmt.Fprintf(stderr, "receiving from %s %s\n", peerName(src.p), src.how)
	tctx, cancel := context.WithCancelCause(ctx)
	stop := watchPeer(tctx, cancel, src.p, src.failed, "sender")
	start := time.Now()
	results, err := src.r.Run(tctx)
	stop()
	pr.finish()
	elapsed := time.Since(start)
	var got int64
	var n int
	for _, r := range results {
		if r.Err != nil {
			fmt.Fprintln(stderr, fileFailure(r, false, *out))
			continue
		}
		if r.Resumed > 0 {
			fmt.Fprintf(stderr, "%s: continued from %s kept from an earlier transfer\n", r.Name, humanBytes(r.Resumed))
		}
		n++
		got += r.Size
		if !r.Text && !toStdout {
			fmt.Fprintf(stdout, "%s\n", r.Name)
		}
	}
	if err != nil {
		return fmt.Errorf("recv: %w", transferError(tctx, err, results))
	}
	if toStdout {
		if err := copyOut(stdout, *out, results); err != nil {
			return fmt.Errorf("recv: %w", err)
		}
		*out = "standard output"
	}
	fmt.Fprintf(stderr, "received %d file(s), %s in %s (%s/s) into %s\n",
		n, humanBytes(got), elapsed.Round(time.Millisecond), humanBytes(int64(float64(got)/elapsed.Seconds())), *out)
	return nil
}
