#!/usr/bin/env bash
# Data channel throughput on impaired paths, in process (issue 15): `switchboard bench
# throughput --only ours` (two SDK peers through an in-process server, one ordered reliable
# channel, the SDK's ChannelWriter watermarks) with internal/netimpair between the peers: a
# link of RATE bytes/s each way with a 50 ms drop-tail queue, and per condition a one-way
# delay, a reordering jitter and a loss. Each condition runs "before" — upstream pion/sctp
# v1.12.0 and Pion's DTLS/SCTP defaults (--untuned) — and "after" — the patched copy in
# third_party/pion-sctp and sdk.TuneTransport — RUNS times, alternating, and prints MB/s and
# the after/before ratio of the medians. A transfer that does not finish within TIMEOUT
# counts what arrived in that time. For TCP on the same kind of link see bench/networks.sh.
#
#   bench/impaired.sh
#
# Environment (defaults): RUNS (1) BYTES (16 MiB) LOSSBYTES (4 MiB, for the loss rows)
# RATE (33554432 = 32 MiB/s) TIMEOUT (120s).
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"
RUNS=${RUNS:-1}
BYTES=${BYTES:-16777216}
LOSSBYTES=${LOSSBYTES:-4194304}
RATE=${RATE:-33554432}
TIMEOUT=${TIMEOUT:-120s}

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
go build -o "$tmp/after" ./cmd/switchboard
# The same tree without the replace of pion/sctp: upstream's v1.12.0.
sed '/^replace github.com\/pion\/sctp /d' go.mod > "$tmp/go.mod"
cp go.sum "$tmp/go.sum"
go build -modfile "$tmp/go.mod" -o "$tmp/before" ./cmd/switchboard

# run BIN BYTES ARGS...: prints MB/s of one transfer (what arrived, over TIMEOUT, if it did not finish).
run() {
	local bin=$1 bytes=$2
	shift 2
	local out
	out=$("$bin" bench throughput --only ours --bytes "$bytes" --rate "$RATE" --timeout "$TIMEOUT" "$@" 2>&1 || true)
	if grep -q '^round 1 ours' <<<"$out"; then
		# MB/s to three decimals from the round's line: "... 12.34s  received N of M bytes ..."
		sed -n 's/^round 1 ours .* \([0-9.]*\)s  received \([0-9]*\) of .*/\2 \1/p' <<<"$out" | head -1 |
			awk '{ printf "%.3f\n", $1 / 1e6 / $2 }'
	else
		local got
		got=$(sed -n 's/.*transfer: \([0-9]*\) of [0-9]* bytes.*/\1/p' <<<"$out" | head -1)
		awk -v g="${got:-0}" -v t="${TIMEOUT%s}" 'BEGIN { printf "%.3f\n", g / 1e6 / t }'
	fi
}

median() { sort -g | awk '{ a[NR] = $1 } END { print (NR % 2 ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2) }'; }

printf '%-26s %12s %12s %8s\n' condition "before MB/s" "after MB/s" ratio
while IFS='|' read -r name bytes args; do
	: >"$tmp/b"
	: >"$tmp/a"
	for _ in $(seq "$RUNS"); do
		# shellcheck disable=SC2086
		run "$tmp/before" "$bytes" --untuned $args >>"$tmp/b"
		# shellcheck disable=SC2086
		run "$tmp/after" "$bytes" $args >>"$tmp/a"
	done
	b=$(median <"$tmp/b")
	a=$(median <"$tmp/a")
	printf '%-26s %12s %12s %8s\n' "$name" "$b" "$a" "$(awk -v a="$a" -v b="$b" 'BEGIN { if (b > 0) printf "%.1f", a / b; else print "-" }')"
done <<EOF2
clean|$BYTES|
200 ms RTT|$BYTES|--delay 100ms
200 ms RTT ± 10 ms jitter|$BYTES|--delay 100ms --jitter 10ms
2 % loss, 100 ms RTT|$LOSSBYTES|--delay 50ms --loss 0.02
10 % loss, 100 ms RTT|$LOSSBYTES|--delay 50ms --loss 0.10
EOF2
