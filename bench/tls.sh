#!/usr/bin/env bash
# TLS against plain in one run, with the same binary on the same machine:
#
#  1. Handshakes/s: two servers, one plain, one with --tls-self-signed (HTTPS and WSS on its
#     --listen), and `switchboard bench connect` (TCP [+ TLS] + WebSocket + join/welcome +
#     close, CONCURRENCY workers) against each in turn, ROUNDS times, alternating which goes
#     first so a drift of the machine hits both. Every TLS connection is a full handshake
#     (the load tool keeps no session tickets): the worst case, a browser that reconnects may
#     resume. Prints per-round ratios TLS/plain and the ratio of the means.
#  2. Idle memory: a fresh server (plain, then TLS) per step, CONNS idle WebSockets held open
#     by `switchboard bench idle` over SOURCE_IPS loopback addresses (the per-client caps are
#     raised by flag), the server's RSS growth divided by the connections; MEM_ROUNDS rounds.
#     Target: <= 12 KiB per TLS WebSocket.
#
#   bench/tls.sh            # from the repository root or anywhere
#
# The load tool trusts the self-signed certificate with --insecure (benchmarks only; --ca FILE
# takes a CA or certificate file instead). The server's pid is given to the load tool, which
# reads its CPU time and RSS from /proc.
#
# Environment (defaults): PLAIN_PORT (18490) TLS_PORT (18491) ROUNDS (3) DURATION (10s)
# WARMUP (2s) CONCURRENCY (50) CONNS (10000) SOURCE_IPS (16) SETTLE (5s) MEM_ROUNDS (2)
# STEP_TIMEOUT (180, seconds per step) OTHER_CPU_WARN (25) BIN (/tmp/switchboard-tls-bench)
# BUILD (1; 0 runs an existing $BIN) SKIP_HANDSHAKES / SKIP_MEMORY (unset) KEEP_LOGS (unset).
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"

PLAIN_PORT=${PLAIN_PORT:-18490}
TLS_PORT=${TLS_PORT:-18491}
ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-10s}
WARMUP=${WARMUP:-2s}
CONCURRENCY=${CONCURRENCY:-50}
CONNS=${CONNS:-10000}
SOURCE_IPS=${SOURCE_IPS:-16}
SETTLE=${SETTLE:-5s}
MEM_ROUNDS=${MEM_ROUNDS:-2}
STEP_TIMEOUT=${STEP_TIMEOUT:-180}
OTHER_CPU_WARN=${OTHER_CPU_WARN:-25}
BIN=${BIN:-/tmp/switchboard-tls-bench}

BENCH_NAME=switchboard-tls-bench
# shellcheck source=bench/lib.sh
. "$repo/bench/lib.sh"

for port in "$PLAIN_PORT" "$TLS_PORT"; do
	if port_open "$port"; then
		echo "port $port is already in use; pick others (PLAIN_PORT TLS_PORT)" >&2
		exit 1
	fi
done

if [[ ${BUILD:-1} != 0 ]]; then
	echo "building $BIN"
	go build -o "$BIN" ./cmd/switchboard
fi

# Every per-client cap out of the way: all the load comes from a few loopback addresses.
caps=(--turn=false --conns-per-client 1000000 --http-conns-per-client 1000000
	--sio-sessions-per-client 1000000 --joins-per-client 1000000 --join-burst-per-client 1000000)

# start SIDE PORT: starts a server (SIDE plain or tls) and sets started_pid.
start() {
	local side=$1 port=$2
	local -a extra=()
	[[ $side == tls ]] && extra=(--tls-self-signed)
	"$BIN" serve --listen "127.0.0.1:$port" "${caps[@]}" "${extra[@]}" >>"$logdir/$side.log" 2>&1 &
	started_pid=$!
	pids+=("$started_pid")
	wait_until listening "$started_pid" "switchboard serve ($side)" "$logdir/$side.log" port_open "$port"
}

# stop PID: SIGTERM and wait (the server drains its connections first).
stop() {
	kill "$1" 2>/dev/null || true
	wait "$1" 2>/dev/null || true
}

# url SIDE PORT: the bench URL of a side.
url() {
	if [[ $1 == tls ]]; then echo "wss://127.0.0.1:$2/ws"; else echo "ws://127.0.0.1:$2/ws"; fi
}

# field LINE KEY: the value of KEY=... in a RESULT line, or NA.
field() {
	local v
	v=$(sed -n "s/.* $2=\([^ ]*\).*/\1/p" <<<"$1")
	echo "${v:-NA}"
}

declare -A result
disturbed=()

# note_other SIDE ROUND LINE: remembers a step disturbed by other work on the machine.
note_other() {
	local other
	other=$(field "$3" other_cpu_pct)
	if [[ $other =~ ^[0-9]+$ ]] && ((other > OTHER_CPU_WARN)); then
		disturbed+=("$2/$1 (${other}% of a core)")
		echo "WARNING: other work on the machine used ${other}% of a core during $2/$1: its figures are disturbed" >&2
	fi
}

echo "cores: $(nproc), the load tool and the servers share them"

if [[ -z ${SKIP_HANDSHAKES:-} ]]; then
	start plain "$PLAIN_PORT"
	plain_pid=$started_pid
	start tls "$TLS_PORT"
	tls_pid=$started_pid
	echo "plain: switchboard serve pid $plain_pid on :$PLAIN_PORT"
	echo "tls:   switchboard serve --tls-self-signed pid $tls_pid on :$TLS_PORT"
	echo "$ROUNDS rounds of $WARMUP + $DURATION each, $CONCURRENCY workers"

	# hs_step SIDE ROUND: one bench connect against SIDE.
	hs_step() {
		local side=$1 round=$2 pid port out
		local -a extra=()
		if [[ $side == tls ]]; then
			pid=$tls_pid port=$TLS_PORT
			extra=(--insecure)
		else
			pid=$plain_pid port=$PLAIN_PORT
		fi
		kill -0 "$pid" 2>/dev/null || { echo "$side server (pid $pid) is gone; its log:" >&2; cat "$logdir/$side.log" >&2; exit 1; }
		echo
		echo "=== round $round / $side: switchboard bench connect --url $(url "$side" "$port") --pid $pid --concurrency $CONCURRENCY ${extra[*]}"
		out=$logdir/hs-$side-$round.out
		if ! timeout -k 10 "$STEP_TIMEOUT" "$BIN" bench connect --url "$(url "$side" "$port")" --pid "$pid" \
			--concurrency "$CONCURRENCY" --duration "$DURATION" --warmup "$WARMUP" "${extra[@]}" | tee "$out"; then
			echo "round $round/$side failed" >&2
		fi
		result[hs-$side-$round]=$(grep '^RESULT ' "$out" | tail -n1 || true)
		note_other "$side" "handshakes round $round" "${result[hs-$side-$round]}"
	}
	for ((round = 1; round <= ROUNDS; round++)); do
		if ((round % 2)); then order=(plain tls); else order=(tls plain); fi
		for side in "${order[@]}"; do hs_step "$side" "$round"; done
	done
	stop "$plain_pid"
	stop "$tls_pid"
fi

if [[ -z ${SKIP_MEMORY:-} ]]; then
	# mem_step SIDE ROUND: a fresh server, CONNS idle connections, the RSS growth per connection.
	mem_step() {
		local side=$1 round=$2 port pid out
		local -a extra=()
		port=$PLAIN_PORT
		if [[ $side == tls ]]; then
			port=$TLS_PORT
			extra=(--insecure)
		fi
		start "$side" "$port"
		pid=$started_pid
		echo
		echo "=== memory round $round / $side: switchboard bench idle --url $(url "$side" "$port") --pid $pid --conns $CONNS --source-ips $SOURCE_IPS ${extra[*]}"
		out=$logdir/mem-$side-$round.out
		if ! timeout -k 10 "$STEP_TIMEOUT" "$BIN" bench idle --url "$(url "$side" "$port")" --pid "$pid" \
			--conns "$CONNS" --source-ips "$SOURCE_IPS" --settle "$SETTLE" "${extra[@]}" | tee "$out"; then
			echo "memory round $round/$side failed" >&2
		fi
		result[mem-$side-$round]=$(grep '^RESULT ' "$out" | tail -n1 || true)
		stop "$pid"
	}
	for ((round = 1; round <= MEM_ROUNDS; round++)); do
		if ((round % 2)); then order=(plain tls); else order=(tls plain); fi
		for side in "${order[@]}"; do mem_step "$side" "$round"; done
	done
fi

if [[ -z ${SKIP_HANDSHAKES:-} ]]; then
	echo
	echo "=== handshakes: TLS/plain"
	printf '%-6s %12s %12s %8s %14s %14s %8s %7s\n' round plain_hs/s tls_hs/s ratio plain_us/hs tls_us/hs ratio errors
	rows=""
	for ((round = 1; round <= ROUNDS; round++)); do
		p=${result[hs-plain-$round]:-} s=${result[hs-tls-$round]:-}
		echo "$p" >&2
		echo "$s" >&2
		rows+="$round $(field "$p" handshakes_per_s) $(field "$s" handshakes_per_s) $(field "$p" cpu_us_per_handshake) $(field "$s" cpu_us_per_handshake) $(field "$p" errors)+$(field "$s" errors)"$'\n'
	done
	awk '
	function num(x) { return x ~ /^[0-9.eE+-]+$/ }
	function r(a, b) { return (num(a) && num(b) && b + 0 != 0) ? sprintf("%.3f", a / b) : "NA" }
	NF >= 6 {
		printf "%-6s %12s %12s %8s %14s %14s %8s %7s\n", $1, $2, $3, r($3, $2), $4, $5, r($5, $4), $6
		if (num($2) && num($3)) { sp += $2; st += $3; n++ }
		if (num($4) && num($5)) { cp += $4; ct += $5; m++ }
	}
	END {
		if (n > 0) printf "%-6s %12.1f %12.1f %8s", "mean", sp / n, st / n, r(st, sp); else printf "%-6s %12s %12s %8s", "mean", "NA", "NA", "NA"
		if (m > 0) printf " %14.1f %14.1f %8s\n", cp / m, ct / m, r(ct, cp); else printf "\n"
		if (n > 0) printf "\nhandshakes/s over TLS / plain: %.3f\n", st / sp
	}' <<<"$rows"
fi

if [[ -z ${SKIP_MEMORY:-} ]]; then
	echo
	echo "=== idle memory per WebSocket ($CONNS connections)"
	printf '%-6s %12s %12s %14s %14s %8s\n' round plain_alive tls_alive plain_B/conn tls_B/conn ratio
	rows=""
	for ((round = 1; round <= MEM_ROUNDS; round++)); do
		p=${result[mem-plain-$round]:-} s=${result[mem-tls-$round]:-}
		echo "$p" >&2
		echo "$s" >&2
		rows+="$round $(field "$p" alive) $(field "$s" alive) $(field "$p" bytes_per_conn) $(field "$s" bytes_per_conn)"$'\n'
	done
	awk -v conns="$CONNS" '
	function num(x) { return x ~ /^[0-9.eE+-]+$/ }
	function r(a, b) { return (num(a) && num(b) && b + 0 != 0) ? sprintf("%.3f", a / b) : "NA" }
	NF >= 5 {
		printf "%-6s %12s %12s %14s %14s %8s\n", $1, $2, $3, $4, $5, r($5, $4)
		if (num($4) && num($5) && $2 == conns && $3 == conns) { sp += $4; st += $5; n++ }
	}
	END {
		if (n == 0) { print "\nno round held every connection on both sides"; exit }
		printf "%-6s %12s %12s %14.0f %14.0f %8s\n", "mean", "", "", sp / n, st / n, r(st, sp)
		verdict = "NOT met"
		if (st / n <= 12 * 1024) verdict = "met"
		printf "\nidle memory per TLS WebSocket: %.1f KiB (plain %.1f KiB; target <= 12 KiB): %s\n", st / n / 1024, sp / n / 1024, verdict
	}' <<<"$rows"
fi

if ((${#disturbed[@]} > 0)); then
	echo
	echo "WARNING: other work on the machine disturbed: ${disturbed[*]}; rerun on a quiet machine"
fi
