#!/usr/bin/env bash
# Index-scale benchmark beside restic and rustic: a million small files (a
# million blobs in every tool), backed up twice with a fifth of the files
# rewritten in between, then forget --keep-last 1, prune twice and check.
#   bench/scale.sh DATASET OUT [TOOLS...]     (default: restic rustic cairn)
# DATASET is created with bench/gen-many.py if missing (FILES=1000000).
set -eu
here=$(cd "$(dirname "$0")" && pwd)
shared=${SHARED_BENCH:-$here/../../shared/bench}
data=${1:?dataset dir}; out=${2:?out dir}; shift 2
tools=("$@"); [ ${#tools[@]} -eq 0 ] && tools=(restic rustic cairn)
[ -d "$data" ] || python3 "$here/gen-many.py" generate "$data" --files "${FILES:-1000000}"
run() {
  PHASES=$1 bash -c 'source "$1"; source "$2"; shift 2; source "$0" "$@"' \
    "$shared/peers.sh" "$here/cairn-adapter.sh" "$here/scale-adapters.sh" "$data" "$out" "${tools[@]}"
}
run "init backup1"
python3 "$here/gen-many.py" mutate "$data" --every 5 | tee "$out/mutate.txt"
run "backup2 check forget prune prune2 check"
python3 "$shared/report.py" "$out/results.tsv"
