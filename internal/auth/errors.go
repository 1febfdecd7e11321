package auth

import (
	"errors"

	"github.com/switchboard-rtc/switchboard/protocol"
)

var (
	// ErrBadKey is returned (wrapped) for a malformed API key.
	ErrBadKey = errors.New("auth: bad API key")
	// ErrNoKeys is returned by NewVerifier without keys.
	ErrNoKeys = errors.New("auth: no API keys")
)

// Error is a refused token: the protocol code the client is sent (token-missing,
// token-invalid, token-expired, ...) and a message for a person. Messages never hold a secret.
type Error struct {
	Code    protocol.Code
	Message string
}

// Error implements error.
func (e *Error) Error() string { return e.Code.String() + ": " + e.Message }

// Protocol returns e as the protocol error a client is sent.
func (e *Error) Protocol() *protocol.Error {
	return &protocol.Error{Code: e.Code, Message: e.Message}
}

func refuse(code protocol.Code, msg string) *Error { return &Error{Code: code, Message: msg} }
