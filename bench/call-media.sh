#!/usr/bin/env bash
# The web app's call (issue 17): two figures from real Chromium, run as Go tests gated by
# SWITCHBOARD_BENCH_CALL=1 in internal/browsertest (callbench_test.go):
#   - TestBenchJoinToFirstFrame: from clicking Join to the first remote video frame presented
#     (requestVideoFrameCallback), p50 of 10 runs, the web app against the seed's bare page
#     through /socket.io/ in the same browser, interleaved;
#   - TestBenchMeshCPU: Chromium's CPU for a four-page mesh call with the bitrate caps and
#     without (?cap=off), two rounds each, interleaved, with what each page receives.
# Prints the RESULT lines (docs/benchmarks.md, issue 17). Needs chromium and the
# socket.io-client bundle (scripts/install-test-deps.sh). Not run in CI.
#
#   bench/call-media.sh
#   ONLY=TestBenchMeshCPU bench/call-media.sh
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"
run=${ONLY:-'TestBenchJoinToFirstFrame|TestBenchMeshCPU'}
out=$(mktemp "${TMPDIR:-/tmp}/switchboard-call-bench.XXXXXX")
trap 'rm -f "$out"' EXIT
echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
SWITCHBOARD_BENCH_CALL=1 go test -count=1 -timeout 20m -run "^($run)\$" -v ./internal/browsertest/ >"$out" 2>&1 || {
	cat "$out"
	exit 1
}
grep -E 'run [0-9]+:|round [0-9]+ |RESULT' "$out" | sed 's/^ *//'
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
