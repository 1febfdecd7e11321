// Package auth is Switchboard's access control: API keys (KEY_ID:SECRET pairs, several at
// once so a secret can be rotated), and access tokens — JWTs signed HS256 with a key's secret,
// the key named by the "kid" header — that grant a user one room or a prefix of rooms, a
// display name and metadata, TURN credentials and the server API. docs/auth.md documents every
// claim. JWT parsing and signing is golang-jwt/jwt v5; nothing here is hand-written
// cryptography.
//
// The hub does not import this package: the server hands the hub a function built on
// Verifier.Verify (the hub's Authorize seam).
package auth
