#!/usr/bin/env bash
# Relay throughput and server CPU per message with sequence numbers and the outbox (issue 14)
# against the commit before them, same run: `switchboard bench signal` (closed loop, PAIRS
# pairs relaying offer/answer/candidates) against each server in turn, RUNS times each,
# alternating, each on a fresh server. Prints every RESULT line, the medians and the ratios
# (after/before throughput: goal >= 0.9; CPU per message: lower is better).
#
#   bench/seq.sh                      # BEFORE=3089dc0 (main before issue 14)
#
# Environment (defaults): BEFORE (3089dc0) RUNS (3) PAIRS (200) DURATION (10s) WARMUP (2s)
# PORT (28380) KEEP_LOGS (unset).
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"
BEFORE=${BEFORE:-3089dc0}
RUNS=${RUNS:-3}
PAIRS=${PAIRS:-200}
DURATION=${DURATION:-10s}
WARMUP=${WARMUP:-2s}
PORT=${PORT:-28380}

BENCH_NAME=switchboard-seq-bench
# shellcheck source=bench/lib.sh
. "$repo/bench/lib.sh"

if port_open "$PORT"; then
	echo "port $PORT is already in use; pick another (PORT)" >&2
	exit 1
fi
echo "building the server at $BEFORE and at the working tree"
git worktree add -q --detach "$logdir/before-src" "$BEFORE"
(cd "$logdir/before-src" && go build -o "$logdir/before" ./cmd/switchboard)
git worktree remove --force "$logdir/before-src"
go build -o "$logdir/after" ./cmd/switchboard

flags=(--turn=false --rate-limit 100000 --rate-burst 100000 --conns-per-client 1000000
	--http-conns-per-client 1000000 --joins-per-client 1000000 --join-burst-per-client 1000000)
declare -A thr cpu
for ((run = 1; run <= RUNS; run++)); do
	for which in before after; do
		"$logdir/$which" serve --listen "127.0.0.1:$PORT" "${flags[@]}" >"$logdir/$which-$run.log" 2>&1 &
		pid=$!
		pids+=("$pid")
		wait_until ready "$pid" "$which" "$logdir/$which-$run.log" curl -fsS -o /dev/null "http://127.0.0.1:$PORT/readyz"
		line=$("$logdir/after" bench signal --url "ws://127.0.0.1:$PORT/ws" --pid "$pid" --pairs "$PAIRS" \
			--duration "$DURATION" --warmup "$WARMUP" | grep '^RESULT ')
		echo "$which run $run: $line"
		thr[$which]+="$(sed -n 's/.* msgs_per_s=\([^ ]*\).*/\1/p' <<<"$line") "
		cpu[$which]+="$(sed -n 's/.* cpu_us_per_msg=\([^ ]*\).*/\1/p' <<<"$line") "
		kill -TERM "$pid"
		wait "$pid" 2>/dev/null || true
		pids=()
	done
done
median() { tr ' ' '\n' | grep -v '^$' | sort -g | awk '{ a[NR] = $1 } END { print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }
tb=$(median <<<"${thr[before]}") ta=$(median <<<"${thr[after]}")
cb=$(median <<<"${cpu[before]}") ca=$(median <<<"${cpu[after]}")
echo
echo "msgs/s      before: ${thr[before]}| after: ${thr[after]}"
echo "cpu µs/msg  before: ${cpu[before]}| after: ${cpu[after]}"
awk -v tb="$tb" -v ta="$ta" -v cb="$cb" -v ca="$ca" 'BEGIN {
	printf "median msgs/s: before %s, after %s: after/before %.3f (goal >= 0.9)\n", tb, ta, ta / tb
	printf "median server CPU per message: before %s µs, after %s µs: after/before %.3f\n", cb, ca, ca / cb
}'
# Each run's after against the before that ran just ahead of it (the same moment of a shared
# machine), then the median of those ratios.
paired() { # paired "before values" "after values"
	paste <(tr ' ' '\n' <<<"$1" | grep -v '^$') <(tr ' ' '\n' <<<"$2" | grep -v '^$') | awk '{ printf "%.3f ", $2 / $1 }'
}
pt=$(paired "${thr[before]}" "${thr[after]}") pc=$(paired "${cpu[before]}" "${cpu[after]}")
echo "paired after/before msgs/s: $pt→ median $(median <<<"$pt")"
echo "paired after/before CPU per message: $pc→ median $(median <<<"$pc")"
