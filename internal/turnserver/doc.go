// Package turnserver is the STUN/TURN server that `switchboard serve` runs beside the
// signaling server (on github.com/pion/turn), and the TURN REST credentials it hands out.
//
// Credentials follow the TURN REST convention that coturn implements as use-auth-secret: the
// username is "EXPIRY:USER" (EXPIRY in Unix seconds, USER a peer id) and the password is
// base64(HMAC-SHA1(secret, username)). Anyone holding the secret can mint them; the server
// keeps no state per user beyond its live allocations.
//
// The server is safe by default: it relays only to public unicast addresses. Loopback,
// unspecified, private, shared (CGNAT), link-local (and with it cloud metadata), multicast,
// broadcast, benchmarking, documentation and reserved ranges are refused, in IPv4 and in every
// IPv6 form that embeds an IPv4 address, on every path a client can make the relay send:
// CreatePermission, ChannelBind, Send indications, channel data and TCP Connect (RFC 6062).
// Config.AllowPeers opens ranges explicitly. Allocations are capped per user and overall.
//
// docs/turn.md is the operator's guide.
package turnserver
