#!/usr/bin/env bash
# The embedded TURN relay against coturn (issue 18), on loopback, in one run: coturn (Debian's
# package, installed with apt-get when missing) and `switchboard serve` (built) with the same
# TURN REST shared secret, both allowed to relay to 127.0.0.0/8, and the same client
# (bench/turnload, a separate process) against each, alternating, RUNS runs each. Per run: a
# fresh allocation with TURN REST credentials, COUNT datagrams of SIZE bytes through the relay
# to a UDP sink, at most WINDOW in flight, from right after the allocation (so what is lost
# while the permission and the channel settle counts). Prints datagrams/s, Mbit/s, loss and
# the server's CPU time per datagram (utime+stime of the server process over the run, from
# /proc/PID/stat), then medians and the ratios ours/coturn.
#
#   bench/turn-vs-coturn.sh
#   RUNS=5 MODES="udp tcp udp-reverse tcp-reverse" bench/turn-vs-coturn.sh
#
# MODES: udp (the issue's: client over UDP, client to peer), tcp (the client's leg over TCP),
# and -reverse (peer to client: the peer sends to the relayed address once the client has
# permitted it, the client reads). Each mode runs RUNS times per server, alternating.
#
# Environment (defaults): RUNS (3) COUNT (200000) SIZE (1200) WINDOW (256) MODES (udp)
# PORT (18630, serve's HTTP) TURN_PORT (18631) COTURN_PORT (18632)
# BIN (built into the log directory) LOAD (bench/turnload, built likewise) COTURN
# (/usr/bin/turnserver). SWITCHBOARD_CPUPROFILE is passed to serve. Not run in CI.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"
BENCH_NAME=switchboard-turn-bench
# shellcheck source=bench/lib.sh
. "$repo/bench/lib.sh"

RUNS=${RUNS:-3}
COUNT=${COUNT:-200000}
SIZE=${SIZE:-1200}
WINDOW=${WINDOW:-256}
MODES=${MODES:-udp}
PORT=${PORT:-18630}
TURN_PORT=${TURN_PORT:-18631}
COTURN_PORT=${COTURN_PORT:-18632}
BIN=${BIN:-$logdir/switchboard}
LOAD=${LOAD:-$logdir/turnload}
COTURN=${COTURN:-/usr/bin/turnserver}
SECRET=turn-bench-$RANDOM$RANDOM$RANDOM

if [[ ! -x $COTURN ]]; then
	SUDO=""
	[[ $(id -u) -eq 0 ]] || SUDO=sudo
	echo "installing coturn (apt-get install -y coturn)"
	DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y coturn >"$logdir/apt.log" 2>&1 ||
		{ $SUDO apt-get update >>"$logdir/apt.log" 2>&1 && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y coturn >>"$logdir/apt.log" 2>&1; } ||
		{ echo "apt-get install coturn failed; its log:" >&2; cat "$logdir/apt.log" >&2; exit 1; }
	# The package may start its own service where systemd runs; this script starts its own.
	if [[ -d /run/systemd/system ]]; then $SUDO systemctl disable --now coturn >/dev/null 2>&1 || true; fi
fi
if [[ ! -x $BIN ]]; then
	echo "building $BIN"
	go build -o "$BIN" ./cmd/switchboard
fi
if [[ ! -x $LOAD ]]; then
	go build -o "$LOAD" ./bench/turnload
fi

"$COTURN" -n --listening-ip=127.0.0.1 --relay-ip=127.0.0.1 --listening-port="$COTURN_PORT" \
	--min-port=51000 --max-port=51999 --use-auth-secret --static-auth-secret="$SECRET" \
	--realm=switchboard --allow-loopback-peers --no-cli --no-tls --no-dtls --no-tcp-relay \
	--log-file=stdout --simple-log --pidfile="$logdir/coturn.pid" >"$logdir/coturn.log" 2>&1 &
coturn_pid=$!
pids+=("$coturn_pid")
wait_until listening "$coturn_pid" coturn "$logdir/coturn.log" port_open "$COTURN_PORT"

"$BIN" serve --listen "127.0.0.1:$PORT" --turn-listen "127.0.0.1:$TURN_PORT" \
	--turn-secret "$SECRET" --turn-allow-peer 127.0.0.0/8 --turn-min-port 50000 --turn-max-port 50999 --turn-max-allocations 1000 \
	--log-level warn >"$logdir/serve.log" 2>&1 &
serve_pid=$!
pids+=("$serve_pid")
wait_until listening "$serve_pid" "switchboard serve" "$logdir/serve.log" port_open "$TURN_PORT"

results=$logdir/results.tsv
# one NAME PID PORT MODE N: one run of the client, a RESULT line appended to results.
one() {
	local name=$1 pid=$2 port=$3 mode=$4 n=$5 line flags=()
	[[ $mode == tcp* ]] && flags+=(--tcp)
	[[ $mode == *-reverse ]] && flags+=(--reverse)
	line=$("$LOAD" --server "127.0.0.1:$port" --secret "$SECRET" --user "bench$n" --count "$COUNT" \
		--size "$SIZE" --window "$WINDOW" --pid "$pid" "${flags[@]}" 2>"$logdir/$name-$mode-$n.log") ||
		{ echo "turnload against $name failed:" >&2; cat "$logdir/$name-$mode-$n.log" >&2; exit 1; }
	printf '%s\t%s\t%s\n' "$name" "$mode" "$line" >>"$results"
	echo "  $name $mode run $n: ${line#RESULT }"
}

echo "logs in $logdir; $COUNT datagrams of $SIZE bytes, at most $WINDOW in flight, $RUNS run(s) each, alternating"
echo "coturn $("$COTURN" --version 2>/dev/null | head -1 || true) (pid $coturn_pid), switchboard serve (pid $serve_pid)"
for t in $MODES; do
	case $t in udp | tcp | udp-reverse | tcp-reverse) ;; *) echo "unknown mode $t in MODES" >&2; exit 1 ;; esac
	for ((n = 1; n <= RUNS; n++)); do
		one coturn "$coturn_pid" "$COTURN_PORT" "$t" "$n"
		one ours "$serve_pid" "$TURN_PORT" "$t" "$n"
	done
done

awk -F'\t' -v modes="$MODES" '
function median(a, n,   i, j, t) {
	for (i = 2; i <= n; i++) for (j = i; j > 1 && a[j-1] > a[j]; j--) { t = a[j]; a[j] = a[j-1]; a[j-1] = t }
	return n % 2 ? a[(n+1)/2] : (a[n/2] + a[n/2+1]) / 2
}
{
	k = $1 SUBSEP $2; i = ++n[k]; ts[$2] = 1
	split($3, kv, " "); for (f in kv) { split(kv[f], p, "="); v[p[1]] = p[2] }
	rate[k, i] = v["dgrams_per_s"]; mbit[k, i] = v["mbit_per_s"]; lost[k, i] = v["lost"]; cpu[k, i] = v["cpu_us_per_dgram"]
}
END {
	nm = split(modes, order, " ")
	for (m = 1; m <= nm; m++) {
		t = order[m]
		# Run i of each server ran one after the other: their ratio is the least disturbed
		# by the load of the rest of the machine, which drifts between runs.
		np = n["ours" SUBSEP t] < n["coturn" SUBSEP t] ? n["ours" SUBSEP t] : n["coturn" SUBSEP t]
		for (i = 1; i <= np; i++) {
			pr[i] = rate["ours" SUBSEP t, i] / rate["coturn" SUBSEP t, i]
			pc[i] = cpu["coturn" SUBSEP t, i] > 0 ? cpu["ours" SUBSEP t, i] / cpu["coturn" SUBSEP t, i] : 0
		}
		mpr = median(pr, np); mpc = median(pc, np)
		for (s = 0; s < 2; s++) {
			name = s ? "ours" : "coturn"; k = name SUBSEP t
			for (i = 1; i <= n[k]; i++) { a[i] = rate[k, i]; b[i] = mbit[k, i]; c[i] = lost[k, i]; d[i] = cpu[k, i] }
			mr[name] = median(a, n[k]); mm[name] = median(b, n[k]); ml[name] = median(c, n[k]); mc[name] = median(d, n[k])
			lo[name] = c[1]; hi[name] = c[n[k]]
		}
		printf "\n%s, medians of %d run(s):\n", t, n["ours" SUBSEP t]
		printf "| server | datagrams/s | Mbit/s | lost (min-max) | server CPU µs/datagram |\n|---|---|---|---|---|\n"
		printf "| coturn | %.0f | %.1f | %d (%d-%d) | %.2f |\n", mr["coturn"], mm["coturn"], ml["coturn"], lo["coturn"], hi["coturn"], mc["coturn"]
		printf "| switchboard serve | %.0f | %.1f | %d (%d-%d) | %.2f |\n", mr["ours"], mm["ours"], ml["ours"], lo["ours"], hi["ours"], mc["ours"]
		printf "throughput ours/coturn %.2f (goal >= 1.0); CPU per datagram ours/coturn %.2f (goal <= 1.0)\n", mr["ours"] / mr["coturn"], mc["ours"] / mc["coturn"]
		printf "run by run (ours after coturn): throughput %.2f (%.2f-%.2f), CPU per datagram %.2f (%.2f-%.2f), medians (min-max)\n", mpr, pr[1], pr[np], mpc, pc[1], pc[np]
	}
}' "$results"
