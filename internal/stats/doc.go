// Package stats holds the server's counters and gauges as plain atomics, updated on hot paths
// without locks or allocation. The metrics package exposes them to Prometheus.
package stats
