// Package deploytest runs what docs/deploy.md tells a user to run, so the page cannot drift
// from the code: the nginx and Caddy configurations and the serve commands cut out of it (between
// <!-- deploytest:NAME --> markers), started for real on loopback in front of real servers
// (WebSocket signaling, Socket.IO long polling and its upgrade with the official client, the
// client address the server sees, a cluster over NATS behind a load balancer); the systemd unit
// (systemd-analyze) and the example configuration in deploy/. Missing tools (nginx, caddy, node,
// systemd-analyze) skip loudly, and fail under CI=true (scripts/install-test-deps.sh installs
// them). It holds tests only.
package deploytest
