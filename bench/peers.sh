#!/usr/bin/env bash
# Runs shared/bench/peers.sh with cairn's adapter loaded.
#   bench/peers.sh DATASET OUT restic rustic cairn
# SHARED_BENCH points at shared/bench (default: ../shared/bench beside this checkout).
set -u
here=$(cd "$(dirname "$0")" && pwd)
shared=${SHARED_BENCH:-$here/../../shared/bench}
[ -f "$shared/peers.sh" ] || { echo "peers.sh not found in $shared (set SHARED_BENCH)"; exit 2; }
# $0 of the inner shell is peers.sh itself, so it finds gen-dataset.py beside it.
exec bash -c 'source "$1"; shift; source "$0" "$@"' "$shared/peers.sh" "$here/cairn-adapter.sh" "$@"
