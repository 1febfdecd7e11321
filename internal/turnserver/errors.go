package turnserver

import "errors"

var (
	// ErrBadConfig reports an invalid Config.
	ErrBadConfig = errors.New("turnserver: bad config")
	// ErrBadUsername reports a username that is not "EXPIRY:USER".
	ErrBadUsername = errors.New("turnserver: bad TURN REST username")
	// ErrPeerDenied reports a relay destination or source outside the allowed addresses.
	ErrPeerDenied = errors.New("turnserver: peer address denied")
	// ErrQuota reports an allocation refused by the per-user quota or the overall cap.
	ErrQuota = errors.New("turnserver: allocation quota reached")
)
