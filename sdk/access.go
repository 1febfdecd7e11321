package sdk

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/coder/websocket"
)

// Access control (docs/auth.md). A server started with --api-keys admits a join only with an
// access token: Options.Token, or Options.TokenFunc for one fetched from the application when
// needed. The server takes the room, name and metadata from the token. A resumed presence
// needs no token; a reconnect whose resume fails joins anew, with a fresh token from
// TokenFunc when it is set. A refused token, or a presence the server ended (replaced by the
// same identity elsewhere, removed, room closed), is final: the client never retries it and
// stops with a *ServerError (Done, Err, OnError) whose code says why.

// ServerError is an error frame from the signaling server. Code is the protocol's stable,
// machine-readable code (docs/protocol.md); Message is for a person.
type ServerError struct {
	Code    string
	Message string
}

func (e *ServerError) Error() string { return "switchboard: " + e.Code + ": " + e.Message }

// Is makes errors.Is(err, sdk.ErrTokenExpired) and the like match any *ServerError with that
// code: a sentinel (no Message) matches by code alone.
func (e *ServerError) Is(target error) bool {
	t, ok := target.(*ServerError)
	return ok && t.Message == "" && t.Code == e.Code
}

// Final reports whether the server ends the connection after this error and would repeat it
// on a retry: a join refused for its token, or a presence the server ended. The client does
// not reconnect after one.
func (e *ServerError) Final() bool { return finalCodes[e.Code] }

// Errors a server with access control answers; compare with errors.Is.
var (
	// ErrTokenMissing: the server needs an access token and the join had none.
	ErrTokenMissing = &ServerError{Code: "token-missing"}
	// ErrTokenInvalid: the token is malformed, signed with an unknown key or does not verify.
	ErrTokenInvalid = &ServerError{Code: "token-invalid"}
	// ErrTokenExpired: the token's exp has passed; the application must mint a new one.
	ErrTokenExpired = &ServerError{Code: "token-expired"}
	// ErrTokenNotYetValid: the token's nbf is in the future (check the clocks).
	ErrTokenNotYetValid = &ServerError{Code: "token-not-yet-valid"}
	// ErrRoomNotGranted: the token grants another room.
	ErrRoomNotGranted = &ServerError{Code: "room-not-granted"}
	// ErrJoinNotGranted: the token does not grant joining.
	ErrJoinNotGranted = &ServerError{Code: "join-not-granted"}
	// ErrReplaced: the same identity joined the room from another connection.
	ErrReplaced = &ServerError{Code: "replaced"}
	// ErrRemoved: the application removed the peer from the room (server API).
	ErrRemoved = &ServerError{Code: "removed"}
	// ErrRoomClosed: the application closed the room (server API).
	ErrRoomClosed = &ServerError{Code: "room-closed"}
)

var finalCodes = map[string]bool{}

func init() {
	for _, e := range []*ServerError{ErrTokenMissing, ErrTokenInvalid, ErrTokenExpired, ErrTokenNotYetValid,
		ErrRoomNotGranted, ErrJoinNotGranted, ErrReplaced, ErrRemoved, ErrRoomClosed} {
		finalCodes[e.Code] = true
	}
}

// ErrorCode returns the protocol code of the *ServerError in err's chain, or "".
func ErrorCode(err error) string {
	var se *ServerError
	if errors.As(err, &se) {
		return se.Code
	}
	return ""
}

// final returns the *ServerError in err's chain that ends the client, or nil.
func final(err error) *ServerError {
	var se *ServerError
	if errors.As(err, &se) && se.Final() {
		return se
	}
	return nil
}

// policyClose turns a connection closed with 1008 (policy violation) into the error it
// stands for: the server closes a refused or ended presence with 1008 and the code as
// reason, after the error frame. It returns nil for other errors.
func policyClose(err error) *ServerError {
	var ce websocket.CloseError
	if !errors.As(err, &ce) || ce.Code != websocket.StatusPolicyViolation {
		return nil
	}
	code := strings.TrimSpace(ce.Reason)
	if code == "" {
		code = "policy-violation"
	}
	return &ServerError{Code: code, Message: "the server closed the connection"}
}

// firstToken returns the token of the first join: Options.Token, or one from TokenFunc.
func firstToken(ctx context.Context, o *Options) (string, error) {
	if o.Token != "" || o.TokenFunc == nil {
		return o.Token, nil
	}
	t, err := o.TokenFunc(ctx)
	if err != nil {
		return "", fmt.Errorf("sdk: get an access token: %w", err)
	}
	return t, nil
}
