// Package metrics exposes the server's counters (package stats) as Prometheus metrics on a
// private registry, so several servers can run in one process (as tests do).
package metrics
