// Package bench is the load tool behind `switchboard bench`.
//
// It drives a signaling server over real WebSockets, either Switchboard's native
// protocol (JSON frames on /ws, see docs/protocol.md) or Socket.IO v4 over the
// Engine.IO WebSocket transport (to measure the seed document's Node relay beside
// Switchboard), and prints figures a script can compare:
//
//   - signal: pairs of clients exchange offer, answer and ICE candidates, closed
//     loop or paced at a total relayed-message rate; reports relayed messages/s,
//     offer→answer round-trip percentiles, errors and, given the server's pid,
//     its CPU time per relayed message and its RSS.
//   - idle: holds many idle connections open (answering pings) and reports the
//     server's RSS growth per connection.
//   - connect: opens and closes connections as fast as a fixed number of workers
//     can and reports handshakes/s and the server's CPU time per handshake.
//   - setup: WebRTC pairs made with the Go SDK, timed from join to data channel
//     open, beside a bare Pion pair signaled in-process (the SDK's peer-to-peer
//     "connect" figure; the name connect was taken by the handshake mode).
//   - throughput: data channel MB/s between two SDK peers beside Pion's
//     flow-control example settings and loopback TCP, in the same run.
//
// Every mode ends with one machine-readable line starting with "RESULT".
//
// Connections are spread over several loopback source addresses so that a
// single source address does not run out of ephemeral ports. Server CPU time is
// read from /proc/PID/stat (utime+stime in USER_HZ clock ticks, 100 per second
// on Linux) and RSS from /proc/PID/status (VmRSS).
package bench
