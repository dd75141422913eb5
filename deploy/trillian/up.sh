#!/usr/bin/env bash
# up.sh WORKDIR
#
# Starts a private PostgreSQL 15 cluster, trillian_log_server and
# trillian_log_signer under WORKDIR, creates a log tree, and prints the
# connection settings (TRILLIAN_ADDR, TREE_ID, POSTGRES_URI,
# TRILLIAN_POSTGRES_URI) on stdout; they are also written to WORKDIR/env.
# Everything else goes to stderr. See README.md beside this script.
#
# Environment:
#   TREE_TYPE=LOG|PREORDERED_LOG  type of the tree to create (default LOG)
#   UP_TIMEOUT=SECONDS            deadline for each wait (default 60)
#   KEEP_ON_FAILURE=1             leave started processes running on failure
#   PG_BIN=DIR                    PostgreSQL server binaries (default: found via dpkg)
set -euo pipefail

log() { printf 'up.sh: %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

# die_with_log MESSAGE LOGFILE: fail and show the end of the relevant log.
die_with_log() {
	log "ERROR: $1"
	if [[ -f $2 ]]; then
		log "last lines of $2:"
		tail -n 40 "$2" >&2 || true
	fi
	exit 1
}

[[ $# -eq 1 && -n $1 ]] || { echo "usage: $0 WORKDIR" >&2; exit 2; }

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
[[ -f $REPO/go.mod ]] || die "no go.mod in $REPO (expected the repo root two levels above this script)"

TIMEOUT=${UP_TIMEOUT:-60}
TREE_TYPE_REQUESTED=${TREE_TYPE:-}
TREE_TYPE=${TREE_TYPE:-LOG}
case $TREE_TYPE in
LOG | PREORDERED_LOG) ;;
*) die "TREE_TYPE must be LOG or PREORDERED_LOG, not '$TREE_TYPE'" ;;
esac

# ---- layout -----------------------------------------------------------------
mkdir -p "$1"
W=$(cd "$1" && pwd)
# The path ends up in a pg_ctl option string and in sourced files: keep it plain.
[[ $W != *[[:space:]\'\"\$\`\\]* ]] || die "WORKDIR path must not contain spaces, quotes, \$, \` or backslashes: $W"
BIN=$W/bin         # Trillian binaries
LOGS=$W/logs       # Trillian logs
RUN=$W/run         # pid files, ports, tree id
PGROOT=$W/pg       # owned by the PostgreSQL user
PGDATA=$PGROOT/data
PGSOCK=$PGROOT/sock
PGLOG=$PGROOT/postgres.log
ENVFILE=$W/env
mkdir -p "$BIN" "$LOGS" "$RUN" "$PGROOT"

# Only one up.sh/down.sh at a time per WORKDIR. Children must not inherit fd 9.
exec 9>>"$W/.lock"
flock -w 900 9 || die "another up.sh/down.sh holds $W/.lock"
export _TRILLIAN_LOCK_HELD=$W # lets the down.sh we call skip the lock

# ---- PostgreSQL user and binaries -------------------------------------------
if [[ -z ${PG_BIN:-} ]]; then
	initdb_path=$(dpkg -L postgresql-15 2>/dev/null | grep 'bin/initdb$' | head -n 1 || true)
	[[ -n $initdb_path ]] || die "PostgreSQL 15 server binaries not found (install postgresql-15 or set PG_BIN)"
	PG_BIN=$(dirname "$initdb_path")
fi
[[ -x $PG_BIN/initdb && -x $PG_BIN/pg_ctl ]] || die "no initdb/pg_ctl in $PG_BIN"

# initdb and postgres refuse to run as root: use the postgres user then.
if [[ $(id -u) -eq 0 ]]; then
	PG_OS_USER=postgres
	id "$PG_OS_USER" >/dev/null 2>&1 || die "running as root but there is no '$PG_OS_USER' user"
else
	PG_OS_USER=$(id -un)
fi

# as_pg CMD...: run CMD as the PostgreSQL OS user, from a folder it can enter.
as_pg() {
	if [[ $(id -u) -eq 0 ]]; then
		(cd "$PGROOT" && runuser -u "$PG_OS_USER" -- "$@")
	else
		(cd "$PGROOT" && "$@")
	fi
}

pg_running() { [[ -f $PGDATA/PG_VERSION ]] && as_pg "$PG_BIN/pg_ctl" -D "$PGDATA" status >/dev/null 2>&1; }

# ---- process helpers ----------------------------------------------------------
# alive PID: the process exists and is not a zombie.
alive() {
	local stat
	stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
	stat=${stat##*) }
	[[ ${stat:0:1} != Z ]]
}

# ours NAME: the pid in RUN/NAME.pid is alive and runs BIN/NAME.
ours() {
	local pid exe
	pid=$(cat "$RUN/$1.pid" 2>/dev/null) || return 1
	alive "$pid" || return 1
	exe=$(readlink "/proc/$pid/exe" 2>/dev/null) || return 1
	[[ $exe == "$BIN/$1" || $exe == "$BIN/$1 (deleted)" ]]
}

# free_ports N: N distinct free loopback ports, chosen by the kernel.
free_ports() {
	python3 - "$1" <<'EOF'
import socket, sys
socks = []
for _ in range(int(sys.argv[1])):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    socks.append(s)
print(" ".join(str(s.getsockname()[1]) for s in socks))
EOF
}

tcp_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
healthz() { curl -fsS --max-time 2 -o /dev/null "http://$1/healthz"; }

# wait_until WHAT LOGFILE PIDFILE-or-"" CMD...: poll CMD until it succeeds;
# fail if the watched process dies or the deadline passes.
wait_until() {
	local what=$1 logfile=$2 pidfile=$3 deadline=$((SECONDS + TIMEOUT))
	shift 3
	until "$@" >/dev/null 2>&1; do
		if [[ -n $pidfile ]] && ! alive "$(cat "$pidfile")"; then
			die_with_log "$what: the process exited" "$logfile"
		fi
		if ((SECONDS >= deadline)); then
			die_with_log "$what: not ready after ${TIMEOUT}s" "$logfile"
		fi
		sleep 0.1
	done
}

# ---- already running? ---------------------------------------------------------
if [[ -f $ENVFILE ]] && ours trillian_log_server && ours trillian_log_signer && pg_running; then
	read -r _ running_type 2>/dev/null <"$RUN/tree" || true
	if [[ -n $TREE_TYPE_REQUESTED && $TREE_TYPE_REQUESTED != "${running_type:-}" ]]; then
		die "$W already runs a ${running_type:-?} tree; run down.sh first or use another WORKDIR for $TREE_TYPE_REQUESTED"
	fi
	log "already running in $W"
	cat "$ENVFILE"
	exit 0
fi

# Whatever is left of an earlier run (a dead signer, a lone postgres...) is
# stopped; its data (cluster, tree) is kept and reused below.
"$HERE/down.sh" "$W" >&2

# From here on, a failure stops what was started.
SUCCESS=0
on_exit() {
	if [[ $SUCCESS != 1 ]]; then
		if [[ ${KEEP_ON_FAILURE:-0} == 1 ]]; then
			log "KEEP_ON_FAILURE=1: leaving processes running; stop them with down.sh $W"
		else
			log "stopping what was started (KEEP_ON_FAILURE=1 keeps it)"
			"$HERE/down.sh" "$W" >&2 || true
		fi
	fi
}
trap on_exit EXIT

# ---- build Trillian -------------------------------------------------------------
# From the repo root, so the versions pinned in go.mod are used.
log "building Trillian binaries into $BIN"
(cd "$REPO" && go build -o "$BIN/" \
	github.com/google/trillian/cmd/trillian_log_server \
	github.com/google/trillian/cmd/trillian_log_signer \
	github.com/google/trillian/cmd/createtree) >&2 ||
	die "go build of the Trillian binaries failed"

read -r PG_PORT SRV_RPC_PORT SRV_HTTP_PORT SIG_RPC_PORT SIG_HTTP_PORT <<<"$(free_ports 5)"

# ---- PostgreSQL ---------------------------------------------------------------------
mkdir -p "$PGSOCK"
# Unix socket paths are limited to 107 bytes.
((${#PGSOCK} + 20 < 108)) || die "WORKDIR path too long for a PostgreSQL socket: $PGSOCK"
if [[ $(id -u) -eq 0 ]]; then
	chown -R "$PG_OS_USER:" "$PGROOT"
	chmod o+x "$W" # the postgres user must be able to enter WORKDIR
	runuser -u "$PG_OS_USER" -- test -x "$PGROOT" ||
		die "user $PG_OS_USER cannot enter $PGROOT (a parent folder is closed to it); pick a WORKDIR under /tmp"
fi

if [[ ! -f $PGDATA/PG_VERSION ]]; then
	log "initdb $PGDATA"
	# Superuser 'postgres' whoever runs it; trust auth (the server listens on loopback only).
	as_pg "$PG_BIN/initdb" -D "$PGDATA" -U postgres --auth=trust -E UTF8 --locale=C \
		--no-sync >"$PGROOT/initdb.log" 2>&1 9>&- ||
		die_with_log "initdb failed" "$PGROOT/initdb.log"
fi

log "starting PostgreSQL on 127.0.0.1:$PG_PORT"
as_pg "$PG_BIN/pg_ctl" -D "$PGDATA" -l "$PGLOG" -w -t "$TIMEOUT" \
	-o "-c listen_addresses=127.0.0.1 -p $PG_PORT -k '$PGSOCK' -c max_connections=200" \
	start >&2 9>&- || die_with_log "PostgreSQL did not start" "$PGLOG"
wait_until "PostgreSQL" "$PGLOG" "" \
	"$PG_BIN/pg_isready" -q -h 127.0.0.1 -p "$PG_PORT" -U postgres -d postgres

PG_BASE=postgresql://postgres@127.0.0.1:$PG_PORT
POSTGRES_URI="$PG_BASE/undersigned?sslmode=disable"
TRILLIAN_POSTGRES_URI="$PG_BASE/trillian?sslmode=disable"
# The Trillian processes get a bigger connection pool (NOTES: ~+15%). It stays
# out of the env file so that file can be sourced without quoting ('&').
TRILLIAN_POOL_URI="$TRILLIAN_POSTGRES_URI&pool_max_conns=32"

# sql DB QUERY: run one query, print unaligned tuples.
sql() { psql -X -q -A -t -v ON_ERROR_STOP=1 "$PG_BASE/$1?sslmode=disable" -c "$2"; }

for db in trillian undersigned; do
	if [[ -z $(sql postgres "SELECT 1 FROM pg_database WHERE datname = '$db'") ]]; then
		log "creating database $db"
		sql postgres "CREATE DATABASE $db" >&2
	fi
done

if [[ -z $(sql trillian "SELECT to_regclass('public.trees')") ]]; then
	TRILLIAN_DIR=$(cd "$REPO" && go list -m -f '{{.Dir}}' github.com/google/trillian)
	SCHEMA=$TRILLIAN_DIR/storage/postgresql/schema/storage.sql
	[[ -f $SCHEMA ]] || die "Trillian schema not found at $SCHEMA"
	log "loading $SCHEMA into database trillian"
	psql -X -q -v ON_ERROR_STOP=1 "$PG_BASE/trillian?sslmode=disable" -f "$SCHEMA" >&2 ||
		die "loading the Trillian schema failed"
fi

# ---- Trillian -------------------------------------------------------------------------
# start_bg NAME ARGS...: start BIN/NAME detached, output to LOGS/NAME.log, pid to RUN/NAME.pid.
start_bg() {
	local name=$1
	shift
	printf '=== %s: %s\n' "$(date -u +%FT%TZ)" "$name $*" >>"$LOGS/$name.log"
	setsid "$BIN/$name" "$@" </dev/null >>"$LOGS/$name.log" 2>&1 9>&- &
	echo "$!" >"$RUN/$name.pid"
	disown "$!" # no job-status noise if down.sh kills it while we run
}

TRILLIAN_ADDR=127.0.0.1:$SRV_RPC_PORT
log "starting trillian_log_server on $TRILLIAN_ADDR (http 127.0.0.1:$SRV_HTTP_PORT)"
start_bg trillian_log_server \
	--storage_system=postgresql --postgresql_uri="$TRILLIAN_POOL_URI" \
	--quota_system=noop \
	--rpc_endpoint="$TRILLIAN_ADDR" --http_endpoint="127.0.0.1:$SRV_HTTP_PORT"

log "starting trillian_log_signer on 127.0.0.1:$SIG_RPC_PORT (http 127.0.0.1:$SIG_HTTP_PORT)"
start_bg trillian_log_signer \
	--storage_system=postgresql --postgresql_uri="$TRILLIAN_POOL_URI" \
	--quota_system=noop --force_master \
	--batch_size=1000 --sequencer_interval=100ms \
	--rpc_endpoint="127.0.0.1:$SIG_RPC_PORT" --http_endpoint="127.0.0.1:$SIG_HTTP_PORT"

cat >"$RUN/ports" <<EOF
postgres 127.0.0.1:$PG_PORT
trillian_log_server rpc $TRILLIAN_ADDR http 127.0.0.1:$SRV_HTTP_PORT
trillian_log_signer rpc 127.0.0.1:$SIG_RPC_PORT http 127.0.0.1:$SIG_HTTP_PORT
EOF

# The server is ready when /healthz (which checks the database) answers and the gRPC port accepts.
server_ready() { healthz "127.0.0.1:$SRV_HTTP_PORT" && tcp_open "$SRV_RPC_PORT"; }
wait_until "trillian_log_server" "$LOGS/trillian_log_server.log" "$RUN/trillian_log_server.pid" server_ready
wait_until "trillian_log_signer" "$LOGS/trillian_log_signer.log" "$RUN/trillian_log_signer.pid" \
	healthz "127.0.0.1:$SIG_HTTP_PORT"

# ---- tree -------------------------------------------------------------------------------
# Reuse the tree of an earlier run of this WORKDIR if it still exists with the wanted type.
TREE_ID=
if read -r old_id old_type 2>/dev/null <"$RUN/tree" && [[ $old_id =~ ^[0-9]+$ && $old_type == "$TREE_TYPE" ]] &&
	[[ $(sql trillian "SELECT treetype FROM trees WHERE treeid = $old_id AND deleted IS NOT TRUE") == "$TREE_TYPE" ]]; then
	TREE_ID=$old_id
	log "reusing $TREE_TYPE tree $TREE_ID"
else
	log "creating a $TREE_TYPE tree"
	TREE_ID=$("$BIN/createtree" --admin_server="$TRILLIAN_ADDR" --tree_type="$TREE_TYPE" \
		--display_name=undersigned --rpc_deadline="${TIMEOUT}s" 2>>"$LOGS/createtree.log" 9>&-) ||
		die_with_log "createtree failed" "$LOGS/createtree.log"
	[[ $TREE_ID =~ ^[0-9]+$ ]] || die_with_log "createtree printed '$TREE_ID', not a tree id" "$LOGS/createtree.log"
	echo "$TREE_ID $TREE_TYPE" >"$RUN/tree"
fi

# ---- report -------------------------------------------------------------------------------
cat >"$ENVFILE.tmp" <<EOF
TRILLIAN_ADDR=$TRILLIAN_ADDR
TREE_ID=$TREE_ID
POSTGRES_URI=$POSTGRES_URI
TRILLIAN_POSTGRES_URI=$TRILLIAN_POSTGRES_URI
EOF
mv "$ENVFILE.tmp" "$ENVFILE"
SUCCESS=1
log "up in ${SECONDS}s; logs in $LOGS and $PGLOG; stop with: $HERE/down.sh $W"
cat "$ENVFILE"
