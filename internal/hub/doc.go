// Package hub is the transport-agnostic heart of the signaling server: it turns client frames
// into joins, leaves and relays, enforces the protocol's rules and limits (room names, metadata
// size, rate limit), stamps the sender on every relay, and answers with acks and error frames.
//
// Transports (the native WebSocket endpoint, the Socket.IO adapter) create one Session per
// connection with Hub.Connect, feed it frames, and deliver the events it produces through the
// bus.Sink they supply. Membership and routing are the bus's job (package bus), so the hub runs
// unchanged on one node or many.
//
// A connection that ends without a goodbye (Session.Drop, or Session.End with lost set) keeps
// its presence for Config.ResumeGrace: events for it are held, bounded, and a later join with
// the welcome's resume token takes the presence, its id and the held events over (resume.go).
// On a bus whose joins wait on the network (bus.SlowJoiner), sessions that allow it
// (Session.AsyncJoins) join on their own goroutine so the transport's loop goes on.
package hub
