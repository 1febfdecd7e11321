// Package server assembles `switchboard serve`: the hub, the native WebSocket endpoint, health,
// readiness and metrics handlers on one HTTP listener, and the graceful shutdown that ties
// them together.
package server
