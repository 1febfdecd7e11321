package hub

import (
	"errors"
	"fmt"
)

var (
	// ErrBadConfig is returned by New for an invalid Config.
	ErrBadConfig = errors.New("hub: bad config")
	// ErrDraining is returned by Ready while the hub drains for shutdown.
	ErrDraining = errors.New("hub: draining")
)

// WebSocket close codes the hub asks transports to use (RFC 6455 §7.4.1).
const (
	CloseGoingAway       = 1001
	CloseProtocolError   = 1002
	CloseInvalidPayload  = 1007
	ClosePolicyViolation = 1008
	CloseMessageTooBig   = 1009
	CloseInternalError   = 1011
	CloseServiceRestart  = 1012
)

// CloseError asks the transport to close the connection.
type CloseError struct {
	// Code is the WebSocket close code.
	Code int
	// Reason is the close reason sent to the client.
	Reason string
	// LeaveReason is the reason given to the room in peer-left.
	LeaveReason string
}

// Error implements error.
func (e *CloseError) Error() string { return fmt.Sprintf("close %d: %s", e.Code, e.Reason) }
