package turnserver

import (
	"crypto/hmac"
	"crypto/sha1" //nolint:gosec // TURN REST (coturn use-auth-secret) is defined on HMAC-SHA1
	"encoding/base64"
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/switchboard-rtc/switchboard/protocol"
)

const (
	// MaxTTL caps how long minted credentials may stay valid; the server also refuses
	// usernames that expire further than this in the future.
	MaxTTL = 24 * time.Hour
	// DefaultTTL is the credential lifetime when Config.TTL is zero.
	DefaultTTL = 10 * time.Minute
	// maxUsernameBytes is the STUN USERNAME limit (RFC 8489 §14.3).
	maxUsernameBytes = 513
)

// Mint returns TURN REST credentials for user that expire at expiry: username
// "EXPIRY:USER" and password base64(HMAC-SHA1(secret, username)). They are the credentials
// coturn accepts with use-auth-secret and static-auth-secret=secret.
func Mint(secret []byte, user string, expiry time.Time) (username, password string) {
	username = strconv.FormatInt(expiry.Unix(), 10) + ":" + user
	return username, Password(secret, username)
}

// ICEServers returns one RTCIceServer entry for urls with TURN REST credentials minted for
// user, for a server that shares secret (this one, or coturn with use-auth-secret).
func ICEServers(secret []byte, urls []string, user string, expiry time.Time) protocol.ICEServer {
	u, p := Mint(secret, user, expiry)
	return protocol.ICEServer{URLs: urls, Username: u, Credential: p}
}

// Password returns base64(HMAC-SHA1(secret, username)).
func Password(secret []byte, username string) string {
	mac := hmac.New(sha1.New, secret)
	_, _ = mac.Write([]byte(username)) // a hash never fails to write
	return base64.StdEncoding.EncodeToString(mac.Sum(nil))
}

// ParseUsername splits a TURN REST username "EXPIRY:USER" as Mint writes it: EXPIRY is a
// canonical non-negative decimal of Unix seconds (no sign, no leading zeros), USER is
// non-empty valid UTF-8 without control characters, and the whole fits a STUN USERNAME.
func ParseUsername(s string) (expiry time.Time, user string, err error) {
	if len(s) > maxUsernameBytes {
		return time.Time{}, "", fmt.Errorf("%w: %d bytes", ErrBadUsername, len(s))
	}
	ts, user, ok := strings.Cut(s, ":")
	if !ok {
		return time.Time{}, "", fmt.Errorf("%w: no colon", ErrBadUsername)
	}
	if ts == "" || len(ts) > 12 || (len(ts) > 1 && ts[0] == '0') {
		return time.Time{}, "", fmt.Errorf("%w: expiry %q", ErrBadUsername, ts)
	}
	var sec int64
	for i := 0; i < len(ts); i++ {
		c := ts[i]
		if c < '0' || c > '9' {
			return time.Time{}, "", fmt.Errorf("%w: expiry %q", ErrBadUsername, ts)
		}
		sec = sec*10 + int64(c-'0')
	}
	if user == "" || !utf8.ValidString(user) {
		return time.Time{}, "", fmt.Errorf("%w: user", ErrBadUsername)
	}
	for _, r := range user {
		if r < 0x20 || r == 0x7f {
			return time.Time{}, "", fmt.Errorf("%w: control character in user", ErrBadUsername)
		}
	}
	return time.Unix(sec, 0), user, nil
}
