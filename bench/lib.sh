# bench/lib.sh: what the bench scripts share; source it after setting BENCH_NAME.
# It raises the descriptor limit, makes $logdir, and stops every process whose pid the script
# appends to pids at exit (SIGTERM, which drains gracefully; SIGKILL after 15 s). KEEP_LOGS=1
# keeps the logs.

# The servers and the load tool need many descriptors each.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

logdir=$(mktemp -d "${TMPDIR:-/tmp}/${BENCH_NAME:-switchboard-bench}.XXXXXX")
pids=()
cleanup() {
	local p i
	for p in "${pids[@]}"; do
		kill "$p" 2>/dev/null || true
	done
	for p in "${pids[@]}"; do
		for ((i = 0; i < 150; i++)); do
			kill -0 "$p" 2>/dev/null || break
			sleep 0.1
		done
		kill -9 "$p" 2>/dev/null || true
		wait "$p" 2>/dev/null || true
	done
	if [[ -n ${KEEP_LOGS:-} ]]; then
		echo "logs kept in $logdir" >&2
	else
		rm -rf "$logdir"
	fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# wait_until WHAT PID NAME LOG CMD...: runs CMD every 0.1 s until it succeeds (60 s at most);
# exits with NAME's log if PID dies first or time runs out. WHAT says what is awaited.
wait_until() {
	local what=$1 pid=$2 name=$3 log=$4 i
	shift 4
	for ((i = 0; i < 600; i++)); do
		if ! kill -0 "$pid" 2>/dev/null; then
			echo "$name exited before $what; its log:" >&2
			cat "$log" >&2
			exit 1
		fi
		if "$@" 2>/dev/null; then
			return 0
		fi
		sleep 0.1
	done
	echo "$name: not $what after 60 s; its log:" >&2
	cat "$log" >&2
	exit 1
}

# port_open PORT: whether something accepts connections on 127.0.0.1:PORT.
port_open() {
	(exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}
