// Package resume mints and verifies the signed resume tokens of the native protocol
// (docs/design/issue-14.md §2): HS256 JWTs on golang-jwt/jwt v5 with the audience
// "switchboard-resume", a kid naming the secret that signed them, and claims that let any node
// sharing the secret re-create the presence (room, peer id, name, meta, identity, TURN grant,
// issuing node). A token is good once: a Ledger records the ids (jti) of spent tokens until
// they expire. Several secrets may be configured for rotation: the first signs, any verifies.
package resume
