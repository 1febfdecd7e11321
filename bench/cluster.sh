#!/usr/bin/env bash
# Cross-node relay against same-node relay in one run: a NATS server (bench/natsd, the
# embedded nats-server), two `switchboard serve --nats` nodes A and B, and one plain
# single-node server for reference. Prints each RESULT line and the comparisons the cluster
# issue asks for: added p50 latency (cross - same) and throughput cross/single.
#
#   bench/cluster.sh            # from the repository root or anywhere
#
# Steps, each closed loop (throughput) and paced at RATE msgs/s (latency at a steady load):
#   single  every pair on the single-node server (in-memory bus)
#   same    every pair on node A (cluster node, relays stay in the process)
#   cross   callees on node A, callers on node B: every relay crosses NATS
#
# Environment (defaults): NATS_PORT (24222) SINGLE_PORT (28080) A_PORT (28081)
# B_PORT (28082) PAIRS (200) RATE (3000) DURATION (10s) WARMUP (2s)
# STEP_TIMEOUT (120, seconds per step) BIN (/tmp/switchboard) NATSD (/tmp/switchboard-natsd)
# KEEP_LOGS (unset) BUILD (1; 0 runs existing binaries).
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"

NATS_PORT=${NATS_PORT:-24222}
SINGLE_PORT=${SINGLE_PORT:-28080}
A_PORT=${A_PORT:-28081}
B_PORT=${B_PORT:-28082}
PAIRS=${PAIRS:-200}
RATE=${RATE:-3000}
DURATION=${DURATION:-10s}
WARMUP=${WARMUP:-2s}
STEP_TIMEOUT=${STEP_TIMEOUT:-120}
BIN=${BIN:-/tmp/switchboard}
NATSD=${NATSD:-/tmp/switchboard-natsd}

BENCH_NAME=switchboard-cluster-bench
# shellcheck source=bench/lib.sh
. "$repo/bench/lib.sh"

# Refuse ports something else listens on: its /readyz would pass for ours.
for port in "$NATS_PORT" "$SINGLE_PORT" "$A_PORT" "$B_PORT"; do
	if port_open "$port"; then
		echo "port $port is already in use; pick others (NATS_PORT SINGLE_PORT A_PORT B_PORT)" >&2
		exit 1
	fi
done

if [[ ${BUILD:-1} != 0 ]]; then
	echo "building $BIN and $NATSD"
	go build -o "$BIN" ./cmd/switchboard
	go build -o "$NATSD" ./bench/natsd
fi

"$NATSD" --addr "127.0.0.1:$NATS_PORT" >"$logdir/nats.log" 2>&1 &
nats_pid=$!
pids+=("$nats_pid")
wait_until listening "$nats_pid" "the NATS server" "$logdir/nats.log" grep -q listening "$logdir/nats.log"
grep listening "$logdir/nats.log"

common=(--turn=false --rate-limit 100000 --rate-burst 100000 --conns-per-client 1000000 --http-conns-per-client 1000000 --sio-sessions-per-client 1000000 --joins-per-client 1000000 --join-burst-per-client 1000000)
"$BIN" serve --listen "127.0.0.1:$SINGLE_PORT" "${common[@]}" >"$logdir/single.log" 2>&1 &
single_pid=$!
pids+=("$single_pid")
"$BIN" serve --listen "127.0.0.1:$A_PORT" --nats "nats://127.0.0.1:$NATS_PORT" "${common[@]}" >"$logdir/a.log" 2>&1 &
a_pid=$!
pids+=("$a_pid")
"$BIN" serve --listen "127.0.0.1:$B_PORT" --nats "nats://127.0.0.1:$NATS_PORT" "${common[@]}" >"$logdir/b.log" 2>&1 &
b_pid=$!
pids+=("$b_pid")
wait_until ready "$single_pid" single "$logdir/single.log" curl -fsS -o /dev/null "http://127.0.0.1:$SINGLE_PORT/readyz"
wait_until ready "$a_pid" "node A" "$logdir/a.log" curl -fsS -o /dev/null "http://127.0.0.1:$A_PORT/readyz"
wait_until ready "$b_pid" "node B" "$logdir/b.log" curl -fsS -o /dev/null "http://127.0.0.1:$B_PORT/readyz"
echo "single: pid $single_pid :$SINGLE_PORT; node A: pid $a_pid :$A_PORT; node B: pid $b_pid :$B_PORT (all --rate-limit 100000 --rate-burst 100000)"
echo "cores: $(nproc), NATS, both nodes, the reference server and the load tool share them"

single_url="ws://127.0.0.1:$SINGLE_PORT/ws"
a_url="ws://127.0.0.1:$A_PORT/ws"
b_url="ws://127.0.0.1:$B_PORT/ws"
declare -A result

field() {
	local v
	v=$(sed -n "s/.* $2=\([^ ]*\).*/\1/p" <<<"$1")
	echo "${v:-NA}"
}

# step NAME ARGS...: runs one bench and keeps its RESULT line.
step() {
	local name=$1 out p
	shift
	for p in "$single_pid" "$a_pid" "$b_pid"; do
		kill -0 "$p" 2>/dev/null || { echo "server pid $p is gone; logs in $logdir:" >&2; tail -n 20 "$logdir"/*.log >&2; exit 1; }
	done
	echo
	echo "=== $name: switchboard bench signal $*"
	out=$logdir/$name.out
	if ! timeout -k 10 "$STEP_TIMEOUT" "$BIN" bench signal "$@" | tee "$out"; then
		echo "step $name failed" >&2
	fi
	result[$name]=$(grep '^RESULT ' "$out" | tail -n1 || true)
}

load=(--pairs "$PAIRS" --duration "$DURATION" --warmup "$WARMUP")
for mode in closed paced; do
	extra=()
	[[ $mode == paced ]] && extra=(--rate "$RATE")
	step "$mode-single" --url "$single_url" "${load[@]}" "${extra[@]}"
	step "$mode-same" --url "$a_url" "${load[@]}" "${extra[@]}"
	step "$mode-cross" --url "$a_url" --url2 "$b_url" "${load[@]}" "${extra[@]}"
done

echo
echo "=== RESULT lines"
for mode in closed paced; do
	for where in single same cross; do
		echo "$mode-$where ${result[$mode-$where]:-RESULT missing}"
	done
done

echo
echo "=== cross-node against same-node and single-node"
for mode in closed paced; do
	awk -v m="$mode" \
		-v s50="$(field "${result[$mode-same]:-}" p50_ms)" -v c50="$(field "${result[$mode-cross]:-}" p50_ms)" \
		-v g50="$(field "${result[$mode-single]:-}" p50_ms)" \
		-v st="$(field "${result[$mode-single]:-}" msgs_per_s)" -v sm="$(field "${result[$mode-same]:-}" msgs_per_s)" \
		-v ct="$(field "${result[$mode-cross]:-}" msgs_per_s)" 'BEGIN {
		printf "%-6s offer-answer p50: single %s ms, same node %s ms, cross node %s ms: added %+.3f ms (target <= 1)\n", m, g50, s50, c50, c50 - s50
		if (st + 0 > 0) printf "%-6s msgs/s: single %s, same node %s, cross node %s: cross/single %.2f (target >= 0.5)\n", m, st, sm, ct, ct / st
	}'
done
echo "NATS: $(grep -o 'nats-server [^ ]*' "$logdir/nats.log")"
