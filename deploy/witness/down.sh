#!/usr/bin/env bash
# down.sh WORKDIR
#
# Stops what up.sh started in WORKDIR: omniwitness, litewitness and its
# ssh-agent. Keys and databases stay in WORKDIR. Safe to run twice, or when
# nothing runs.
set -euo pipefail

log() { printf 'down.sh: %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

[[ $# -eq 1 && -n $1 ]] || { echo "usage: $0 WORKDIR" >&2; exit 2; }
if [[ ! -d $1 ]]; then
	log "$1 does not exist: nothing to stop"
	exit 0
fi
W=$(cd "$1" && pwd)
RUN=$W/run

if [[ ${_WITNESS_LOCK_HELD:-} != "$W" ]]; then
	exec 9>>"$W/.lock"
	flock -w 900 9 || die "another up.sh/down.sh holds $W/.lock"
fi
rm -f "$W/env"

alive() {
	local stat
	stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
	stat=${stat##*) }
	[[ ${stat:0:1} != Z ]]
}

# Only signal a pid that still runs the program up.sh started there.
pids=()
for name in litewitness omniwitness ssh-agent; do
	pidfile=$RUN/$name.pid
	[[ -f $pidfile ]] || continue
	pid=$(cat "$pidfile")
	exe=$(readlink "/proc/$pid/exe" 2>/dev/null || true)
	if alive "$pid" && [[ ${exe##*/} == "$name" || ${exe##*/} == "$name (deleted)" ]]; then
		log "stopping $name (pid $pid)"
		kill -TERM "$pid" 2>/dev/null || true
		pids+=("$pid")
	fi
	rm -f "$pidfile"
done

any_alive() {
	local p
	for p in "${pids[@]}"; do alive "$p" && return 0; done
	return 1
}
if ((${#pids[@]} > 0)); then
	for ((i = 0; i < 50; i++)); do any_alive || break; sleep 0.1; done
	if any_alive; then
		log "still running after 5s: SIGKILL"
		for p in "${pids[@]}"; do kill -KILL "$p" 2>/dev/null || true; done
		for ((i = 0; i < 100; i++)); do any_alive || break; sleep 0.1; done
		any_alive && die "witness processes ${pids[*]} did not exit"
	fi
fi
rm -f "$RUN/litewitness.sock"
log "stopped"
