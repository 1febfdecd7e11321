#!/usr/bin/env bash
# Measures Switchboard against the seed's Socket.IO relay in one run, under the
# same load on the same machine, and prints each RESULT line and the ratios
# ours/seed.
#
#   bench/signal-vs-seed.sh            # from the repository root or anywhere
#
# Steps, in this order, each against our server (native protocol, or Socket.IO
# on its /socket.io/ endpoint with OURS_PROTO=socketio) and the seed (socket.io):
#   idle     CONNS idle connections (fresh servers, so the RSS baseline is clean)
#   closed   signal, PAIRS pairs, closed loop
#   paced    signal, PAIRS pairs, RATE relayed msgs/s in total
#   connect  handshakes/s with 50 workers
#
# Our server runs with --rate-limit 100000 --rate-burst 100000: its default
# per-connection limit (200 msgs/s, burst 400) would throttle a closed-loop
# pair, which the seed server does not do.
#
# Environment (defaults): OURS_PROTO (native; socketio runs the same Socket.IO
# client against both servers) OURS_PORT (8080) SEED_PORT (3000) PAIRS (500)
# RATE (3000) CONNS (10000) DURATION (10s) WARMUP (2s) SETTLE (5s)
# OTHER_CPU_WARN (25: warn when processes other than the server and the load
# tool used more than this % of a core during a measured window)
# STEP_TIMEOUT (180, seconds per step) BIN (/tmp/switchboard) KEEP_LOGS (unset)
# BUILD (1; 0 runs an existing $BIN instead of building ./cmd/switchboard).
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"

OURS_PORT=${OURS_PORT:-8080}
SEED_PORT=${SEED_PORT:-3000}
PAIRS=${PAIRS:-500}
RATE=${RATE:-3000}
CONNS=${CONNS:-10000}
DURATION=${DURATION:-10s}
WARMUP=${WARMUP:-2s}
SETTLE=${SETTLE:-5s}
STEP_TIMEOUT=${STEP_TIMEOUT:-180}
OTHER_CPU_WARN=${OTHER_CPU_WARN:-25}
BIN=${BIN:-/tmp/switchboard}

OURS_PROTO=${OURS_PROTO:-native}
case $OURS_PROTO in
native) ours_url="ws://127.0.0.1:$OURS_PORT/ws" ;;
socketio) ours_url="ws://127.0.0.1:$OURS_PORT/socket.io/?EIO=4&transport=websocket" ;;
*) echo "OURS_PROTO must be native or socketio" >&2; exit 2 ;;
esac
seed_url="ws://127.0.0.1:$SEED_PORT/socket.io/?EIO=4&transport=websocket"

# shellcheck source=bench/lib.sh
. "$repo/bench/lib.sh"

if [[ ${BUILD:-1} != 0 ]]; then
	echo "building $BIN"
	go build -o "$BIN" ./cmd/switchboard
fi

"$BIN" serve --listen "127.0.0.1:$OURS_PORT" --turn=false --rate-limit 100000 --rate-burst 100000 --conns-per-client 1000000 --http-conns-per-client 1000000 --sio-sessions-per-client 1000000 --joins-per-client 1000000 --join-burst-per-client 1000000 >"$logdir/ours.log" 2>&1 &
ours_pid=$!
pids+=("$ours_pid")
bench/anchor-seed.sh "$SEED_PORT" >"$logdir/seed.log" 2>&1 &
seed_pid=$! # anchor-seed.sh execs node, so this is node's pid once it listens
pids+=("$seed_pid")
wait_until listening "$ours_pid" "switchboard serve" "$logdir/ours.log" port_open "$OURS_PORT"
wait_until listening "$seed_pid" "seed server" "$logdir/seed.log" port_open "$SEED_PORT"
echo "ours: switchboard serve pid $ours_pid on :$OURS_PORT, $OURS_PROTO protocol (--rate-limit 100000 --rate-burst 100000, raised from 200/400 so the closed loop is not throttled)"
echo "seed: node $(node --version) pid $seed_pid on :$SEED_PORT (socket.io $(node -p 'require(process.argv[1]).version' "${SEED_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/switchboard-bench/seed-socketio}/node_modules/socket.io/package.json" 2>/dev/null || echo '?'))"
echo "cores: $(nproc), load tool and servers share them"

declare -A result
disturbed=()

# field LINE KEY: the value of KEY=... in a RESULT line, or NA.
field() {
	local v
	v=$(sed -n "s/.* $2=\([^ ]*\).*/\1/p" <<<"$1")
	echo "${v:-NA}"
}

# step NAME SIDE ARGS...: runs one bench and keeps its RESULT line.
step() {
	local name=$1 side=$2
	shift 2
	local pid url proto out
	if [[ $side == ours ]]; then
		pid=$ours_pid url=$ours_url proto=$OURS_PROTO
	else
		pid=$seed_pid url=$seed_url proto=socketio
	fi
	kill -0 "$pid" 2>/dev/null || { echo "$side server (pid $pid) is gone; its log:" >&2; cat "$logdir/$side.log" >&2; exit 1; }
	echo
	echo "=== $name / $side: switchboard bench $* --proto $proto --url '$url' --pid $pid"
	out=$logdir/$name-$side.out
	if ! timeout -k 10 "$STEP_TIMEOUT" "$BIN" bench "$@" --proto "$proto" --url "$url" --pid "$pid" | tee "$out"; then
		echo "step $name/$side failed" >&2
	fi
	result[$name-$side]=$(grep '^RESULT ' "$out" | tail -n1 || true)
	local other
	other=$(field "${result[$name-$side]}" other_cpu_pct)
	if [[ $other =~ ^[0-9]+$ ]] && ((other > OTHER_CPU_WARN)); then
		disturbed+=("$name/$side (${other}% of a core)")
		echo "WARNING: other work on the machine used ${other}% of a core during $name/$side: its figures are disturbed" >&2
	fi
}

# idle first, on fresh servers, for a clean RSS baseline; connect last, as its
# churn (tens of thousands of short connections) is the likeliest to leave a
# server worse off for what follows (and within it the seed first, so that a
# server of ours left busy by the churn cannot slow the seed's run).
for side in ours seed; do step idle "$side" idle --conns "$CONNS" --settle "$SETTLE"; done
for side in ours seed; do step closed "$side" signal --pairs "$PAIRS" --duration "$DURATION" --warmup "$WARMUP"; done
for side in ours seed; do step paced "$side" signal --pairs "$PAIRS" --rate "$RATE" --duration "$DURATION" --warmup "$WARMUP"; done
for side in seed ours; do step connect "$side" connect --duration "$DURATION" --warmup "$WARMUP"; done

echo
echo "=== RESULT lines"
for name in idle closed paced connect; do
	for side in ours seed; do
		echo "${result[$name-$side]:-RESULT step=$name side=$side missing}"
	done
done

echo
echo "=== ours/seed"
printf '%-36s %14s %14s %10s  %s\n' metric ours seed ratio better
ratio() { # label step key better
	local o s
	o=$(field "${result[$2-ours]:-}" "$3")
	s=$(field "${result[$2-seed]:-}" "$3")
	awk -v l="$1" -v o="$o" -v s="$s" -v b="$4" 'BEGIN {
		r = "NA"
		if (o ~ /^[0-9.eE+-]+$/ && s ~ /^[0-9.eE+-]+$/ && s + 0 != 0) r = sprintf("%.3f", o / s)
		printf "%-36s %14s %14s %10s  %s\n", l, o, s, r, b
	}'
}
ratio "server CPU us per msg (closed loop)" closed cpu_us_per_msg lower
ratio "server CPU us per msg (paced)" paced cpu_us_per_msg lower
ratio "relayed msgs/s (closed loop)" closed msgs_per_s higher
ratio "offer-answer p99 ms (closed loop)" closed p99_ms lower
ratio "offer-answer p99 ms (paced)" paced p99_ms lower
ratio "server bytes per idle connection" idle bytes_per_conn lower
ratio "handshakes/s" connect handshakes_per_s higher
ratio "server CPU us per handshake" connect cpu_us_per_handshake lower
ratio "errors (closed loop)" closed errors lower
ratio "errors (connect)" connect errors lower
if ((${#disturbed[@]} > 0)); then
	echo
	echo "WARNING: other work on the machine disturbed: ${disturbed[*]}; rerun on a quiet machine"
fi
