#!/usr/bin/env bash
# A long run under churn, cuts and restarts (issue 14's soak): NATS (bench/natsd) and two
# cluster nodes A and B sharing --resume-secret; `switchboard bench soak` keeps CONNS clients
# messaging each other in rooms, cutting their own connections and churning at random; every
# RESTART_EVERY one node (A, then B, ...) gets SIGTERM and starts again, its clients resuming
# on the other. Every minute it prints each node's RSS, goroutines and open descriptors (from
# /metrics) and the load tool's counts; at the end the first and last samples side by side
# (flat is the goal) and the tool's RESULT: lost and dup must be 0.
#
#   bench/soak.sh                   # 30 minutes
#   DURATION=5m bench/soak.sh
#
# Environment (defaults): DURATION (30m) CONNS (400) ROOM_SIZE (4) INTERVAL (500ms)
# CUT_EVERY (2m) CHURN_EVERY (5m) RESTART_EVERY (5m; 0: none) SAMPLE_EVERY (60, seconds)
# NATS_PORT (24422) A_PORT (28281) B_PORT (28282) BIN (/tmp/switchboard)
# NATSD (/tmp/switchboard-natsd) BUILD (1) KEEP_LOGS (unset).
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"

DURATION=${DURATION:-30m}
CONNS=${CONNS:-400}
ROOM_SIZE=${ROOM_SIZE:-4}
INTERVAL=${INTERVAL:-500ms}
CUT_EVERY=${CUT_EVERY:-2m}
CHURN_EVERY=${CHURN_EVERY:-5m}
RESTART_EVERY=${RESTART_EVERY:-5m}
SAMPLE_EVERY=${SAMPLE_EVERY:-60}
NATS_PORT=${NATS_PORT:-24422}
A_PORT=${A_PORT:-28281}
B_PORT=${B_PORT:-28282}
BIN=${BIN:-/tmp/switchboard}
NATSD=${NATSD:-/tmp/switchboard-natsd}

BENCH_NAME=switchboard-soak
# shellcheck source=bench/lib.sh
. "$repo/bench/lib.sh"

secs() { # secs 5m → 300
	local d=$1
	case $d in
	*h) echo $((${d%h} * 3600)) ;;
	*m) echo $((${d%m} * 60)) ;;
	*s) echo "${d%s}" ;;
	*) echo "$d" ;;
	esac
}
total=$(secs "$DURATION")
restart_every=$(secs "$RESTART_EVERY")

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

"$NATSD" --addr "127.0.0.1:$NATS_PORT" >"$logdir/nats.log" 2>&1 &
nats_pid=$!
pids+=("$nats_pid")
wait_until listening "$nats_pid" "the NATS server" "$logdir/nats.log" grep -q listening "$logdir/nats.log"

secret=$(head -c 32 /dev/urandom | base64 | tr -d '\n=')
common=(--turn=false --nats "nats://127.0.0.1:$NATS_PORT" --resume-secret "$secret" --conns-per-client 100000
	--http-conns-per-client 100000 --sio-sessions-per-client 100000 --joins-per-client 100000 --join-burst-per-client 100000)
declare -A node_pid
start_node() { # start_node NAME PORT
	"$BIN" serve --listen "127.0.0.1:$2" "${common[@]}" >>"$logdir/$1.log" 2>&1 &
	node_pid[$1]=$!
	pids+=("$!")
	wait_until ready "$!" "node $1" "$logdir/$1.log" curl -fsS -o /dev/null "http://127.0.0.1:$2/readyz"
}
start_node a "$A_PORT"
start_node b "$B_PORT"

"$BIN" bench soak --url "ws://127.0.0.1:$A_PORT/ws" --url "ws://127.0.0.1:$B_PORT/ws" --conns "$CONNS" \
	--room-size "$ROOM_SIZE" --interval "$INTERVAL" --cut-every "$CUT_EVERY" --churn-every "$CHURN_EVERY" \
	--duration "$DURATION" --report "${SAMPLE_EVERY}s" >"$logdir/soak.out" 2>"$logdir/soak.err" &
tool=$!
pids+=("$tool")

metric() { # metric PORT NAME
	curl -fsS "http://127.0.0.1:$1/metrics" 2>/dev/null | awk -v n="$2" '$1 == n { printf "%.0f", $2 }'
}
sample() { # one line: each node's RSS MiB, goroutines, descriptors
	local name port line=""
	for name in a b; do
		[[ $name == a ]] && port=$A_PORT || port=$B_PORT
		line+=$(printf '%s: rss %s MiB goroutines %s fds %s   ' "$name" \
			"$(awk -v b="$(metric "$port" process_resident_memory_bytes)" 'BEGIN { if (b == "") print "-"; else printf "%.1f", b / 1048576 }')" \
			"$(metric "$port" go_goroutines)" "$(metric "$port" process_open_fds)")
	done
	echo "$line"
}

start=$(date +%s)
next_sample=$((start + 10))
next_restart=$((start + restart_every))
which=a
first="" last=""
while kill -0 "$tool" 2>/dev/null; do
	now=$(date +%s)
	if ((now >= next_sample)); then
		last="$(sample)"
		[[ -z $first ]] && first=$last
		printf '%5ds  %s| %s\n' $((now - start)) "$last" "$(tail -n1 "$logdir/soak.out" 2>/dev/null | cut -c8-)"
		next_sample=$((now + SAMPLE_EVERY))
	fi
	if ((restart_every > 0 && now >= next_restart && now < start + total - 60)); then
		[[ $which == a ]] && port=$A_PORT || port=$B_PORT
		echo "restart node $which (SIGTERM pid ${node_pid[$which]})"
		kill -TERM "${node_pid[$which]}"
		wait "${node_pid[$which]}" 2>/dev/null || true
		start_node "$which" "$port"
		[[ $which == a ]] && which=b || which=a
		next_restart=$((now + restart_every))
	fi
	if ((now > start + total + 120)); then
		echo "the load tool did not end 2 minutes after DURATION" >&2
		break
	fi
	sleep 1
done
wait "$tool" 2>/dev/null || echo "the load tool failed: $(tail -n 3 "$logdir/soak.err")" >&2
echo
echo "first sample: $first"
echo "last sample:  $(sample)"
grep '^RESULT ' "$logdir/soak.out" || { echo "no RESULT; tool stderr:" >&2; tail "$logdir/soak.err" >&2; exit 1; }
