package webhook

import "errors"

// ErrBadConfig is returned (wrapped) by New for an invalid Config.
var ErrBadConfig = errors.New("webhook: bad config")
