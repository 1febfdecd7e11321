// Package sioserver is the Socket.IO endpoint at /socket.io/: the subset of Engine.IO
// protocol v4 and Socket.IO protocol v5 that socket.io-client v4 speaks to a server, feeding
// the same hub.Session as the native endpoint.
//
// Engine.IO: the handshake (open packet with sid, upgrades, pingInterval, pingTimeout,
// maxPayload), HTTP long-polling (GET waits for packets, POST carries packets, both joined
// by the 0x1e record separator), WebSocket (one packet per message, on the native
// endpoint's event loops through wsserver.Adopt), the upgrade from polling (2probe, 3probe,
// the pending poll answered with a noop, 5), server pings answered by pongs, close.
//
// Socket.IO: CONNECT to the main namespace (others get CONNECT_ERROR), EVENT, ACK,
// DISCONNECT. Binary events are refused with an error (their attachments are dropped).
//
// Each socket is a hub.Session whose peer id is its socket.id, so the seed's code
// (socket.emit("offer", {target: other.id, ...})) works unchanged: a socket that has not
// joined a room is in the lobby (lobby.go: this node's, or the cluster's), where any socket
// id is a target, as on the seed's server; after a "join" event it is a peer of a room like
// any native peer. A socket whose connection was lost is kept for the resume grace and
// recovered as socket.io-client 4.6+ expects (recovery.go, takeover.go). When the hub
// needs access tokens there is no lobby: CONNECT carries the token in its auth payload and
// the socket is at once a peer of its token's room, or is refused with CONNECT_ERROR
// (auth.go). See docs/socketio.md.
package sioserver
