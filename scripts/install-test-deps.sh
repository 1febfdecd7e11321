#!/bin/sh
# install-test-deps.sh installs what the browser tests (internal/browsertest) need: Debian's
# chromium at /usr/bin/chromium; and, for the Socket.IO tests (internal/sioserver and the seed
# page in internal/browsertest), the official socket.io-client from npm (`npm ci` in
# internal/sioserver/nodetest, versions pinned by its package-lock.json; needs node and npm).
# Idempotent: does nothing for what is already there. Chromium needs root (or sudo) and apt;
# ~48 s and ~480 MB on first run.
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

if [ -x /usr/bin/chromium ]; then
	echo "install-test-deps: /usr/bin/chromium present ($(/usr/bin/chromium --version 2>/dev/null || echo unknown version))"
	exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
	if command -v sudo >/dev/null 2>&1; then
		SUDO="sudo"
	else
		echo "install-test-deps: need root or sudo to install chromium" >&2
		exit 1
	fi
fi

export DEBIAN_FRONTEND=noninteractive
echo "install-test-deps: installing chromium (apt-get update, apt-get install -y chromium)"
$SUDO apt-get update
$SUDO apt-get install -y chromium
/usr/bin/chromium --version 2>/dev/null || true
