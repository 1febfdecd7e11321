#!/bin/sh
# install-test-deps.sh installs what the browser tests (internal/browsertest) need: Debian's
# chromium at /usr/bin/chromium. Idempotent: does nothing when chromium is already there.
# Needs root (or sudo) and apt; ~48 s and ~480 MB on first run.
set -eu

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
