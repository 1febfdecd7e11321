// Package natsbus is the clustered bus.Bus: several `switchboard serve` nodes share rooms over
// core NATS, with JetStream KV only for the shared resume secret and spent-token ledger.
//
// Every node keeps a replica of every room's membership (peer, node, join sequence), fed by
// presence events on one subject. Each room has a coordinator, the live node that wins a
// rendezvous hash of the room name; joins are requests to it, so it alone orders a room's joins
// and enforces the room limit. Leaves are published by the peer's own node. Relays go from the
// sender's node straight to the target's node inbox over the one NATS connection, so the order
// per sender→target pair holds. Nodes publish heartbeats.
//
// Calls never drop (issue 14): a node that drains for restart (Leave with bus.ReasonRestart)
// or misses its heartbeats has its members orphaned, not removed: they stay in every replica
// for Config.Grace, relays to them are held by the sender's node, and a Resumed join on
// another node re-homes them in place, after TakeOver asked their node (request/reply) for
// the events their client had not read. Orphans that do not come back are reported peer-left
// by the room's coordinator when the grace ends.
//
// The server API (bus.Admin) reads the replica and acts on a peer through the peer's own node,
// over that node's inbox. A joining peer replaces the room's older presence of its identity
// (its node kicks it). Room events (Config.Observer) are reported by each room's coordinator
// only, so that the cluster reports each once. Socket.IO lobby sockets (in no room) are
// registered cluster-wide and reachable by id from any node.
//
// Files: natsbus.go (config, connection, lifecycle), join.go (coordinators and joins),
// replica.go (leaves, the cluster subject, syncs, heartbeats), relay.go (the node inbox:
// relays), orphan.go (orphans and their grace), hold.go (relays held for orphans), rehome.go
// (Resumed joins), handover.go (TakeOver and its encoding), kv.go (JetStream KV: resume
// secret, ledger), lobby.go (the Socket.IO lobby), admin.go (bus.Admin), observe.go (room
// events), wire.go (messages).
//
// docs/cluster.md describes what this guarantees and what it does not.
package natsbus
