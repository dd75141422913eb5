#!/usr/bin/env bash
# build.sh
#
# Builds the witnesses that up.sh runs, once: transparency-dev/witness's
# omniwitness and generate_keys (at the pinned pseudo-version, with the
# machine's Go), and torchwood's litewitness and witnessctl with
# verifyproof (torchwood's tlog-proof verifier), with Go 1.27.3 from the
# tools module beside this script. The binaries go to a cache folder that
# outlives WORKDIRs, keyed by the versions and the tools module, so that a
# second build costs nothing. Prints the cache's bin folder on stdout.
#
# Environment:
#   UNDERSIGNED_WITNESS_CACHE=DIR  the cache (default: $XDG_CACHE_HOME or
#                                  ~/.cache, then undersigned/witness)
#
# Cold (empty Go build cache), on the 2-core machines of this project: 130 s
# of CPU, 6.5 min of wall time on a busy shared machine (2026-11-29); both
# witnesses compile a pure-Go SQLite, most of the time, and Go 1.27.3 (76 MB)
# is fetched from the module proxy first. Warm: nothing.
set -euo pipefail

# The witness module has no tags: its newest pseudo-version, which builds
# with the machine's Go and runs offline.
WITNESS_VERSION=v0.0.0-20260720115447-2e1c6971d19e
TORCHWOOD_TOOLCHAIN=go1.27.3

log() { printf 'build.sh: %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
CACHE=${UNDERSIGNED_WITNESS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/undersigned/witness}
mkdir -p "$CACHE"
CACHE=$(cd "$CACHE" && pwd)

# The key: versions and the tools module's files.
key=$( (echo "$WITNESS_VERSION $TORCHWOOD_TOOLCHAIN"; cd "$HERE/tools" && find . -type f \( -name '*.go' -o -name 'go.mod' -o -name 'go.sum' \) | LC_ALL=C sort | xargs cat) | sha256sum | cut -c1-16)
BIN=$CACHE/$key/bin
mkdir -p "$CACHE/$key"

# One build at a time per cache.
exec 8>>"$CACHE/.lock"
flock -w 900 8 || die "another build holds $CACHE/.lock"

want=(omniwitness generate_keys litewitness witnessctl verifyproof)
have() {
	local b
	for b in "${want[@]}"; do [[ -x $BIN/$b ]] || return 1; done
}
if have; then
	echo "$BIN"
	exit 0
fi

tmp=$(mktemp -d "$CACHE/$key/build.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
start=$SECONDS

log "building omniwitness and generate_keys ($WITNESS_VERSION)"
GOBIN=$tmp GOFLAGS=-buildvcs=false go install \
	"github.com/transparency-dev/witness/cmd/omniwitness@$WITNESS_VERSION" \
	"github.com/transparency-dev/witness/cmd/generate_keys@$WITNESS_VERSION" >&2 ||
	die "go install of omniwitness failed"

log "building litewitness, witnessctl and verifyproof ($TORCHWOOD_TOOLCHAIN)"
(cd "$HERE/tools" && GOTOOLCHAIN=$TORCHWOOD_TOOLCHAIN GOFLAGS=-buildvcs=false go build -o "$tmp/" \
	filippo.io/torchwood/cmd/litewitness filippo.io/torchwood/cmd/witnessctl ./verifyproof) >&2 ||
	die "go build of the torchwood tools failed"

rm -rf "$BIN"
mv "$tmp" "$BIN"
trap - EXIT
have || die "the build left some binaries out of $BIN"
log "built in $((SECONDS - start))s into $BIN"
echo "$BIN"
