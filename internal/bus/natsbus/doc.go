// Package natsbus is the clustered bus.Bus: several `switchboard serve` nodes share rooms over
// core NATS (no JetStream).
//
// Every node keeps a replica of every room's membership (peer, node, join sequence), fed by
// presence events on one subject. Each room has a coordinator, the live node that wins a
// rendezvous hash of the room name; joins are requests to it, so it alone orders a room's joins
// and enforces the room limit. Leaves are published by the peer's own node. Relays go from the
// sender's node straight to the target's node inbox over the one NATS connection, so the order
// per sender→target pair holds. Nodes publish heartbeats; a node silent for NodeTimeout has its
// peers removed (peer-left "timeout") by every other node, and a draining node says goodbye.
//
// The server API (bus.Admin) reads the replica and acts on a peer through the peer's own node,
// over that node's inbox. A joining peer replaces the room's older presence of its identity
// (its node kicks it). Room events (Config.Observer) are reported by each room's coordinator
// only, so that the cluster reports each once.
//
// Files: natsbus.go (config, connection, lifecycle), join.go (coordinators and joins),
// replica.go (leaves, the cluster subject, syncs, heartbeats), relay.go (the node inbox:
// relays), admin.go (bus.Admin), observe.go (room events), wire.go (messages).
//
// docs/cluster.md describes what this guarantees and what it does not.
package natsbus
