#!/usr/bin/env bash
# down.sh WORKDIR
#
# Stops what up.sh started in WORKDIR: trillian_log_signer, trillian_log_server
# and the PostgreSQL cluster. Data (the cluster, the tree) stays in WORKDIR, so
# a later up.sh reuses it; delete WORKDIR to start afresh. Safe to run twice,
# or when nothing runs.
#
# Environment:
#   TRILLIAN_STOP_GRACE=SECONDS  wait this long after SIGTERM before SIGKILL
#                                (default 3; the signer needs ~11 s to stop cleanly)
set -euo pipefail

log() { printf 'down.sh: %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

[[ $# -eq 1 && -n $1 ]] || { echo "usage: $0 WORKDIR" >&2; exit 2; }
if [[ ! -d $1 ]]; then
	log "$1 does not exist: nothing to stop"
	exit 0
fi
W=$(cd "$1" && pwd)
BIN=$W/bin
RUN=$W/run
PGROOT=$W/pg
PGDATA=$PGROOT/data
GRACE=${TRILLIAN_STOP_GRACE:-3}
[[ $GRACE =~ ^[0-9]+$ ]] || die "TRILLIAN_STOP_GRACE must be a whole number of seconds"

# One up.sh/down.sh at a time; up.sh calls us while holding the lock.
if [[ ${_TRILLIAN_LOCK_HELD:-} != "$W" ]]; then
	exec 9>>"$W/.lock"
	flock -w 900 9 || die "another up.sh/down.sh holds $W/.lock"
fi

# The settings are about to go stale.
rm -f "$W/env"

# alive PID: the process exists and is not a zombie.
alive() {
	local stat
	stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
	stat=${stat##*) }
	[[ ${stat:0:1} != Z ]]
}

# ---- Trillian ---------------------------------------------------------------
# Only signal a pid if it still runs the binary up.sh started (pids get reused).
pids=()
for name in trillian_log_signer trillian_log_server; do
	pidfile=$RUN/$name.pid
	[[ -f $pidfile ]] || continue
	pid=$(cat "$pidfile")
	exe=$(readlink "/proc/$pid/exe" 2>/dev/null || true)
	if alive "$pid" && [[ $exe == "$BIN/$name" || $exe == "$BIN/$name (deleted)" ]]; then
		log "stopping $name (pid $pid)"
		kill -TERM "$pid" 2>/dev/null || true
		pids+=("$pid")
	fi
	rm -f "$pidfile"
done

# any_alive: some of the signalled processes still run.
any_alive() {
	local p
	for p in "${pids[@]}"; do alive "$p" && return 0; done
	return 1
}

if ((${#pids[@]} > 0)); then
	# Poll every 0.1 s: GRACE seconds for a clean exit, then 10 s after SIGKILL.
	for ((i = 0; i < GRACE * 10; i++)); do any_alive || break; sleep 0.1; done
	if any_alive; then
		log "still running after ${GRACE}s: SIGKILL"
		for p in "${pids[@]}"; do kill -KILL "$p" 2>/dev/null || true; done
		for ((i = 0; i < 100; i++)); do any_alive || break; sleep 0.1; done
		any_alive && die "Trillian processes ${pids[*]} did not exit"
	fi
fi

# ---- PostgreSQL ---------------------------------------------------------------
if [[ -f $PGDATA/PG_VERSION ]]; then
	PG_BIN=${PG_BIN:-}
	if [[ -z $PG_BIN ]]; then
		initdb_path=$(dpkg -L postgresql-15 2>/dev/null | grep 'bin/initdb$' | head -n 1 || true)
		[[ -n $initdb_path ]] || die "PostgreSQL 15 server binaries not found (set PG_BIN)"
		PG_BIN=$(dirname "$initdb_path")
	fi
	# Run pg_ctl as the cluster's owner (the postgres user when we are root).
	owner=$(stat -c %U "$PGDATA")
	as_owner() {
		if [[ $(id -u) -eq 0 && $owner != root ]]; then
			(cd "$PGROOT" && runuser -u "$owner" -- "$@")
		else
			(cd "$PGROOT" && "$@")
		fi
	}
	if as_owner "$PG_BIN/pg_ctl" -D "$PGDATA" status >/dev/null 2>&1; then
		log "stopping PostgreSQL"
		if ! as_owner "$PG_BIN/pg_ctl" -D "$PGDATA" stop -m fast -w -t 60 >&2; then
			log "fast shutdown failed; trying immediate"
			as_owner "$PG_BIN/pg_ctl" -D "$PGDATA" stop -m immediate -w -t 30 >&2 ||
				die "PostgreSQL in $PGDATA did not stop"
		fi
	fi
fi

log "stopped"
