#!/usr/bin/env bash
# Index-scale benchmark: a small directory backed up into a repository of ten
# million blobs, then check and check --read-data of that repository.
#   bench/index-scale.sh OUT        (BLOBS=10000000 PER_PACK=16 SIZE=64M WORK=/tmp/bench/index-scale PHASES=...)
# The repository is written once by `cargo bench --bench scale_repo` (real sealed
# blobs of 16 bytes, PER_PACK to a pack, index files as a backup writes them, one
# snapshot reaching all) and kept in WORK for later runs; the small directory is a
# seeded data set of SIZE, made anew on every run. cairn alone: the peers cannot open a synthetic cairn
# repository, and making them one of ten million blobs from files takes hours.
# The cache (where cairn keeps its index table) is WORK/cairn/cache, so its size
# is the table's ("cache MiB").
set -eu
here=$(cd "$(dirname "$0")" && pwd)
shared=${SHARED_BENCH:-$here/../../shared/bench}
out=${1:?out dir}
work=${WORK:-/tmp/bench/index-scale}
repo=$work/cairn/repo
mkdir -p "$work/cairn" "$out"
if [ ! -d "$repo" ]; then
  CAIRN_BENCH_REPO=$repo CAIRN_BENCH_BLOBS=${BLOBS:-10000000} CAIRN_BENCH_PER_PACK=${PER_PACK:-16} \
    cargo bench --manifest-path "$here/../Cargo.toml" --bench scale_repo
fi
data=$work/small
rm -rf "$data"
python3 "$shared/gen-dataset.py" generate "$data" --size "${SIZE:-64M}" --seed 7
rm -rf "$work/cairn/cache"
PHASES=${PHASES:-"backup1 backup2 mutate backup3 check check_read"} WORK=$work \
  bash -c 'source "$1"; shift; source "$0" "$@"' "$shared/peers.sh" "$here/cairn-adapter.sh" "$data" "$out" cairn
python3 "$shared/report.py" "$out/results.tsv"
