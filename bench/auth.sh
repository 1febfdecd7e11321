#!/usr/bin/env bash
# Measures the join rate with access tokens against without, in one run: two servers of the
# same binary on the same machine, one started with --api-keys (every join carries a token the
# server verifies: HS256 signature, claims, grant), one open, and `switchboard bench connect`
# (TCP + WebSocket + join/welcome + close, 50 workers) against each in turn, ROUNDS times,
# alternating which goes first so a drift of the machine hits both. Prints each RESULT line,
# the per-round ratios tokens/open and the ratio of the means (target >= 0.85).
#
#   bench/auth.sh            # from the repository root or anywhere
#
# The bench mints one token per worker before the run (a worker is one identity joining room
# after room, its token granting the prefix of its rooms), so the measured window holds the
# server's verification of every join and none of the load tool's signing.
#
# Environment (defaults): OPEN_PORT (18480) AUTH_PORT (18481) ROUNDS (3) DURATION (10s)
# WARMUP (2s) CONCURRENCY (50) STEP_TIMEOUT (120, seconds per step) OTHER_CPU_WARN (25)
# BIN (/tmp/switchboard-auth-bench) BUILD (1; 0 runs an existing $BIN) KEEP_LOGS (unset).
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"

OPEN_PORT=${OPEN_PORT:-18480}
AUTH_PORT=${AUTH_PORT:-18481}
ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-10s}
WARMUP=${WARMUP:-2s}
CONCURRENCY=${CONCURRENCY:-50}
STEP_TIMEOUT=${STEP_TIMEOUT:-120}
OTHER_CPU_WARN=${OTHER_CPU_WARN:-25}
BIN=${BIN:-/tmp/switchboard-auth-bench}

BENCH_NAME=switchboard-auth-bench
# shellcheck source=bench/lib.sh
. "$repo/bench/lib.sh"

if [[ ${BUILD:-1} != 0 ]]; then
	echo "building $BIN"
	go build -o "$BIN" ./cmd/switchboard
fi

key=$("$BIN" key new 2>/dev/null) # a throwaway key for this run
SWITCHBOARD_API_KEYS=$key "$BIN" serve --listen "127.0.0.1:$AUTH_PORT" --turn=false --conns-per-client 1000000 --http-conns-per-client 1000000 --joins-per-client 1000000 --join-burst-per-client 1000000 >"$logdir/auth.log" 2>&1 &
auth_pid=$!
pids+=("$auth_pid")
"$BIN" serve --listen "127.0.0.1:$OPEN_PORT" --turn=false --conns-per-client 1000000 --http-conns-per-client 1000000 --joins-per-client 1000000 --join-burst-per-client 1000000 >"$logdir/open.log" 2>&1 &
open_pid=$!
pids+=("$open_pid")
wait_until listening "$auth_pid" "switchboard serve (tokens)" "$logdir/auth.log" port_open "$AUTH_PORT"
wait_until listening "$open_pid" "switchboard serve (open)" "$logdir/open.log" port_open "$OPEN_PORT"
echo "tokens: switchboard serve --api-keys (one key) pid $auth_pid on :$AUTH_PORT"
echo "open:   switchboard serve pid $open_pid on :$OPEN_PORT"
echo "cores: $(nproc), load tool and servers share them; $ROUNDS rounds of $WARMUP + $DURATION each"

# field LINE KEY: the value of KEY=... in a RESULT line, or NA.
field() {
	local v
	v=$(sed -n "s/.* $2=\([^ ]*\).*/\1/p" <<<"$1")
	echo "${v:-NA}"
}

declare -A result
disturbed=()

# step SIDE ROUND: one bench connect against SIDE (auth or open), keeping its RESULT line.
step() {
	local side=$1 round=$2 pid port out
	local -a extra=()
	if [[ $side == auth ]]; then
		pid=$auth_pid port=$AUTH_PORT
		extra=(--api-key "$key")
	else
		pid=$open_pid port=$OPEN_PORT
	fi
	kill -0 "$pid" 2>/dev/null || { echo "$side server (pid $pid) is gone; its log:" >&2; cat "$logdir/$side.log" >&2; exit 1; }
	echo
	echo "=== round $round / $side: switchboard bench connect --url ws://127.0.0.1:$port/ws --pid $pid --concurrency $CONCURRENCY${extra:+ --api-key KEY}"
	out=$logdir/$side-$round.out
	if ! timeout -k 10 "$STEP_TIMEOUT" "$BIN" bench connect --url "ws://127.0.0.1:$port/ws" --pid "$pid" \
		--concurrency "$CONCURRENCY" --duration "$DURATION" --warmup "$WARMUP" "${extra[@]}" | tee "$out"; then
		echo "round $round/$side failed" >&2
	fi
	result[$side-$round]=$(grep '^RESULT ' "$out" | tail -n1 || true)
	local other
	other=$(field "${result[$side-$round]}" other_cpu_pct)
	if [[ $other =~ ^[0-9]+$ ]] && ((other > OTHER_CPU_WARN)); then
		disturbed+=("round $round/$side (${other}% of a core)")
		echo "WARNING: other work on the machine used ${other}% of a core during round $round/$side: its figures are disturbed" >&2
	fi
}

for ((round = 1; round <= ROUNDS; round++)); do
	if ((round % 2)); then order=(open auth); else order=(auth open); fi
	for side in "${order[@]}"; do step "$side" "$round"; done
done

echo
echo "=== RESULT lines"
for ((round = 1; round <= ROUNDS; round++)); do
	for side in open auth; do
		echo "${result[$side-$round]:-RESULT round=$round side=$side missing}"
	done
done

echo
echo "=== tokens/open"
printf '%-6s %14s %14s %8s %16s %16s %8s %7s\n' round open_hs/s tokens_hs/s ratio open_us/hs tokens_us/hs ratio errors
rows=""
for ((round = 1; round <= ROUNDS; round++)); do
	o=${result[open-$round]:-} a=${result[auth-$round]:-}
	rows+="$round $(field "$o" handshakes_per_s) $(field "$a" handshakes_per_s) $(field "$o" cpu_us_per_handshake) $(field "$a" cpu_us_per_handshake) $(field "$o" errors)+$(field "$a" errors)"$'\n'
done
awk '
function num(x) { return x ~ /^[0-9.eE+-]+$/ }
function r(a, b) { return (num(a) && num(b) && b + 0 != 0) ? sprintf("%.3f", a / b) : "NA" }
NF >= 6 {
	printf "%-6s %14s %14s %8s %16s %16s %8s %7s\n", $1, $2, $3, r($3, $2), $4, $5, r($5, $4), $6
	if (num($2) && num($3)) { so += $2; sa += $3; n++ }
	if (num($4) && num($5)) { co += $4; ca += $5; m++ }
}
END {
	if (n > 0) printf "%-6s %14.1f %14.1f %8s", "mean", so / n, sa / n, r(sa, so); else printf "%-6s %14s %14s %8s", "mean", "NA", "NA", "NA"
	if (m > 0) printf " %16.1f %16.1f %8s\n", co / m, ca / m, r(ca, co); else printf "\n"
	if (n > 0) {
		ratio = sa / so
		verdict = "NOT met"
		if (ratio >= 0.85) verdict = "met"
		printf "\njoin rate with tokens / without: %.3f (target >= 0.85): %s\n", ratio, verdict
	}
}' <<<"$rows"
if ((${#disturbed[@]} > 0)); then
	echo
	echo "WARNING: other work on the machine disturbed: ${disturbed[*]}; rerun on a quiet machine"
fi
