// Package serverapi is a typed Go client for Switchboard's server API (/api/v1/ on any
// `switchboard serve` started with --api-keys), for an application's backend: list the rooms
// and their peers, remove a peer, close a room, send a server message to a room or one peer,
// and update a peer's metadata. The operations reach every node of a cluster whichever node
// is asked.
//
// Every call needs an access token with the admin grant, minted by `switchboard token --admin`
// or by the application's backend with any JWT library (docs/auth.md, docs/api.md).
//
//	api := serverapi.New("https://calls.example.com", adminToken, nil)
//	rooms, err := api.Rooms(ctx)
//
// A refusal by the server is an *Error carrying the HTTP status and the API's stable error
// code (errors.As); IsNotFound tells a room or peer that is not there. The package uses only
// the standard library and never imports Switchboard's server.
package serverapi
