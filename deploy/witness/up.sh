#!/usr/bin/env bash
# up.sh WORKDIR LOGPUB
#
# Starts two independent witnesses on loopback ports for the log whose note
# verifier key is in the file LOGPUB (a server's log.pub): omniwitness
# (transparency-dev/witness) and litewitness (torchwood, its key in an
# ssh-agent of its own, configured with witnessctl). Each is configured for
# the log's origin and key. Writes a C2SP tlog-policy file naming the log
# and both witnesses, with quorum 2, and prints POLICY=<file> on stdout,
# with the witnesses' URLs and the folder of the binaries (also in
# WORKDIR/env). Everything else goes to stderr. down.sh WORKDIR stops them.
#
# Keys and databases stay in WORKDIR: a second up.sh with the same WORKDIR
# starts the same witnesses, who remember what they cosigned. Builds are
# cached by build.sh.
#
# Environment:
#   UP_TIMEOUT=SECONDS   deadline for each wait (default 60)
#   KEEP_ON_FAILURE=1    leave started processes running on failure
set -euo pipefail

log() { printf 'up.sh: %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }
die_with_log() {
	log "ERROR: $1"
	if [[ -f $2 ]]; then
		log "last lines of $2:"
		tail -n 30 "$2" >&2 || true
	fi
	exit 1
}

[[ $# -eq 2 && -n $1 && -n $2 ]] || { echo "usage: $0 WORKDIR LOGPUB" >&2; exit 2; }
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
TIMEOUT=${UP_TIMEOUT:-60}

[[ -f $2 ]] || die "no log key file $2"
LOGKEY=$(tr -d '[:space:]' <"$2")
# A note verifier key: <origin>+<8 hex digits>+<base64>.
[[ $LOGKEY =~ ^([^+[:space:]]+)\+[0-9a-f]{8}\+[A-Za-z0-9+/=]+$ ]] ||
	die "$2 does not hold a note verifier key (<origin>+<hash>+<key>)"
ORIGIN=${BASH_REMATCH[1]}

mkdir -p "$1"
W=$(cd "$1" && pwd)
[[ $W != *[[:space:]\'\"\$\`\\]* ]] || die "WORKDIR path must not contain spaces, quotes, \$, \` or backslashes: $W"
RUN=$W/run
LOGS=$W/logs
KEYS=$W/keys
mkdir -p "$RUN" "$LOGS" "$KEYS"
chmod 700 "$KEYS"
AGENT_SOCK=$RUN/litewitness.sock
((${#AGENT_SOCK} < 100)) || die "WORKDIR path too long for the ssh-agent socket: $AGENT_SOCK"

exec 9>>"$W/.lock"
flock -w 900 9 || die "another up.sh/down.sh holds $W/.lock"
export _WITNESS_LOCK_HELD=$W

alive() {
	local stat
	stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
	stat=${stat##*) }
	[[ ${stat:0:1} != Z ]]
}

# Whatever ran in WORKDIR before is stopped; keys and databases are kept.
"$HERE/down.sh" "$W" >&2

SUCCESS=0
on_exit() {
	if [[ $SUCCESS != 1 ]]; then
		if [[ ${KEEP_ON_FAILURE:-0} == 1 ]]; then
			log "KEEP_ON_FAILURE=1: leaving processes running; stop them with down.sh $W"
		else
			"$HERE/down.sh" "$W" >&2 || true
		fi
	fi
}
trap on_exit EXIT

# litewitness keeps its key in an ssh-agent: OpenSSH's client tools.
if ! command -v ssh-agent >/dev/null || ! command -v ssh-keygen >/dev/null; then
	if [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null; then
		log "installing openssh-client (ssh-agent, ssh-add, ssh-keygen)"
		DEBIAN_FRONTEND=noninteractive apt-get install -y -q openssh-client >&2 ||
			{ apt-get update -q >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y -q openssh-client >&2; } ||
			die "could not install openssh-client"
	else
		die "ssh-agent and ssh-keygen are needed (Debian: apt-get install openssh-client)"
	fi
fi

BIN=$("$HERE/build.sh") || die "build.sh failed"
log "binaries in $BIN"

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
read -r OMNI_PORT OMNI_METRICS_PORT LITE_PORT <<<"$(free_ports 3)"

# start_bg NAME EXE ARGS...: start EXE detached, output to LOGS/NAME.log,
# pid to RUN/NAME.pid.
start_bg() {
	local name=$1
	shift
	printf '=== %s: %s\n' "$(date -u +%FT%TZ)" "$*" >>"$LOGS/$name.log"
	setsid "$@" </dev/null >>"$LOGS/$name.log" 2>&1 9>&- &
	echo "$!" >"$RUN/$name.pid"
	disown "$!"
}

# wait_until WHAT LOGFILE PIDFILE CMD...: poll CMD until it succeeds.
wait_until() {
	local what=$1 logfile=$2 pidfile=$3 deadline=$((SECONDS + TIMEOUT))
	shift 3
	until "$@" >/dev/null 2>&1; do
		alive "$(cat "$pidfile")" || die_with_log "$what: the process exited" "$logfile"
		((SECONDS < deadline)) || die_with_log "$what: not ready after ${TIMEOUT}s" "$logfile"
		sleep 0.1
	done
}
# answers PORT: the witness answers HTTP (any status) on the port.
answers() { curl -s -o /dev/null --max-time 2 "http://127.0.0.1:$1/"; }

# ---- omniwitness ----------------------------------------------------------------
if [[ ! -s $KEYS/omniwitness.key ]]; then
	name="witness.localhost/omniwitness-$(od -An -N4 -tx1 /dev/urandom | tr -d ' \n')"
	"$BIN/generate_keys" --origin "$name" --out_priv "$KEYS/omniwitness.key" --out_pub "$KEYS/omniwitness.vkey" 2>>"$LOGS/omniwitness.log" ||
		die_with_log "generate_keys failed" "$LOGS/omniwitness.log"
fi
OMNI_VKEY=$(cat "$KEYS/omniwitness.vkey")
cat >"$W/omniwitness-logs.yaml" <<EOF
Logs:
  - Origin: "$ORIGIN"
    PublicKey: "$LOGKEY"
EOF
log "starting omniwitness on 127.0.0.1:$OMNI_PORT"
start_bg omniwitness "$BIN/omniwitness" --listen "127.0.0.1:$OMNI_PORT" --metrics_listen "127.0.0.1:$OMNI_METRICS_PORT" \
	--private_key_path "$KEYS/omniwitness.key" --db_file "$W/omniwitness.db" --additional_logs "$W/omniwitness-logs.yaml"

# ---- litewitness --------------------------------------------------------------------
if [[ ! -s $KEYS/litewitness ]]; then
	ssh-keygen -q -t ed25519 -N '' -C litewitness -f "$KEYS/litewitness" >&2 || die "ssh-keygen failed"
fi
FINGERPRINT=$(ssh-keygen -l -E sha256 -f "$KEYS/litewitness.pub" | awk '{print $2}')
rm -f "$AGENT_SOCK"
start_bg ssh-agent ssh-agent -D -a "$AGENT_SOCK"
deadline=$((SECONDS + TIMEOUT))
until [[ -S $AGENT_SOCK ]]; do
	alive "$(cat "$RUN/ssh-agent.pid")" || die_with_log "ssh-agent exited" "$LOGS/ssh-agent.log"
	((SECONDS < deadline)) || die "ssh-agent: no socket after ${TIMEOUT}s"
	sleep 0.05
done
SSH_AUTH_SOCK=$AGENT_SOCK ssh-add -q "$KEYS/litewitness" 2>>"$LOGS/ssh-agent.log" || die_with_log "ssh-add failed" "$LOGS/ssh-agent.log"

LITE_DB=$W/litewitness.db
if ! "$BIN/witnessctl" list-logs -db "$LITE_DB" 2>/dev/null | grep -qF "\"origin\":\"$ORIGIN\""; then
	"$BIN/witnessctl" add-log -db "$LITE_DB" -origin "$ORIGIN" 2>>"$LOGS/litewitness.log" || die_with_log "witnessctl add-log failed" "$LOGS/litewitness.log"
fi
if ! "$BIN/witnessctl" list-logs -db "$LITE_DB" 2>/dev/null | grep -qF "\"$LOGKEY\""; then
	"$BIN/witnessctl" add-key -db "$LITE_DB" -origin "$ORIGIN" -key "$LOGKEY" 2>>"$LOGS/litewitness.log" || die_with_log "witnessctl add-key failed" "$LOGS/litewitness.log"
fi
LITE_NAME_FILE=$KEYS/litewitness.name
[[ -s $LITE_NAME_FILE ]] || echo "witness.localhost/litewitness-$(od -An -N4 -tx1 /dev/urandom | tr -d ' \n')" >"$LITE_NAME_FILE"
log "starting litewitness on 127.0.0.1:$LITE_PORT"
start_bg litewitness "$BIN/litewitness" -name "$(cat "$LITE_NAME_FILE")" -db "$LITE_DB" -ssh-agent "$AGENT_SOCK" \
	-key "$FINGERPRINT" -listen "127.0.0.1:$LITE_PORT"

wait_until omniwitness "$LOGS/omniwitness.log" "$RUN/omniwitness.pid" answers "$OMNI_PORT"
wait_until litewitness "$LOGS/litewitness.log" "$RUN/litewitness.pid" answers "$LITE_PORT"
# litewitness logs its verifier key when it starts (the last start is the
# one that counts).
lite_vkey() { grep -o 'vkey=[^ ]*' "$LOGS/litewitness.log" | tail -n 1 | cut -d= -f2- | tr -d '"'; }
LITE_VKEY=$(lite_vkey)
[[ -n $LITE_VKEY ]] || die_with_log "litewitness did not log its verifier key" "$LOGS/litewitness.log"

# ---- policy and settings ----------------------------------------------------------------
OMNI_URL=http://127.0.0.1:$OMNI_PORT
LITE_URL=http://127.0.0.1:$LITE_PORT
POLICY=$W/policy.txt
cat >"$POLICY.tmp" <<EOF
# Witness policy for $ORIGIN, written by deploy/witness/up.sh.
log $LOGKEY
witness omniwitness $OMNI_VKEY $OMNI_URL
witness litewitness $LITE_VKEY $LITE_URL
group local 2 omniwitness litewitness
quorum local
EOF
mv "$POLICY.tmp" "$POLICY"
cat >"$W/env.tmp" <<EOF
POLICY=$POLICY
OMNIWITNESS_URL=$OMNI_URL
LITEWITNESS_URL=$LITE_URL
WITNESS_BIN=$BIN
EOF
mv "$W/env.tmp" "$W/env"
SUCCESS=1
log "up in ${SECONDS}s; logs in $LOGS; stop with: $HERE/down.sh $W"
cat "$W/env"
