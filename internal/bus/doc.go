// Package bus is the seam between the hub and wherever peers live: it keeps room membership and
// carries presence and relayed events to peers. Memory is the single-node default; a clustered
// implementation (NATS) implements the same Bus interface so the hub does not change.
package bus
