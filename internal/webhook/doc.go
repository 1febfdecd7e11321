// Package webhook tells applications what happens in their rooms: it hears the bus's room
// events (room-started, room-finished, peer-joined, peer-left) as a bus.Observer and POSTs each
// one, as signed JSON, to every configured URL (docs/webhooks.md).
//
// RoomEvent only enqueues: it runs under the bus's locks, on the join and leave paths, so it
// never blocks, never allocates more than one small item and never does I/O. Each URL has one
// delivery goroutine owned by the Sender and a bounded queue: events go out one at a time, in
// the order they happened, and a failed POST (network error, timeout, 408, 429, 5xx) is
// retried with exponential backoff and jitter until it succeeds, the event is pushed out of the
// full queue (the oldest goes first, counted in stats) or the Sender stops. Any other status
// below 200 or from 300 up is a refusal: the event is not retried.
//
// Signatures are HMAC-SHA256 of the exact body with an API key's secret, in hex; the body
// carries the time of the attempt (sentAt) so receivers can refuse replays. No secret, nor a
// URL's credentials, is ever written to a log, a metric or an error.
package webhook
