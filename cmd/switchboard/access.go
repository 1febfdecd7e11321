package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"strings"
	"syscall"
	"time"

	"github.com/switchboard-rtc/switchboard/internal/auth"
	"github.com/switchboard-rtc/switchboard/protocol"
	"github.com/switchboard-rtc/switchboard/sdk"
)

const keyUsage = `Usage: switchboard key new

Print a fresh API key, KEY_ID:SECRET (256 random bits), on stdout. Start the server with it
(--api-keys or SWITCHBOARD_API_KEYS, several at once to rotate without downtime) and sign
access tokens with it (switchboard token, or the application's backend: docs/auth.md).
`

const tokenUsage = `Usage: switchboard token --room R --identity ID [--ttl 1h] [--name N] [--meta JSON]
                         [--admin] [--no-turn] [--api-key KEY_ID:SECRET] [--key-id ID] [--url URL]

Print an access token (a JWT signed HS256 with an API key, docs/auth.md) that lets ID join
room R (or any room starting with P when R is P*), shown to the others as N with metadata
JSON, with TURN credentials unless --no-turn. --admin adds the server API (/api/v1/); with
--admin alone the token is for the API only. The key is --api-key, or the first of
SWITCHBOARD_API_KEYS (--key-id picks another). With --url, print the web app's link instead:
URL/r/R#token=... — the token rides in the fragment, which browsers never send to the server.

Flags:
`

// keyCommand runs `switchboard key new`.
func keyCommand(args []string, stdout, stderr io.Writer) error {
	if len(args) == 1 && (args[0] == "-h" || args[0] == "--help" || args[0] == "help") {
		fmt.Fprint(stdout, keyUsage)
		return nil
	}
	if len(args) != 1 || args[0] != "new" {
		fmt.Fprint(stderr, keyUsage)
		return errors.New("key: want 'switchboard key new'")
	}
	k := auth.NewKey()
	fmt.Fprintln(stdout, k.Spec())
	fmt.Fprintln(stderr, "Pass it to the server as SWITCHBOARD_API_KEYS=KEY_ID:SECRET (or serve --api-keys KEY_ID:SECRET); 'switchboard token' signs with the same variable.")
	return nil
}

// tokenFlags are `switchboard token`'s settings.
type tokenFlags struct {
	room, identity, name, meta string
	ttl                        time.Duration
	admin, noTURN              bool
	apiKey, keyID, url         string
}

// tokenCommand runs `switchboard token`.
func tokenCommand(args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("token", tokenUsage, stderr)
	var f tokenFlags
	fs.StringVar(&f.room, "room", "", "room the token grants: a name, or a prefix ending in * (quote it in the shell)")
	fs.StringVar(&f.identity, "identity", "", "the user's identity (the token's sub): one presence per identity and room")
	fs.DurationVar(&f.ttl, "ttl", time.Hour, "how long the token is valid (joins are checked against it; a joined peer stays)")
	fs.StringVar(&f.name, "name", "", "display name shown to the other peers")
	fs.StringVar(&f.meta, "meta", "", "metadata shown to the other peers: a JSON object")
	fs.BoolVar(&f.admin, "admin", false, "grant the server API (/api/v1/)")
	fs.BoolVar(&f.noTURN, "no-turn", false, "do not hand this peer TURN credentials")
	fs.StringVar(&f.apiKey, "api-key", "", "API key KEY_ID:SECRET to sign with (default: from SWITCHBOARD_API_KEYS)")
	fs.StringVar(&f.keyID, "key-id", "", "which key of SWITCHBOARD_API_KEYS signs (default: the first)")
	fs.StringVar(&f.url, "url", "", "server base URL (http://host:8080): print the web app's link to the room instead")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		fs.Usage()
		return fmt.Errorf("token: unexpected argument %q", fs.Arg(0))
	}
	out, err := f.make(time.Now(), os.Getenv("SWITCHBOARD_API_KEYS"))
	if err != nil {
		return fmt.Errorf("token: %w", err)
	}
	fmt.Fprintln(stdout, out)
	return nil
}

// make mints the token (or the link) at now, with the key from --api-key or envKeys.
func (f *tokenFlags) make(now time.Time, envKeys string) (string, error) {
	switch {
	case f.room == "" && !f.admin:
		return "", errors.New("--room is required (or --admin for an API-only token)")
	case f.room != "" && f.identity == "":
		return "", errors.New("--identity is required: the user the token is for")
	case f.room != "" && !validGrant(f.room):
		return "", fmt.Errorf("--room %.64q: want a room name (1-%d of A-Z a-z 0-9 _ - .) or a prefix ending in *", f.room, protocol.MaxRoomLen)
	case f.ttl <= 0:
		return "", errors.New("--ttl must be positive, e.g. 1h or 15m")
	case f.url != "" && f.room == "":
		return "", errors.New("--url needs --room: the link opens a room")
	case f.url != "" && strings.HasSuffix(f.room, "*"):
		return "", fmt.Errorf("--url needs one room, not the prefix %q: the link opens a room by name", f.room)
	}
	key, err := f.key(envKeys)
	if err != nil {
		return "", err
	}
	c := auth.NewClaims(f.identity, f.room, now, f.ttl)
	c.Join = f.room != ""
	c.TURN = c.Join && !f.noTURN
	c.Admin = f.admin
	c.Name = f.name
	if f.meta != "" {
		var obj map[string]any
		if err := json.Unmarshal([]byte(f.meta), &obj); err != nil || obj == nil {
			return "", fmt.Errorf("--meta %.40q is not a JSON object", f.meta)
		}
		c.Meta = json.RawMessage(f.meta)
	}
	tok, err := auth.Mint(key, c)
	if err != nil {
		return "", err
	}
	// The server's own check, so a token printed here is one it accepts.
	v, err := auth.NewVerifier([]auth.Key{key})
	if err != nil {
		return "", err
	}
	if _, aerr := v.Verify(tok, now); aerr != nil {
		return "", fmt.Errorf("%s", aerr.Message)
	}
	if f.url == "" {
		return tok, nil
	}
	return appLink(f.url, f.room, tok)
}

// validGrant reports whether room is a room name or a prefix of one ending in "*".
func validGrant(room string) bool {
	if p, ok := strings.CutSuffix(room, "*"); ok {
		return p == "" || protocol.ValidRoom(p)
	}
	return protocol.ValidRoom(room)
}

// key returns the signing key: --api-key, or the one of envKeys (SWITCHBOARD_API_KEYS) that
// --key-id names (default the first).
func (f *tokenFlags) key(envKeys string) (auth.Key, error) {
	if f.apiKey != "" {
		k, err := auth.ParseKey(f.apiKey)
		if err != nil {
			return auth.Key{}, fmt.Errorf("--api-key: %w", err)
		}
		if f.keyID != "" && f.keyID != k.ID {
			return auth.Key{}, fmt.Errorf("--key-id %q does not match the id of --api-key (%s)", f.keyID, k.ID)
		}
		return k, nil
	}
	var specs []string
	for _, s := range strings.Split(envKeys, ",") {
		if s = strings.TrimSpace(s); s != "" {
			specs = append(specs, s)
		}
	}
	if len(specs) == 0 {
		return auth.Key{}, errors.New("no API key: pass --api-key KEY_ID:SECRET or set SWITCHBOARD_API_KEYS (run 'switchboard key new' for one)")
	}
	keys, err := auth.ParseKeys(specs)
	if err != nil {
		return auth.Key{}, fmt.Errorf("SWITCHBOARD_API_KEYS: %w", err)
	}
	if f.keyID == "" {
		return keys[0], nil
	}
	for _, k := range keys {
		if k.ID == f.keyID {
			return k, nil
		}
	}
	return auth.Key{}, fmt.Errorf("--key-id %q: SWITCHBOARD_API_KEYS has no key with that id", f.keyID)
}

// appLink returns the web app's link to room on the server at base, carrying token in the
// fragment: base/r/room#token=TOKEN.
func appLink(base, room, token string) (string, error) {
	u, err := url.Parse(base)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return "", fmt.Errorf("--url %q: want the server's http:// or https:// base URL", base)
	}
	if !protocol.ValidRoom(room) {
		return "", fmt.Errorf("--room %.64q: room names are 1-%d characters of A-Z a-z 0-9 _ - .", room, protocol.MaxRoomLen)
	}
	u.Path = strings.TrimSuffix(u.Path, "/") + "/r/" + room
	u.RawPath, u.RawQuery = "", ""
	u.Fragment = "token=" + token
	return u.String(), nil
}

// tokenFor returns the peer commands' access token: --token, else SWITCHBOARD_TOKEN (read
// here rather than as the flag's default so --help never prints it).
func (f *peerFlags) tokenFor() string {
	if f.token != "" {
		return f.token
	}
	return strings.TrimSpace(os.Getenv("SWITCHBOARD_TOKEN"))
}

// joinError explains a refused join in the peer commands' terms.
func joinError(err error) error {
	switch {
	case errors.Is(err, sdk.ErrTokenMissing):
		return fmt.Errorf("%w (pass --token or set SWITCHBOARD_TOKEN; 'switchboard token' mints one)", err)
	case errors.Is(err, sdk.ErrRoomNotGranted):
		return fmt.Errorf("%w (leave out --room to join the token's room)", err)
	}
	return err
}

// dialPeer joins room ("" for the token's) like sdk.Dial, with refusals explained. A server
// given without a scheme ("localhost:8080") is taken as http://.
func dialPeer(ctx context.Context, server, room string, o *sdk.Options) (*sdk.Client, error) {
	server = serverURL(server)
	c, err := sdk.Dial(ctx, server, room, o)
	if err != nil {
		if unreachable(err) {
			return nil, fmt.Errorf("cannot reach the signaling server at %s (%s): is it running, and is that its address? (--server or SWITCHBOARD_SERVER)", server, netReason(err))
		}
		return nil, joinError(err)
	}
	return c, nil
}

// serverURL adds http:// to a server address given without a scheme.
func serverURL(s string) string {
	if s != "" && !strings.Contains(s, "://") {
		return "http://" + s
	}
	return s
}

// unreachable reports whether err is a failure to reach the server at all (refused, no
// route, no such host, timed out), not a refusal by it.
func unreachable(err error) bool {
	var op *net.OpError
	var dns *net.DNSError
	return errors.As(err, &op) || errors.As(err, &dns) || errors.Is(err, context.DeadlineExceeded)
}

// netReason names why the server could not be reached, in a few words.
func netReason(err error) string {
	var dns *net.DNSError
	switch {
	case errors.As(err, &dns):
		return "no such host " + dns.Name
	case errors.Is(err, syscall.ECONNREFUSED):
		return "connection refused"
	case errors.Is(err, syscall.EHOSTUNREACH), errors.Is(err, syscall.ENETUNREACH):
		return "no route to it"
	case errors.Is(err, context.DeadlineExceeded), os.IsTimeout(err):
		return "timed out"
	}
	return "network error"
}
