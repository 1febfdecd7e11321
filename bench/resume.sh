#!/usr/bin/env bash
# Time from a node's SIGTERM to every one of its peers resumed (issue 14's benchmark).
#
#   bench/resume.sh            # from the repository root or anywhere
#
# Two scenarios, each at every size in SIZES, each a fresh set of servers:
#   restart  one node with --resume-secret: the clients join, the node gets SIGTERM (close
#            1012) and starts again on the same port; the clients resume on it
#   cluster  NATS (bench/natsd) and nodes A and B sharing --resume-secret: the clients join
#            A, A gets SIGTERM; the clients resume on B
# `switchboard bench resume` prints, from the first lost connection, when each presence was
# back (p50, p99, max), how many were resumed/restored/started over, and every peer-left
# any client heard (should be 0).
#
# Environment (defaults): SIZES ("1000 10000") ROOM_SIZE (2) NATS_PORT (24322) A_PORT (28181)
# B_PORT (28182) BIN (/tmp/switchboard) NATSD (/tmp/switchboard-natsd) BUILD (1; 0 runs
# existing binaries) STEP_TIMEOUT (300, seconds per run) KEEP_LOGS (unset) SCENARIOS
# ("restart cluster").
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"

SIZES=${SIZES:-"1000 10000"}
ROOM_SIZE=${ROOM_SIZE:-2}
NATS_PORT=${NATS_PORT:-24322}
A_PORT=${A_PORT:-28181}
B_PORT=${B_PORT:-28182}
BIN=${BIN:-/tmp/switchboard}
NATSD=${NATSD:-/tmp/switchboard-natsd}
STEP_TIMEOUT=${STEP_TIMEOUT:-300}
SCENARIOS=${SCENARIOS:-"restart cluster"}

BENCH_NAME=switchboard-resume-bench
# shellcheck source=bench/lib.sh
. "$repo/bench/lib.sh"

for port in "$NATS_PORT" "$A_PORT" "$B_PORT"; do
	if port_open "$port"; then
		echo "port $port is already in use; pick others (NATS_PORT A_PORT B_PORT)" >&2
		exit 1
	fi
done

if [[ ${BUILD:-1} != 0 ]]; then
	echo "building $BIN and $NATSD"
	go build -o "$BIN" ./cmd/switchboard
	go build -o "$NATSD" ./bench/natsd
fi

secret=$(head -c 32 /dev/urandom | base64 | tr -d '\n=')
common=(--turn=false --resume-secret "$secret" --resume-grace 60s --rate-limit 100000 --rate-burst 100000
	--conns-per-client 1000000 --http-conns-per-client 1000000 --sio-sessions-per-client 1000000
	--joins-per-client 1000000 --join-burst-per-client 1000000)

# start_node NAME PORT [ARGS...]: starts a node in the background; its pid in $node_pid.
start_node() {
	local name=$1 port=$2
	shift 2
	"$BIN" serve --listen "127.0.0.1:$port" "${common[@]}" "$@" >>"$logdir/$name.log" 2>&1 &
	node_pid=$!
	pids+=("$node_pid")
	wait_until ready "$node_pid" "$name" "$logdir/$name.log" curl -fsS -o /dev/null "http://127.0.0.1:$port/readyz"
}

# stop_pid PID: SIGTERM, then wait for it to exit (15 s).
stop_pid() {
	local p=$1 i
	kill -TERM "$p" 2>/dev/null || return 0
	for ((i = 0; i < 150; i++)); do
		kill -0 "$p" 2>/dev/null || break
		sleep 0.1
	done
	kill -9 "$p" 2>/dev/null || true
	wait "$p" 2>/dev/null || true
}

# wait_ready OUT PID: waits for the load tool's READY line.
wait_ready() {
	local out=$1 pid=$2 i
	for ((i = 0; i < STEP_TIMEOUT * 10; i++)); do
		grep -q '^READY ' "$out" 2>/dev/null && return 0
		kill -0 "$pid" 2>/dev/null || { echo "the load tool exited before READY:" >&2; cat "$out" >&2; return 1; }
		sleep 0.1
	done
	echo "no READY within $STEP_TIMEOUT s" >&2
	return 1
}

declare -A result
run() {
	local scenario=$1 n=$2 out tool a b nats=()
	out=$logdir/$scenario-$n.out
	echo
	echo "=== $scenario, $n clients (rooms of $ROOM_SIZE)"
	if [[ $scenario == cluster ]]; then
		"$NATSD" --addr "127.0.0.1:$NATS_PORT" >"$logdir/nats-$n.log" 2>&1 &
		local np=$!
		pids+=("$np")
		wait_until listening "$np" "the NATS server" "$logdir/nats-$n.log" grep -q listening "$logdir/nats-$n.log"
		nats=(--nats "nats://127.0.0.1:$NATS_PORT")
	fi
	start_node "a-$scenario-$n" "$A_PORT" "${nats[@]}"
	a=$node_pid
	local url2=ws://127.0.0.1:$A_PORT/ws
	if [[ $scenario == cluster ]]; then
		start_node "b-$scenario-$n" "$B_PORT" "${nats[@]}"
		b=$node_pid
		url2=ws://127.0.0.1:$B_PORT/ws
	fi
	timeout -k 10 "$STEP_TIMEOUT" "$BIN" bench resume --url "ws://127.0.0.1:$A_PORT/ws" --url2 "$url2" \
		--conns "$n" --room-size "$ROOM_SIZE" --concurrency 100 --resume-timeout 60s >"$out" 2>"$out.err" &
	tool=$!
	wait_ready "$out" "$tool"
	echo "SIGTERM to node A (pid $a) at $(date +%T.%N | cut -c1-12)"
	kill -TERM "$a"
	if [[ $scenario == restart ]]; then
		wait "$a" 2>/dev/null || true
		start_node "a-$scenario-$n-again" "$A_PORT"
	fi
	wait "$tool" || echo "the load tool failed: $(tail -n 3 "$out.err")" >&2
	cat "$out"
	result[$scenario-$n]=$(grep '^RESULT ' "$out" | tail -n1 || true)
	# Stop this run's servers before the next.
	for p in "${pids[@]}"; do stop_pid "$p"; done
	pids=()
}

for scenario in $SCENARIOS; do
	for n in $SIZES; do
		run "$scenario" "$n"
	done
done

echo
echo "=== SIGTERM to back (p50 / p99 / max, ms, from the first lost connection)"
for scenario in $SCENARIOS; do
	for n in $SIZES; do
		r=${result[$scenario-$n]:-}
		printf '%-8s %6s clients: %s\n' "$scenario" "$n" "$(sed -n 's/.* resumed=\([^ ]*\) restored=\([^ ]*\) new=\([^ ]*\) failed=\([^ ]*\) peer_left=\([^ ]*\) back_p50_ms=\([^ ]*\) back_p99_ms=\([^ ]*\) back_max_ms=\([^ ]*\).*/resumed \1 restored \2 new \3 failed \4 peer-left \5 | p50 \6 p99 \7 max \8/p' <<<"$r")"
	done
done
