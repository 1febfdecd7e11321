package serverapi

import (
	"errors"
	"fmt"
)

// Error codes the server API answers with (docs/api.md lists them all).
const (
	CodeAPIOff           = "api-off"
	CodeTokenMissing     = "token-missing"
	CodeTokenInvalid     = "token-invalid"
	CodeTokenExpired     = "token-expired"
	CodeTokenNotYetValid = "token-not-yet-valid"
	CodeAdminNotGranted  = "admin-not-granted"
	CodeNoRoute          = "no-route"
	CodeMethodNotAllowed = "method-not-allowed"
	CodeUnsupportedMedia = "unsupported-media-type"
	CodeBadRoom          = "bad-room"
	CodeBadPeer          = "bad-peer"
	CodeBadBody          = "bad-body"
	CodeMissingField     = "missing-field"
	CodeBadField         = "bad-field"
	CodeMetaTooLarge     = "meta-too-large"
	CodeBodyTooLarge     = "body-too-large"
	CodeRoomNotFound     = "room-not-found"
	CodePeerNotFound     = "peer-not-found"
	CodeUnavailable      = "unavailable"
	CodeTimeout          = "timeout"
	CodeInternal         = "internal"
)

// Error is a request the server refused or failed: the HTTP status, the API's error code
// ("" when the answer was not the API's, say a proxy's) and its message.
type Error struct {
	Status  int
	Code    string
	Message string
}

// Error implements error.
func (e *Error) Error() string {
	if e.Code == "" {
		return fmt.Sprintf("serverapi: HTTP %d: %s", e.Status, e.Message)
	}
	return fmt.Sprintf("serverapi: %s (HTTP %d): %s", e.Code, e.Status, e.Message)
}

// IsNotFound reports whether err says the room or the peer is not there.
func IsNotFound(err error) bool {
	var e *Error
	return errors.As(err, &e) && (e.Code == CodeRoomNotFound || e.Code == CodePeerNotFound)
}
