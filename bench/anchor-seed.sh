#!/usr/bin/env bash
# Starts the seed document's Socket.IO relay (the anchor Switchboard is measured
# against) on PORT, default 3000:
#
#   bench/anchor-seed.sh 3000 &
#   seed_pid=$!    # node's own pid once it listens: the script execs node
#
# The anchor lives read-only in ../shared/anchors/seed-socketio (relative to the
# repository root; override with SEED_SRC). It is copied to a cache directory
# (SEED_CACHE, default ${XDG_CACHE_HOME:-$HOME/.cache}/switchboard-bench/seed-socketio),
# where `npm ci` installs the socket.io version pinned in its package-lock.json;
# the copy is refreshed when the lock file or server.js changes. npm's output
# goes to stderr.
set -euo pipefail

port=${1:-${PORT:-3000}}
case $port in
'' | *[!0-9]*) echo "usage: $0 [PORT]" >&2; exit 2 ;;
esac

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
src=${SEED_SRC:-$repo/../shared/anchors/seed-socketio}
cache=${SEED_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/switchboard-bench/seed-socketio}

if [[ ! -f $src/server.js || ! -f $src/package-lock.json ]]; then
	echo "$0: no seed anchor at $src (set SEED_SRC)" >&2
	exit 1
fi

stamp() { cat "$1/package.json" "$1/package-lock.json" "$1/server.js" | cksum; }

mkdir -p "$cache"
if [[ ! -d $cache/node_modules || ! -f $cache/.stamp || "$(cat "$cache/.stamp")" != "$(stamp "$src")" ]]; then
	echo "$0: installing the seed anchor into $cache" >&2
	rm -rf "$cache/node_modules"
	cp "$src/package.json" "$src/package-lock.json" "$src/server.js" "$cache/"
	(cd "$cache" && npm ci --no-audit --no-fund >&2)
	stamp "$src" >"$cache/.stamp"
fi

cd "$cache"
PORT=$port exec node server.js
