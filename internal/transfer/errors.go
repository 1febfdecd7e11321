package transfer

import (
	"errors"
	"fmt"
)

// Errors.
var (
	// ErrProtocol means the other side sent a message out of place or malformed.
	ErrProtocol = errors.New("transfer: protocol violation")
	// ErrClosed means the channel (data channel or QUIC stream) closed before the transfer
	// finished.
	ErrClosed = errors.New("transfer: channel closed before the transfer finished")
	// ErrBadName is wrapped by CheckName's errors.
	ErrBadName = errors.New("transfer: bad file name")
)

// FileError is the failure of one file, as answered by the receiver. Code is one of the
// Code constants.
type FileError struct {
	Name    string
	Code    string
	Message string
}

func (e *FileError) Error() string {
	return fmt.Sprintf("transfer: %q: %s: %s", e.Name, e.Code, e.Message)
}
