// Package nattest holds the real-NAT test of the embedded TURN server: network namespaces
// with veth links and nftables (or iptables) masquerade put two peers behind separate NATs,
// with `switchboard serve` in a third "public" namespace. It has no non-test code.
//
// It needs root, `ip` (iproute2) and `nft` (nftables) or `iptables`; without them it skips
// loudly, except under CI=true where it fails. scripts/install-test-deps.sh installs them.
package nattest
