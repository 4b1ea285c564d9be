# Extra phases for bench/scale.sh: forget and prune (twice) for each tool.
# cairn's prune deletes in two phases: the first run marks unused packs, the
# second (with --instant-delete, as the grace period has not passed) deletes
# them; restic deletes at once; rustic's defaults mark and delete later too.
restic_forget() { CMD=(restic -r "$1" forget --keep-last 1); }
restic_prune()  { CMD=(restic -r "$1" prune); }
restic_prune2() { CMD=(restic -r "$1" prune); }
rustic_forget() { CMD=(rustic -r "$1" --no-progress forget --keep-last 1); }
rustic_prune()  { CMD=(rustic -r "$1" --no-progress prune); }
rustic_prune2() { CMD=(rustic -r "$1" --no-progress prune); }
cairn_forget()  { CMD=("$CAIRN" -r "$1" -q forget --keep-last 1); }
cairn_prune()   { CMD=("$CAIRN" -r "$1" -q prune); }
cairn_prune2()  { CMD=("$CAIRN" -r "$1" -q prune --instant-delete); }
