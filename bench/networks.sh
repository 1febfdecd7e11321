#!/usr/bin/env bash
# Transfers on impaired links (issue 15): `switchboard send` -> `recv` beside a plain TCP
# transfer of the same size over the same link, for each condition of the issue's table.
#
#   sbA (10.77.0.1) --vethA|vethMA-- sbM --vethMB|vethB-- sbB (10.77.0.2)
#
# Three network namespaces; sbM runs bench/netwire, a userspace impairment wire (this kernel
# has no netem): raw packet sockets on its two veths (promiscuous, no addresses, so sbM's own
# stack stays out of the way), each direction through a delay queue with per-frame jitter
# (which reorders, as netem does) and random loss. gso_max_segs 1 on every veth, so a loss
# hits one packet, not a 64 KiB offload burst. `switchboard serve` runs in sbA (B's
# signaling crosses the impaired link too, as in life), without TURN and without STUN
# servers: the peers have only their host candidates, so the data goes P2P through the wire
# (the wire's frame counts, in the log, show it did).
#
# Per condition and run: a SIZE_MIB file `send` in sbA -> `recv` in sbB, timed wall-clock
# from the start of both to the receiver's exit, its SHA-256 checked; then the TCP anchor:
# `netwire tcp-get` in sbB downloads the same size from `netwire tcp-serve` in sbA, timed
# from connect to last byte, with cubic and with BBR set per route (`ip route ... congctl`,
# as the sysctl is refused in a namespace; the congestion control the sending socket got is
# read back and printed). A run that does not finish within TIMEOUT s is reported as
# "DNF x %" (the .part size for ours, the bytes read for TCP) and counted at the rate it had.
# Prints a table: condition | ours | TCP cubic | TCP BBR | ratios (medians of RUNS runs),
# and for ours the path (QUIC between the two Go peers when both offer it, else the data
# channel: the receiver's "receiving from ... over ..." line) and the setup time: start -> the
# receiver joined -> its stream or data channel opened -> the first progress line.
# SEND_ARGS=--no-quic runs ours over the data channel (the figures before QUIC).
#
#   sudo bench/networks.sh                 # RUNS=1, every condition, about 15 minutes
#   RUNS=3 sudo bench/networks.sh          # the report's figures
#   CONDITIONS="clean rtt200" bench/networks.sh
#
# Needs root (ip netns), Linux. Not run in CI.
#
# Environment (defaults): RUNS (1) SIZE_MIB (20) TIMEOUT (180, seconds per transfer)
# CONDITIONS (clean rtt200 jitter loss2 loss10; also lan1g, a 1 Gbit/s LAN) CCS (cubic bbr) PORT (18600, serve)
# TCP_PORT (5201) SEED (1) BIN (/tmp/switchboard-net-bench) WIRE (/tmp/netwire-net-bench)
# NS (sb: the namespaces sbA, sbM, sbB; another prefix runs beside them)
# BUILD (1; 0 runs existing binaries) KEEP_LOGS (unset) SEND_ARGS (none; extra flags of send)
# QUIC_ANCHOR (1: also quic-go alone on its own UDP socket, netwire quic-serve/quic-get, the
# library's ceiling on the link; 0: TCP only).
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"

RUNS=${RUNS:-1}
SIZE_MIB=${SIZE_MIB:-20}
TIMEOUT=${TIMEOUT:-180}
CONDITIONS=${CONDITIONS:-clean rtt200 jitter loss2 loss10}
CCS=${CCS:-cubic bbr}
PORT=${PORT:-18600}
TCP_PORT=${TCP_PORT:-5201}
SEED=${SEED:-1}
BIN=${BIN:-/tmp/switchboard-net-bench}
WIRE=${WIRE:-/tmp/netwire-net-bench}
# The namespaces' names: NS (sb) + A, M, B. Another NS lets two runs go side by side.
NS=${NS:-sb}
SEND_ARGS=${SEND_ARGS:-}
QUIC_ANCHOR=${QUIC_ANCHOR:-1}
nsA=${NS}A nsM=${NS}M nsB=${NS}B

# condition NAME: sets delay jitter loss (one way, each direction) and label.
condition() {
	case $1 in
	clean) delay=0s jitter=0s loss=0 label="clean" ;;
	rtt200) delay=100ms jitter=0s loss=0 label="200 ms RTT" ;;
	jitter) delay=100ms jitter=10ms loss=0 label="200 ms RTT ± 10 ms jitter" ;;
	loss2) delay=50ms jitter=0s loss=0.02 label="2 % loss, 100 ms RTT" ;;
	loss10) delay=50ms jitter=0s loss=0.10 label="10 % loss, 100 ms RTT" ;;
	lan1g) delay=0s jitter=0s loss=0 label="1 Gbit/s LAN (kernel bridge)" ;;
	*)
		echo "unknown condition $1 (clean rtt200 jitter loss2 loss10 lan1g)" >&2
		exit 1
		;;
	esac
}
for c in $CONDITIONS; do condition "$c"; done

if [[ $(id -u) != 0 ]]; then
	echo "networks.sh needs root (ip netns)" >&2
	exit 1
fi
for ns in "$nsA" "$nsM" "$nsB"; do
	if ip netns list | grep -qw "$ns"; then
		echo "namespace $ns exists already (another run? remove it with: ip netns del $ns)" >&2
		exit 1
	fi
done

BENCH_NAME=switchboard-net-bench
# shellcheck source=bench/lib.sh
. "$repo/bench/lib.sh"

# live: the pids of the current step's processes (the wire, a transfer), stopped at exit
# with the server; kept apart from lib.sh's pids so that no pid of a finished step (which
# the system may have given to another process since) is ever signalled. The namespaces go
# after the processes in them.
live=()
net_cleanup() {
	local p
	for p in "${live[@]}"; do
		kill "$p" 2>/dev/null || true
	done
	cleanup
	for ns in "$nsA" "$nsM" "$nsB"; do
		ip netns del "$ns" 2>/dev/null || true
	done
}
trap net_cleanup EXIT

if [[ ${BUILD:-1} != 0 ]]; then
	echo "building $BIN and $WIRE"
	go build -o "$BIN" ./cmd/switchboard
	go build -o "$WIRE" ./bench/netwire
fi

# --- the namespaces ---
for ns in "$nsA" "$nsM" "$nsB"; do
	ip netns add "$ns"
	ip -n "$ns" link set lo up
	# IPv4 only: no router solicitations or link-local candidates in the way.
	ip netns exec "$ns" sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1
done
ip link add vethA netns "$nsA" type veth peer name vethMA netns "$nsM"
ip link add vethB netns "$nsB" type veth peer name vethMB netns "$nsM"
for nd in "$nsA":vethA "$nsM":vethMA "$nsM":vethMB "$nsB":vethB; do
	ip -n "${nd%%:*}" link set dev "${nd#*:}" gso_max_segs 1
done
ip -n "$nsM" link set vethMA promisc on up
ip -n "$nsM" link set vethMB promisc on up
ip -n "$nsA" addr add 10.77.0.1/24 dev vethA
ip -n "$nsB" addr add 10.77.0.2/24 dev vethB
ip -n "$nsA" link set vethA up
ip -n "$nsB" link set vethB up

server=http://10.77.0.1:$PORT
ip netns exec "$nsA" "$BIN" serve --listen "10.77.0.1:$PORT" --turn=false --log-level warn >"$logdir/serve.log" 2>&1 &
pids+=("$!")
serve_pid=$!

# in_ns NS CMD...: CMD inside NS. (Background processes are started with ip netns exec
# itself, never through a function: $! must be the process, not a subshell of this script.)
in_ns() {
	local ns=$1
	shift
	ip netns exec "$ns" "$@"
}

wire_pid=
# wire_start COND [LOG]: the wire with COND's impairment (a fresh one per condition, its log
# apart: wire-COND.log unless LOG is given). lan1g has no wire: a kernel bridge joins the two
# veths in sbM, each shaped to 1 Gbit/s on its way out (tbf), a LAN whose link (not the
# CPU of a userspace wire on this 2-core rig) is what limits a transfer.
wire_start() {
	condition "$1"
	if [[ $1 == lan1g ]]; then
		ip -n "$nsM" link add br0 type bridge
		ip -n "$nsM" link set vethMA master br0
		ip -n "$nsM" link set vethMB master br0
		ip -n "$nsM" link set br0 up
		for d in vethMA vethMB; do
			ip netns exec "$nsM" tc qdisc add dev "$d" root tbf rate 1gbit burst 256kb latency 20ms
		done
		wire_pid=
		live=()
		return
	fi
	local wlog=${2:-$logdir/wire-$1.log}
	ip netns exec "$nsM" "$WIRE" wire --a vethMA --b vethMB --delay "$delay" --jitter "$jitter" --loss "$loss" --seed "$SEED" \
		>>"$wlog" 2>&1 &
	wire_pid=$!
	live=("$wire_pid")
}
# wire_stop: stops the wire; it prints its counts into its log.
wire_stop() {
	if [[ -z $wire_pid ]]; then # lan1g: the bridge goes
		for d in vethMA vethMB; do
			ip netns exec "$nsM" tc qdisc del dev "$d" root 2>/dev/null || true
			ip -n "$nsM" link set "$d" nomaster
		done
		ip -n "$nsM" link del br0
		return
	fi
	kill -INT "$wire_pid" 2>/dev/null || true
	wait "$wire_pid" 2>/dev/null || true
	live=()
}

# The server must be reachable from sbB through the (clean) wire before anything is timed.
wire_start clean "$logdir/wire-setup.log"
serve_ready() { in_ns "$nsB" bash -c "exec 3<>/dev/tcp/10.77.0.1/$PORT" 2>/dev/null; }
wait_until listening "$serve_pid" "switchboard serve" "$logdir/serve.log" serve_ready
wire_stop

size=$((SIZE_MIB << 20))
file=$logdir/payload.bin
head -c "$size" /dev/urandom >"$file"
want_sha=$(sha256sum "$file" | cut -d' ' -f1)
results=$logdir/results.tsv

# stamp: prefixes each line of stdin with the wall clock (seconds since the epoch).
stamp() {
	local l
	while IFS= read -r l; do
		printf '%s %s\n' "$EPOCHREALTIME" "$l"
	done
}

# first_at LOG PATTERN: the time stamp of LOG's first line matching PATTERN (empty if none).
first_at() {
	grep -m1 -- "$2" "$1" 2>/dev/null | cut -d' ' -f1 || true
}

# sub A B: B - A in seconds (empty if either is).
sub() {
	[[ -n $1 && -n $2 ]] || return 0
	awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", b - a }'
}

# ours COND RUN: one send -> recv; appends a line to $results.
ours() {
	local cond=$1 run=$2 room="net-$1-$2-$RANDOM" out="$logdir/out-$1-$2"
	local slog="$logdir/send-$cond-$run.log" rlog="$logdir/recv-$cond-$run.log" end="$logdir/end-$cond-$run"
	mkdir -p "$out"
	local t0=$EPOCHREALTIME
	rm -f "$end"
	# recv's stderr time-stamped (it tells when it joined, got the channel, got data).
	{
		trap - EXIT INT TERM
		set +e
		ip netns exec "$nsB" timeout "$TIMEOUT" "$BIN" recv --room "$room" --out "$out" --server "$server" 2>&1 >/dev/null | stamp >"$rlog"
		echo "$EPOCHREALTIME ${PIPESTATUS[0]}" >"$end"
	} &
	local rpid=$!
	ip netns exec "$nsA" timeout $((TIMEOUT + 10)) "$BIN" send "$file" --room "$room" --server "$server" $SEND_ARGS >"$slog" 2>&1 &
	local spid=$!
	live=("$wire_pid" "$rpid" "$spid")
	# The .part size, sampled while the receiver runs (it removes the .part when it fails).
	local part=0 s
	while kill -0 "$rpid" 2>/dev/null; do
		s=$(stat -c %s "$out/payload.bin.part" 2>/dev/null || true)
		[[ -n $s ]] && part=$s
		sleep 0.2
	done
	wait "$rpid" || true
	local t1=$EPOCHREALTIME rc=1
	[[ -f $end ]] && read -r t1 rc <"$end"
	# The sender exits once the receiver confirmed; give it a moment, then stop it.
	for ((s = 0; s < 50; s++)); do kill -0 "$spid" 2>/dev/null || break; sleep 0.1; done
	kill "$spid" 2>/dev/null || true
	wait "$spid" 2>/dev/null || true
	live=("$wire_pid")
	local secs status bytes
	secs=$(sub "$t0" "$t1")
	if [[ $rc == 0 && -f $out/payload.bin ]] && [[ $(sha256sum "$out/payload.bin" | cut -d' ' -f1) == "$want_sha" ]]; then
		status=ok bytes=$size
	elif [[ $rc == 0 ]]; then
		status=BADSHA bytes=0
	else
		status=DNF bytes=$part
	fi
	rm -rf "$out"
	local joined opened first
	joined=$(sub "$t0" "$(first_at "$rlog" 'waiting for a sender')")
	opened=$(sub "$t0" "$(first_at "$rlog" 'receiving from')")
	first=$(sub "$t0" "$(first_at "$rlog" 'receiving payload')")
	local path
	path=$(sed -n 's/.*receiving from .* over \(QUIC ([a-z]*)\|the data channel\).*/\1/p' "$rlog" | head -1)
	case $path in
	"QUIC (direct)") path=quic ;;
	"QUIC (relay)") path=quic-relay ;;
	"the data channel") path=dc ;;
	*) path=- ;;
	esac
	printf '%s\tours\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$cond" "$run" "$status" "$bytes" "$secs" \
		"${joined:--}" "${opened:--}" "${first:--}" "$path" >>"$results"
	printf '  ours  run %s: over %s, %s, %s bytes in %s s; joined %s s, channel open %s s, first data %s s\n' \
		"$run" "$path" "$status" "$bytes" "$secs" "${joined:--}" "${opened:--}" "${first:--}"
}

# tcp COND RUN CC: one TCP download sbA -> sbB with CC on the route; appends to $results.
tcp() {
	local cond=$1 run=$2 cc=$3 log="$logdir/tcp-$1-$2-$3.log"
	ip -n "$nsA" route replace 10.77.0.0/24 dev vethA congctl "$cc"
	ip -n "$nsB" route replace 10.77.0.0/24 dev vethB congctl "$cc"
	ip netns exec "$nsA" "$WIRE" tcp-serve --listen "10.77.0.1:$TCP_PORT" --bytes "$size" >"$log" 2>&1 &
	local tpid=$!
	live=("$wire_pid" "$tpid")
	wait_until listening "$tpid" "tcp-serve" "$log" grep -q listening "$log"
	local line status bytes secs used
	line=$(in_ns "$nsB" "$WIRE" tcp-get --connect "10.77.0.1:$TCP_PORT" --bytes "$size" --timeout "${TIMEOUT}s" 2>&1 || true)
	kill "$tpid" 2>/dev/null || true
	wait "$tpid" 2>/dev/null || true
	live=("$wire_pid")
	echo "$line" >>"$log"
	used=$(sed -n 's/.*congestion control //p' "$log" | head -1)
	if [[ $line =~ ^tcp-get:\ ([0-9]+)\ bytes\ in\ ([0-9.]+)\ s ]]; then
		status=ok bytes=${BASH_REMATCH[1]} secs=${BASH_REMATCH[2]}
	elif [[ $line =~ INCOMPLETE\ ([0-9]+)\ of\ [0-9]+\ bytes.*in\ ([0-9.]+)\ s ]]; then
		status=DNF bytes=${BASH_REMATCH[1]} secs=${BASH_REMATCH[2]}
	else
		status=ERR bytes=0 secs=0
		echo "  tcp $cc: $line" >&2
	fi
	if [[ $used != "$cc" ]]; then
		echo "  WARNING: asked the route for $cc, the sending socket used '${used:-?}'" >&2
	fi
	printf '%s\ttcp-%s\t%s\t%s\t%s\t%s\t-\t-\t-\n' "$cond" "$cc" "$run" "$status" "$bytes" "$secs" >>"$results"
	printf '  tcp   run %s: %s (socket: %s), %s, %s bytes in %s s\n' "$run" "$cc" "${used:-?}" "$status" "$bytes" "$secs"
}

# quicanchor COND RUN: one download sbA -> sbB with quic-go on its own UDP socket (netwire
# quic-serve/quic-get: GSO, batched reads, path MTU discovery), the library's ceiling on the
# link; appends to $results.
quicanchor() {
	local cond=$1 run=$2 log="$logdir/quic-$1-$2.log"
	ip netns exec "$nsA" "$WIRE" quic-serve --listen "10.77.0.1:$TCP_PORT" --bytes "$size" >"$log" 2>&1 &
	local qpid=$!
	live=("$wire_pid" "$qpid")
	wait_until listening "$qpid" "quic-serve" "$log" grep -q listening "$log"
	local line status bytes secs
	line=$(in_ns "$nsB" "$WIRE" quic-get --connect "10.77.0.1:$TCP_PORT" --bytes "$size" --timeout "${TIMEOUT}s" 2>&1 || true)
	kill "$qpid" 2>/dev/null || true
	wait "$qpid" 2>/dev/null || true
	live=("$wire_pid")
	echo "$line" >>"$log"
	if [[ $line =~ ^quic-get:\ ([0-9]+)\ bytes\ in\ ([0-9.]+)\ s ]]; then
		status=ok bytes=${BASH_REMATCH[1]} secs=${BASH_REMATCH[2]}
	elif [[ $line =~ INCOMPLETE\ ([0-9]+)\ of\ [0-9]+\ bytes.*in\ ([0-9.]+)\ s ]]; then
		status=DNF bytes=${BASH_REMATCH[1]} secs=${BASH_REMATCH[2]}
	else
		status=ERR bytes=0 secs=0
		echo "  quic-go: $line" >&2
	fi
	printf '%s\tquic-go\t%s\t%s\t%s\t%s\t-\t-\t-\n' "$cond" "$run" "$status" "$bytes" "$secs" >>"$results"
	printf '  quic-go run %s (own socket): %s, %s bytes in %s s\n' "$run" "$status" "$bytes" "$secs"
}

echo "logs in $logdir; $SIZE_MIB MiB per transfer, $RUNS run(s) per condition, ${TIMEOUT} s at most each"
for cond in $CONDITIONS; do
	condition "$cond"
	echo "== $label (one way: delay $delay, jitter ±$jitter, loss $loss)"
	wire_start "$cond"
	for ((run = 1; run <= RUNS; run++)); do
		ours "$cond" "$run"
		for cc in $CCS; do
			tcp "$cond" "$run" "$cc"
		done
		if [[ $QUIC_ANCHOR == 1 ]]; then
			quicanchor "$cond" "$run"
		fi
	done
	wire_stop
	sed -n 's/^netwire /  wire: /p' "$logdir/wire-$cond.log" 2>/dev/null | grep -v '<->' || true
done

# --- the table: medians over the runs; a DNF counts at the rate it had ---
echo
echo "Impaired networks, $(date -u +%Y-%m-%d), $SIZE_MIB MiB, $RUNS run(s) each, timeout ${TIMEOUT} s (MiB/s, medians)"
for cond in $CONDITIONS; do
	condition "$cond"
	printf '%s\t%s\n' "$cond" "$label"
done >"$logdir/labels.tsv"
awk -F'\t' -v ccs="$CCS" -v timeout="$TIMEOUT" -v size="$size" '
function median(arr, n,   i, j, t) {
	for (i = 2; i <= n; i++) for (j = i; j > 1 && arr[j-1] > arr[j]; j--) { t = arr[j]; arr[j] = arr[j-1]; arr[j-1] = t }
	return n % 2 ? arr[(n+1)/2] : (arr[n/2] + arr[n/2+1]) / 2
}
# cell K: "rate" or "rate (DNF: best x %)" for kind K of the current condition.
function cell(c, k,   n, i, r, a, dnf, best) {
	n = cnt[c, k]; if (n == 0) return "-"
	for (i = 1; i <= n; i++) a[i] = rate[c, k, i]
	r = median(a, n); med[k] = r
	if (ndnf[c, k] > 0) return sprintf("%.3f (%d/%d DNF, %.0f %% in %d s)", r, ndnf[c, k], n, 100 * maxpart[c, k] / size, timeout)
	return sprintf("%.3f", r)
}
FILENAME ~ /labels/ { order[++nc] = $1; lab[$1] = $2; next }
{
	c = $1; k = $2; i = ++cnt[c, k]
	if (k == "quic-go") anyq = 1
	rate[c, k, i] = ($6 > 0) ? $5 / 1048576 / $6 : 0
	if ($4 != "ok") { ndnf[c, k]++; if ($5 > maxpart[c, k]) maxpart[c, k] = $5 }
	if (k == "ours") {
		js[c] = js[c] " " $7; os[c] = os[c] " " $8; fs[c] = fs[c] " " $9; ps[c] = ps[c] " " $10
		# the data phase: from the first progress line to the end (setup left out)
		j = ++cnt[c, "ours-data"]
		rate[c, "ours-data", j] = ($9 != "-" && $6 - $9 > 0) ? $5 / 1048576 / ($6 - $9) : 0
		if ($4 != "ok") { ndnf[c, "ours-data"]++; if ($5 > maxpart[c, "ours-data"]) maxpart[c, "ours-data"] = $5 }
	}
}
END {
	nk = split(ccs, cc, " ")
	hdr = "| link | ours (path) |"; sep = "|---|---|"
	for (j = 1; j <= nk; j++) { hdr = hdr " TCP " cc[j] " |"; sep = sep "---|" }
	for (j = 1; j <= nk; j++) { hdr = hdr " ratio vs " cc[j] " |"; sep = sep "---|" }
	if (anyq) { hdr = hdr " quic-go alone | ratio vs quic-go |"; sep = sep "---|---|" }
	hdr = hdr " ours, data phase | its ratio vs " cc[1] " |"; sep = sep "---|---|"
	print hdr; print sep
	for (x = 1; x <= nc; x++) {
		c = order[x]; delete med
		line = "| " lab[c] " | " cell(c, "ours") " (" substr(ps[c], 2) ") |"
		for (j = 1; j <= nk; j++) line = line " " cell(c, "tcp-" cc[j]) " |"
		for (j = 1; j <= nk; j++) {
			t = med["tcp-" cc[j]]
			line = line " " ((t > 0 && ("ours" in med)) ? sprintf("%.2f", med["ours"] / t) : "-") " |"
		}
		if (anyq) {
			line = line " " cell(c, "quic-go") " |"
			t = med["quic-go"]
			line = line " " ((t > 0 && ("ours" in med)) ? sprintf("%.2f", med["ours"] / t) : "-") " |"
		}
		line = line " " cell(c, "ours-data") " |"
		t = med["tcp-" cc[1]]
		line = line " " ((t > 0 && ("ours-data" in med)) ? sprintf("%.2f", med["ours-data"] / t) : "-") " |"
		print line
	}
	print ""
	print "ours, seconds from the start of send and recv to: the receiver joined / its data channel opened / first progress line (each run):"
	for (x = 1; x <= nc; x++) { c = order[x]; printf "  %-8s path%s | joined%s | open%s | first data%s\n", c, ps[c], js[c], os[c], fs[c] }
}' "$logdir/labels.tsv" "$results"
