// Package hub is the transport-agnostic heart of the signaling server: it turns client frames
// into joins, leaves and relays, enforces the protocol's rules and limits (room names, metadata
// size, rate limit), stamps the sender on every relay, and answers with acks and error frames.
//
// Transports (the native WebSocket endpoint, the Socket.IO adapter) create one Session per
// connection with Hub.Connect, feed it frames, and deliver the events it produces through the
// bus.Sink they supply. Membership and routing are the bus's job (package bus), so the hub runs
// unchanged on one node or many.
package hub
