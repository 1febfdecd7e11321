package transfer

// ReadAheadsRunning returns how many senders' read-ahead goroutines are running: 0 once
// every Send has returned.
func ReadAheadsRunning() int64 { return readAheads.Load() }
