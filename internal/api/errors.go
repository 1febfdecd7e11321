package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/switchboard-rtc/switchboard/internal/bus"
)

// ErrBadConfig is returned by New for an invalid Config.
var ErrBadConfig = errors.New("api: bad config")

// Error codes in API error bodies. They are stable: only ever added, never changed.
const (
	CodeAPIOff           = "api-off"                // 404: the server has no API keys
	CodeTokenMissing     = "token-missing"          // 401
	CodeTokenInvalid     = "token-invalid"          // 401
	CodeTokenExpired     = "token-expired"          // 401
	CodeTokenNotYetValid = "token-not-yet-valid"    // 401
	CodeAdminNotGranted  = "admin-not-granted"      // 403: a valid token without admin
	CodeNoRoute          = "no-route"               // 404: no such API path
	CodeMethodNotAllowed = "method-not-allowed"     // 405
	CodeBadRoom          = "bad-room"               // 400: not a valid room name
	CodeBadPeer          = "bad-peer"               // 400: not a valid peer id
	CodeBadBody          = "bad-body"               // 400: not JSON, wrong shape, unknown field
	CodeMissingField     = "missing-field"          // 400
	CodeBadField         = "bad-field"              // 400
	CodeMetaTooLarge     = "meta-too-large"         // 400
	CodeBodyTooLarge     = "body-too-large"         // 413
	CodeUnsupportedMedia = "unsupported-media-type" // 415
	CodeRoomNotFound     = "room-not-found"         // 404
	CodePeerNotFound     = "peer-not-found"         // 404
	CodeUnavailable      = "unavailable"            // 503
	CodeTimeout          = "timeout"                // 504
	CodeInternal         = "internal"               // 500
)

// Codes returns every error code the API answers with, in the order above.
func Codes() []string {
	return []string{CodeAPIOff, CodeTokenMissing, CodeTokenInvalid, CodeTokenExpired, CodeTokenNotYetValid,
		CodeAdminNotGranted, CodeNoRoute, CodeMethodNotAllowed, CodeBadRoom, CodeBadPeer, CodeBadBody,
		CodeMissingField, CodeBadField, CodeMetaTooLarge, CodeBodyTooLarge, CodeUnsupportedMedia,
		CodeRoomNotFound, CodePeerNotFound, CodeUnavailable, CodeTimeout, CodeInternal}
}

// apiError is an error answer: status, code and one-line message.
type apiError struct {
	status  int
	code    string
	message string
}

func errorf(status int, code, format string, args ...any) *apiError {
	return &apiError{status: status, code: code, message: oneLine(fmt.Sprintf(format, args...))}
}

// oneLine keeps a message to one line.
func oneLine(s string) string {
	if strings.ContainsAny(s, "\r\n") {
		s = strings.NewReplacer("\r\n", " ", "\n", " ", "\r", " ").Replace(s)
	}
	return s
}

// errorBody is the JSON of every error answer.
type errorBody struct {
	Error struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
}

// writeError sends e as the JSON error body.
func writeError(w http.ResponseWriter, e *apiError) {
	var b errorBody
	b.Error.Code, b.Error.Message = e.code, e.message
	writeJSON(w, e.status, &b)
}

// writeJSON sends v with status.
func writeJSON(w http.ResponseWriter, status int, v any) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false) // read by programs and people at a terminal, never as HTML
	if err := enc.Encode(v); err != nil {
		// Every value sent is built here from valid parts; this is a bug, not an input.
		status = http.StatusInternalServerError
		b.Reset()
		b.WriteString(`{"error":{"code":"internal","message":"the answer could not be encoded"}}` + "\n")
	}
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_, _ = w.Write(b.Bytes())
}

// backendError maps an error from the Backend to its answer.
func backendError(err error, room, peer string) *apiError {
	switch {
	case errors.Is(err, bus.ErrNoPeer):
		return errorf(http.StatusNotFound, CodePeerNotFound, "peer %.64q is not in room %q", peer, room)
	case errors.Is(err, bus.ErrNoRoom):
		return errorf(http.StatusNotFound, CodeRoomNotFound, "room %q has no peers (a room exists while someone is in it)", room)
	case errors.Is(err, bus.ErrUnavailable):
		return errorf(http.StatusServiceUnavailable, CodeUnavailable, "the server cannot do this now (the cluster is not ready); retry shortly")
	case errors.Is(err, context.DeadlineExceeded):
		return errorf(http.StatusGatewayTimeout, CodeTimeout, "the server did not complete the request in time; retry shortly")
	}
	return errorf(http.StatusInternalServerError, CodeInternal, "the server could not complete the request: %v", err)
}
