// Package api is the server API: HTTP+JSON under /api/v1/ for an application's backend to list
// rooms and their peers, remove a peer, close a room, send server messages and update a peer's
// metadata (docs/api.md, docs/openapi.yaml).
//
// Every request carries an access token with the admin grant (Authorization: Bearer). The
// handler knows neither the hub nor the token format: it is given a Backend (the room
// operations, which *hub.Hub provides over the bus, so they span a cluster) and a VerifyFunc.
// Without a VerifyFunc the API is off and every request gets 404: it is never open.
//
// Errors are JSON objects {"error":{"code":"...","message":"..."}}; codes are stable (the
// Code constants), messages are one line for a person. Request bodies are JSON objects of at
// most MaxBodyBytes with no unknown fields.
package api
