#!/usr/bin/env bash
# File transfer against croc (issue 16): the same file, on loopback, through croc v10 (its
# own relay, reached on 127.0.0.1 (it listens on every address of the host), --no-local so
# both go through it, as the relay is croc's path across networks) and through `switchboard send`/`recv` with a code (a `serve` on
# 127.0.0.1, the data peer to peer over QUIC), alternating, RUNS runs each. Per run: time to
# first byte (from the start of both commands to the first byte of the output file on disk)
# and throughput (the file's size over the time from the start to the receiver's exit, its
# SHA-256 checked). In each round too, right after ours, the raw throughput of the same QUIC
# path without the file protocol (`switchboard bench throughput --only quic`, same size):
# the transfer/raw ratio is the median of each round's ratio, so that a busy machine slows
# both sides of it alike.
#
#   bench/transfer-vs-croc.sh                  # 1 GiB, 3 runs each
#   SIZE_MIB=256 RUNS=1 bench/transfer-vs-croc.sh
#
# Environment (defaults): SIZE_MIB (1024) RUNS (3) PORT (18610, serve) CROC_PORTS
# (18620-18624) CROC (croc v10.7.0, installed with go install into the log directory unless
# given) BIN (built) TIMEOUT (300 s per transfer). Not run in CI.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"
BENCH_NAME=switchboard-croc-bench
# shellcheck source=bench/lib.sh
. "$repo/bench/lib.sh"

SIZE_MIB=${SIZE_MIB:-1024}
RUNS=${RUNS:-3}
PORT=${PORT:-18610}
CROC_BASE=${CROC_BASE:-18620}
TIMEOUT=${TIMEOUT:-300}
BIN=${BIN:-$logdir/switchboard}
CROC=${CROC:-}

if [[ ! -x $BIN ]]; then
	echo "building $BIN"
	go build -o "$BIN" ./cmd/switchboard
fi
if [[ -z $CROC ]]; then
	echo "installing croc v10.7.0"
	GOBIN=$logdir/bin go install github.com/schollz/croc/v10@v10.7.0
	CROC=$logdir/bin/croc
fi

size=$((SIZE_MIB << 20))
file=$logdir/payload.bin
head -c "$size" /dev/urandom >"$file"
want=$(sha256sum "$file" | cut -d' ' -f1)

ports="$CROC_BASE,$((CROC_BASE + 1)),$((CROC_BASE + 2)),$((CROC_BASE + 3)),$((CROC_BASE + 4))"
"$CROC" relay --host 127.0.0.1 --ports "$ports" >"$logdir/croc-relay.log" 2>&1 &
pids+=("$!")
wait_until listening "$!" "croc relay" "$logdir/croc-relay.log" port_open "$CROC_BASE"
"$BIN" serve --listen "127.0.0.1:$PORT" --turn=false --log-level warn >"$logdir/serve.log" 2>&1 &
pids+=("$!")
wait_until listening "$!" "switchboard serve" "$logdir/serve.log" port_open "$PORT"
server=http://127.0.0.1:$PORT

# first_byte OUT_FILE T0 PID: prints the seconds from T0 until OUT_FILE has a byte (or -).
first_byte() {
	local f=$1 t0=$2 pid=$3
	while kill -0 "$pid" 2>/dev/null; do
		if [[ -s $f ]]; then
			awk -v a="$t0" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.3f", b - a }'
			return
		fi
		sleep 0.01
	done
	echo -
}

# check DIR NAME: ok if DIR/NAME has the payload's SHA-256.
check() {
	if [[ -f $1/$2 ]] && [[ $(sha256sum "$1/$2" | cut -d' ' -f1) == "$want" ]]; then echo ok; else echo BAD; fi
}

results=$logdir/results.tsv
run_croc() {
	local n=$1 out=$logdir/croc-out-$1 code
	code="sb-bench-$n-$RANDOM$RANDOM"
	mkdir -p "$out"
	local t0=$EPOCHREALTIME
	# croc v10 takes a chosen code only from CROC_SECRET (it refuses --code on Unix).
	CROC_SECRET=$code "$CROC" --relay "127.0.0.1:$CROC_BASE" --yes send --no-local "$file" >"$logdir/croc-send-$n.log" 2>&1 &
	local spid=$! i
	# Its receiver starts once the sender is ready (it hashes the file first, then prints the
	# code): a receiver that comes earlier fails to secure the channel. Timed from the
	# sender's start all the same.
	for ((i = 0; i < 6000; i++)); do
		grep -q "Code is:" "$logdir/croc-send-$n.log" 2>/dev/null && break
		sleep 0.01
	done
	(cd "$out" && CROC_SECRET=$code exec timeout "$TIMEOUT" "$CROC" --relay "127.0.0.1:$CROC_BASE" --yes --overwrite "$code") >"$logdir/croc-recv-$n.log" 2>&1 &
	local rpid=$!
	# croc writes straight into the file's name.
	local fb
	fb=$(first_byte "$out/payload.bin" "$t0" "$rpid")
	wait "$rpid" || true
	local t1=$EPOCHREALTIME
	wait "$spid" 2>/dev/null || true
	printf 'croc\t%s\t%s\t%s\t%s\n' "$n" "$fb" "$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", b - a }')" "$(check "$out" payload.bin)" >>"$results"
	rm -rf "$out"
}
run_ours() {
	local n=$1 out=$logdir/ours-out-$1
	mkdir -p "$out"
	local t0=$EPOCHREALTIME
	"$BIN" send "$file" --server "$server" --loopback >"$logdir/ours-send-$n.out" 2>"$logdir/ours-send-$n.log" &
	local spid=$! code= i
	for ((i = 0; i < 500; i++)); do
		code=$(sed -n 's/^ *switchboard recv \([0-9a-z-]*\).*/\1/p' "$logdir/ours-send-$n.out" | head -1)
		[[ -n $code ]] && break
		sleep 0.01
	done
	[[ -n $code ]] || { echo "send printed no code" >&2; cat "$logdir/ours-send-$n.log" >&2; exit 1; }
	timeout "$TIMEOUT" "$BIN" recv "$code" --out "$out" --server "$server" --loopback >/dev/null 2>"$logdir/ours-recv-$n.log" &
	local rpid=$!
	# recv writes payload.bin.part, renamed when verified.
	local fb
	fb=$(first_byte "$out/payload.bin.part" "$t0" "$rpid")
	wait "$rpid" || true
	local t1=$EPOCHREALTIME
	wait "$spid" 2>/dev/null || true
	printf 'ours\t%s\t%s\t%s\t%s\n' "$n" "$fb" "$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", b - a }')" "$(check "$out" payload.bin)" >>"$results"
	rm -rf "$out"
}

echo "logs in $logdir; $SIZE_MIB MiB, $RUNS run(s) each, alternating"
for ((n = 1; n <= RUNS; n++)); do
	run_croc "$n"
	tail -1 "$results" | awk -F'\t' '{ printf "  croc run %s: first byte %s s, %s s, %s\n", $2, $3, $4, $5 }'
	run_ours "$n"
	tail -1 "$results" | awk -F'\t' '{ printf "  ours run %s: first byte %s s, %s s, %s\n", $2, $3, $4, $5 }'
	raw=$("$BIN" bench throughput --only quic --bytes "$size" 2>&1 | tee "$logdir/raw-$n.log" | sed -n 's/^ *quic[^0-9]*\([0-9.]*\) MB\/s.*/\1/p' | head -1)
	printf 'raw\t%s\t-\t%s\tok\n' "$n" "${raw:-0}" >>"$results"
	echo "  raw QUIC run $n: ${raw:-?} MB/s"
done

awk -F'\t' -v size="$size" -v mib="$SIZE_MIB" '
function median(a, n,   i, j, t) {
	for (i = 2; i <= n; i++) for (j = i; j > 1 && a[j-1] > a[j]; j--) { t = a[j]; a[j] = a[j-1]; a[j-1] = t }
	return n % 2 ? a[(n+1)/2] : (a[n/2] + a[n/2+1]) / 2
}
$1 == "raw" { r[$2] = $4 * 1e6 / 1048576; next }
{ k = $1; i = ++n[k]; fb[k, i] = $3; rate[k, i] = ($5 == "ok" && $4 > 0) ? size / 1048576 / $4 : 0; if ($5 != "ok") bad[k]++; if (k == "ours") round[i] = $2 }
END {
	for (k in n) { for (i = 1; i <= n[k]; i++) { x[i] = fb[k, i]; y[i] = rate[k, i] } mfb[k] = median(x, n[k]); mr[k] = median(y, n[k]) }
	nr = 0
	for (i = 1; i <= n["ours"]; i++) if (r[round[i]] > 0) { nr++; rw[nr] = r[round[i]]; q[nr] = rate["ours", i] / r[round[i]] }
	printf "\nFile transfer on loopback, %d MiB, medians of %d run(s):\n", mib, n["ours"]
	printf "| | first byte (s) | MiB/s | failed |\n|---|---|---|---|\n"
	printf "| croc v10.7.0 (its relay) | %.3f | %.1f | %d |\n", mfb["croc"], mr["croc"], bad["croc"]
	printf "| switchboard send/recv (code, QUIC) | %.3f | %.1f | %d |\n", mfb["ours"], mr["ours"], bad["ours"]
	printf "\nthroughput ours/croc %.2f (goal >= 1.5); first byte ours/croc %.2f (goal <= 1.0)\n", mr["ours"] / mr["croc"], mfb["ours"] / mfb["croc"]
	if (nr > 0) {
		printf "raw QUIC path (bench throughput --only quic), median of %d round(s): %.1f MiB/s\n", nr, median(rw, nr)
		printf "transfer/raw, median of the rounds'"'"' ratios: %.2f (goal >= 0.9)\n", median(q, nr)
	}
}' "$results"
