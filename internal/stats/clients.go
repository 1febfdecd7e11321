package stats

import "sync/atomic"

// ClientStats counts what the per-client rate limits refused, the size of their tables, and
// the forwarding headers of trusted proxies that could not be used (docs/limits.md).
type ClientStats struct {
	// JoinsRefused counts new joins refused because their client was over
	// --joins-per-client (rate-limited); TURNCredentialsRefused welcomes and ice-servers
	// answers that carried STUN only because their client was over
	// --turn-credentials-per-client.
	JoinsRefused           atomic.Uint64
	TURNCredentialsRefused atomic.Uint64
	// JoinClients and TURNClients are the entries of the two per-client tables (gauges);
	// JoinEvictions and TURNEvictions count entries pushed out of a full table while not
	// idle.
	JoinClients   atomic.Int64
	TURNClients   atomic.Int64
	JoinEvictions atomic.Uint64
	TURNEvictions atomic.Uint64
	// ForwardedMalformed and ForwardedConflict count requests from a trusted proxy whose
	// forwarding headers were ignored (malformed; Forwarded and X-Forwarded-For naming
	// different clients): they counted for the proxy's own address.
	ForwardedMalformed atomic.Uint64
	ForwardedConflict  atomic.Uint64
}
