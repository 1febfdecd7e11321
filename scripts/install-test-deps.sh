#!/bin/sh
# install-test-deps.sh installs what the browser and real-NAT tests need: Debian's chromium at
# /usr/bin/chromium (internal/browsertest), and iproute2 + nftables (internal/nattest, which
# also needs root to create network namespaces). Idempotent: installs only what is missing.
# Needs root (or sudo) and apt; ~48 s and ~480 MB on the first chromium install.
set -eu

missing=""
[ -x /usr/bin/chromium ] || missing="$missing chromium"
command -v ip >/dev/null 2>&1 || missing="$missing iproute2"
command -v nft >/dev/null 2>&1 || missing="$missing nftables"

if [ -z "$missing" ]; then
	echo "install-test-deps: chromium ($(/usr/bin/chromium --version 2>/dev/null || echo unknown version)), ip and nft present"
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
