# cairn's adapter for shared/bench/peers.sh (see the top of that script).
# CAIRN may name the binary to measure; default: target/release/cairn of this checkout.
CAIRN=${CAIRN:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/target/release/cairn}
cairn_version()    { "$CAIRN" --version; }
# The cache (the local index table) under WORK/cairn/cache, measured as the peers' caches are.
cairn_env()        { export CAIRN_PASSWORD=$PASSWORD XDG_CACHE_HOME=$WORK/cairn/cache; unset CAIRN_REPOSITORY; }
cairn_init()       { CMD=("$CAIRN" -r "$1" init); }
cairn_backup()     { CWD=$2; CMD=("$CAIRN" -r "$1" -q backup --host bench --tag "$4" "$3"); }
cairn_restore()    { CMD=("$CAIRN" -r "$1" -q restore latest --host bench --target "$2"); }
cairn_check()      { CMD=("$CAIRN" -r "$1" -q check); }
cairn_check_read() { CMD=("$CAIRN" -r "$1" -q check --read-data); }
