#!/usr/bin/env bash
# Runs the hostile clients of issue 12 (items 1-8) against one `switchboard serve` on loopback,
# one attack after the other, with a canary pair of legitimate peers relaying a message every
# 100 ms throughout, and prints per attack: canary messages lost, canary p50/p99, the server's
# peak RSS and descriptors, whether a newcomer got in, and what the attack cost the server
# against what the attacker spent in sockets (docs/benchmarks.md, "Hostile clients").
#
#   bench/hostile.sh                      # all eight at the issue's sizes
#   ATTACKS="1 5" SCALE=0.1 bench/hostile.sh
#   SPREAD=1 bench/hostile.sh             # each attacker spread over enough addresses to stay
#                                         # under the server's per-client caps
#
# The attack tool is bench/hostile (its own program, never linked into switchboard). Source
# addresses from 127.0.0.0/8 stand for clients: the attacker 127.1.0.1 on, the canary
# 127.0.0.2 and .3, the newcomer 127.0.0.(200+N), the /healthz probe 127.0.0.99.
#
# The server runs with its defaults (per-client caps included: refusing these attacks is
# their job), --memory-budget MEMORY_BUDGET when this build has the flag, and the descriptor
# limit of this shell (raised to the hard limit).
#
# Environment (defaults): ATTACKS ("1 2 3 4 5 6 7 8") SCALE (1) SPREAD (0) PORT (18590)
# TURN_PORT (18591) MEMORY_BUDGET (1GiB; empty: the server's own default) BASELINE (5, seconds
# of canary before the first attack) COOLDOWN (30, seconds at most waiting for the server to
# let go of an attack's descriptors) STEP_TIMEOUT (240, seconds per attack)
# BIN (/tmp/switchboard-hostile-server) TOOL (/tmp/switchboard-hostile) BUILD (1; 0 runs
# existing binaries) KEEP_LOGS (unset).
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"

ATTACKS=${ATTACKS:-1 2 3 4 5 6 7 8}
SCALE=${SCALE:-1}
SPREAD=${SPREAD:-0}
PORT=${PORT:-18590}
TURN_PORT=${TURN_PORT:-18591}
MEMORY_BUDGET=${MEMORY_BUDGET-1GiB}
BASELINE=${BASELINE:-5}
COOLDOWN=${COOLDOWN:-30}
STEP_TIMEOUT=${STEP_TIMEOUT:-240}
BIN=${BIN:-/tmp/switchboard-hostile-server}
TOOL=${TOOL:-/tmp/switchboard-hostile}

BENCH_NAME=switchboard-hostile-bench
# shellcheck source=bench/lib.sh
. "$repo/bench/lib.sh"

for port in "$PORT" "$TURN_PORT"; do
	if port_open "$port"; then
		echo "port $port is already in use; pick others (PORT TURN_PORT)" >&2
		exit 1
	fi
done

if [[ ${BUILD:-1} != 0 ]]; then
	echo "building $BIN and $TOOL"
	go build -o "$BIN" ./cmd/switchboard
	go build -o "$TOOL" ./bench/hostile
fi

serve=(serve --listen "127.0.0.1:$PORT" --turn-listen "127.0.0.1:$TURN_PORT")
if "$BIN" serve --help 2>&1 | grep -q -- '--memory-budget'; then
	if [[ -n $MEMORY_BUDGET ]]; then
		serve+=(--memory-budget "$MEMORY_BUDGET")
	fi
else
	echo "this build has no --memory-budget: the server runs without one"
fi
"$BIN" "${serve[@]}" >"$logdir/server.log" 2>&1 &
server_pid=$!
pids+=("$server_pid")
wait_until ready "$server_pid" "switchboard serve" "$logdir/server.log" curl -fsS -o /dev/null "http://127.0.0.1:$PORT/readyz"
echo "server: $BIN ${serve[*]} (pid $server_pid, descriptor limit $(ulimit -n))"

# The budget the server works to, as it reports it (switchboard_memory_budget_bytes), if it does.
budget=$(curl -fsS "http://127.0.0.1:$PORT/metrics" | awk '$1 == "switchboard_memory_budget_bytes" { printf "%d", $2 }')
echo "memory budget: ${budget:-n/a}${budget:+ bytes}"

"$TOOL" sample --pid "$server_pid" --out "$logdir/samples.log" 2>"$logdir/sample.err" &
sample_pid=$!
pids+=("$sample_pid")
"$TOOL" canary --url "ws://127.0.0.1:$PORT/ws" --out "$logdir/canary.log" >"$logdir/canary.out" 2>&1 &
canary_pid=$!
pids+=("$canary_pid")
wait_until connected "$canary_pid" "the canary" "$logdir/canary.out" grep -q connected "$logdir/canary.log"

fds() { find "/proc/$server_pid/fd" -mindepth 1 -maxdepth 1 2>/dev/null | wc -l; }
results=$logdir/results.txt
t0=$(date +%s%3N)
sleep "$BASELINE"
echo "RESULT attack=0 name=idle t0=$t0 t1=$(date +%s%3N)" >>"$results"
base_fds=$(fds)
echo "idle: $base_fds descriptors; cores: $(nproc), the server, the canary and the attacker share them"

spread=()
[[ $SPREAD != 0 ]] && spread=(--addrs 0)
for n in $ATTACKS; do
	kill -0 "$server_pid" 2>/dev/null || { echo "the server is gone; its log:" >&2; tail -n 30 "$logdir/server.log" >&2; break; }
	echo
	echo "=== attack $n"
	out=$logdir/attack-$n.out
	if ! timeout -k 10 "$STEP_TIMEOUT" "$TOOL" attack "$n" --server "http://127.0.0.1:$PORT" --turn "127.0.0.1:$TURN_PORT" \
		--scale "$SCALE" --newcomer-addr "127.0.0.$((200 + n))" "${spread[@]}" | tee "$out"; then
		echo "attack $n failed" >&2
	fi
	grep '^RESULT ' "$out" >>"$results" || true
	# Let the server let go of what the attack left (closed sockets, expiring sessions).
	for ((i = 0; i < COOLDOWN * 2; i++)); do
		(($(fds) <= base_fds + 16)) && ((i >= 4)) && break
		sleep 0.5
	done
	echo "cooldown: $(fds) descriptors after $((i / 2)) s"
done

kill -TERM "$canary_pid" 2>/dev/null || true
wait "$canary_pid" 2>/dev/null || true
cat "$logdir/canary.out"
kill -TERM "$sample_pid" 2>/dev/null || true
wait "$sample_pid" 2>/dev/null || true
if kill -0 "$server_pid" 2>/dev/null; then
	echo "server: up at the end, RSS high-water mark $(awk '/^VmHWM/ { print $2, $3 }' "/proc/$server_pid/status")"
else
	echo "server: NOT running at the end"
fi
echo "server log: $(wc -l <"$logdir/server.log") lines, $(grep -c 'level=ERROR' "$logdir/server.log" || true) errors"

echo
echo "=== hostile clients: SCALE=$SCALE SPREAD=$SPREAD"
"$TOOL" report --canary "$logdir/canary.log" --samples "$logdir/samples.log" --results "$results" --budget "${budget:-0}"
