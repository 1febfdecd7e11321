#!/bin/sh
# install-test-deps.sh installs what the browser, Socket.IO and real-NAT tests need: Debian's
# chromium at /usr/bin/chromium (internal/browsertest) and certutil from libnss3-tools (the
# https test makes the browser trust a test CA through an NSS database); the official socket.io-client from npm
# for the Socket.IO tests (internal/sioserver and the seed page in internal/browsertest; `npm ci`
# in internal/sioserver/nodetest, versions pinned by its package-lock.json; needs node and npm);
# jsonwebtoken for the Node example of docs/auth.md (docs/examples/mint-token); axe-core, the
# accessibility auditor the web-app tests inject into Chromium (`npm ci` in
# internal/browsertest/nodetest, pinned by its package-lock.json); the go.mod tools
# pebble and pebble-challtestsrv for the ACME tests; iproute2 + nftables for the real-NAT test (internal/nattest, which also needs root to
# create network namespaces); nginx, caddy and systemd-analyze for the deployment guide's tests
# (internal/deploytest runs its own nginx and caddy processes on loopback: the services the
# packages start are stopped and disabled when this script installed them). Idempotent: installs only what is missing. The apt packages need
# root (or sudo); ~48 s and ~480 MB on the first chromium install.
set -eu

repo=$(cd "$(dirname "$0")/.." && pwd)
nodetest=$repo/internal/sioserver/nodetest
if [ -f "$nodetest/node_modules/socket.io-client/package.json" ]; then
	echo "install-test-deps: socket.io-client present in $nodetest"
else
	if ! command -v npm >/dev/null 2>&1; then
		echo "install-test-deps: npm is missing: install Node.js (20 or later) with npm" >&2
		exit 1
	fi
	echo "install-test-deps: npm ci in $nodetest"
	(cd "$nodetest" && npm ci --no-audit --no-fund)
fi

# docs/auth.md's Node example mints tokens with jsonwebtoken (pinned by its package-lock.json).
mint=$repo/docs/examples/mint-token
if [ -f "$mint/node_modules/jsonwebtoken/package.json" ]; then
	echo "install-test-deps: jsonwebtoken present in $mint"
else
	echo "install-test-deps: npm ci in $mint"
	(cd "$mint" && npm ci --no-audit --no-fund)
fi

# The web app's accessibility tests (internal/browsertest/callui_test.go) inject axe-core
# (pinned by its package-lock.json) into Chromium.
axe=$repo/internal/browsertest/nodetest
if [ -f "$axe/node_modules/axe-core/axe.min.js" ]; then
	echo "install-test-deps: axe-core present in $axe"
else
	echo "install-test-deps: npm ci in $axe"
	(cd "$axe" && npm ci --no-audit --no-fund)
fi

# The ACME tests (internal/server, internal/certs) run Pebble, Let's Encrypt's test CA, and
# pebble-challtestsrv: go.mod tools (go get -tool), built into the Go build cache on first
# use. Build them now, so the tests do not (minutes with a cold cache on 2 cores).
if command -v go >/dev/null 2>&1; then
	(cd "$repo" && go tool -n pebble >/dev/null && go tool -n pebble-challtestsrv >/dev/null)
	echo "install-test-deps: pebble and pebble-challtestsrv built (go tool)"
else
	echo "install-test-deps: go is missing: the ACME tests need it to build pebble" >&2
	exit 1
fi

missing=""
[ -x /usr/bin/chromium ] || missing="$missing chromium"
command -v certutil >/dev/null 2>&1 || missing="$missing libnss3-tools"
command -v ip >/dev/null 2>&1 || missing="$missing iproute2"
command -v nft >/dev/null 2>&1 || missing="$missing nftables"
[ -x /usr/sbin/nginx ] || command -v nginx >/dev/null 2>&1 || missing="$missing nginx"
command -v caddy >/dev/null 2>&1 || missing="$missing caddy"
command -v systemd-analyze >/dev/null 2>&1 || missing="$missing systemd"

if [ -z "$missing" ]; then
	echo "install-test-deps: chromium ($(/usr/bin/chromium --version 2>/dev/null || echo unknown version)), certutil, ip, nft, nginx, caddy and systemd-analyze present"
	exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
	if command -v sudo >/dev/null 2>&1; then
		SUDO="sudo"
	else
		echo "install-test-deps: need root or sudo to install:$missing" >&2
		exit 1
	fi
fi

export DEBIAN_FRONTEND=noninteractive
echo "install-test-deps: installing$missing (apt-get update, apt-get install -y$missing)"
$SUDO apt-get update
# shellcheck disable=SC2086 # word splitting of the package list is intended
$SUDO apt-get install -y $missing
/usr/bin/chromium --version 2>/dev/null || true
# The nginx and caddy packages start a web server on port 80 where systemd runs; the tests
# start their own.
for svc in nginx caddy; do
	case " $missing " in
	*" $svc "*)
		if [ -d /run/systemd/system ]; then
			$SUDO systemctl disable --now "$svc" || true
		fi
		;;
	esac
done
