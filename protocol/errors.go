package protocol

import "fmt"

// Code is a stable, machine-readable error code sent in error frames. Codes are only ever
// added; their meaning never changes. docs/protocol.md lists them.
type Code uint8

// Error codes.
const (
	CodeInternal Code = iota
	CodeBadJSON
	CodeBinaryUnsupported
	CodeUnknownType
	CodeMissingField
	CodeBadField
	CodeUnsupportedVersion
	CodeNotJoined
	CodeAlreadyJoined
	CodeRoomFull
	CodeMetaTooLarge
	CodeUnknownTarget
	CodeRateLimited
	CodeUnavailable
	// Access control (docs/auth.md): a join refused for its token, or a presence ended by
	// the server. The connection is closed after the error frame.
	CodeTokenMissing
	CodeTokenInvalid
	CodeTokenExpired
	CodeTokenNotYetValid
	CodeRoomNotGranted
	CodeJoinNotGranted
	CodeReplaced
	CodeRemoved
	CodeRoomClosed

	numCodes
)

// NumCodes is the number of error codes, for arrays indexed by Code.
const NumCodes = int(numCodes)

var codeNames = [...]string{
	CodeInternal:           "internal",
	CodeBadJSON:            "bad-json",
	CodeBinaryUnsupported:  "binary-unsupported",
	CodeUnknownType:        "unknown-type",
	CodeMissingField:       "missing-field",
	CodeBadField:           "bad-field",
	CodeUnsupportedVersion: "unsupported-version",
	CodeNotJoined:          "not-joined",
	CodeAlreadyJoined:      "already-joined",
	CodeRoomFull:           "room-full",
	CodeMetaTooLarge:       "meta-too-large",
	CodeUnknownTarget:      "unknown-target",
	CodeRateLimited:        "rate-limited",
	CodeUnavailable:        "unavailable",
	CodeTokenMissing:       "token-missing",
	CodeTokenInvalid:       "token-invalid",
	CodeTokenExpired:       "token-expired",
	CodeTokenNotYetValid:   "token-not-yet-valid",
	CodeRoomNotGranted:     "room-not-granted",
	CodeJoinNotGranted:     "join-not-granted",
	CodeReplaced:           "replaced",
	CodeRemoved:            "removed",
	CodeRoomClosed:         "room-closed",
}

// String returns the wire name of c.
func (c Code) String() string {
	if int(c) < len(codeNames) {
		return codeNames[c]
	}
	return fmt.Sprintf("code(%d)", uint8(c))
}

// Error is a protocol error: what the server answers with an error frame.
type Error struct {
	Code    Code
	Message string
}

// Error implements error.
func (e *Error) Error() string { return e.Code.String() + ": " + e.Message }

// Errorf returns an *Error with code c and a formatted message.
func Errorf(c Code, format string, args ...any) *Error {
	return &Error{Code: c, Message: fmt.Sprintf(format, args...)}
}
