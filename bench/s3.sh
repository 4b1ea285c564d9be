#!/usr/bin/env bash
# Backup, restore and check throughput with the repositories on a local S3
# server (SeaweedFS `weed mini` on 127.0.0.1), cairn beside restic and rustic.
#   bench/s3.sh DATASET OUT      (DATASET from ../shared/bench/gen-dataset.py)
# WEED names the weed binary (default: weed on PATH).
set -eu
here=$(cd "$(dirname "$0")" && pwd)
shared=${SHARED_BENCH:-$here/../../shared/bench}
data=${1:?dataset dir}; out=${2:?out dir}
work=${WORK:-/tmp/bench/work-s3}
rm -rf "$work/weed"; mkdir -p "$work/weed/data"
export AWS_ACCESS_KEY_ID=benchkey AWS_SECRET_ACCESS_KEY=benchsecret0123456789 AWS_REGION=us-east-1
cat > "$work/weed/s3.json" <<JSON
{"identities":[{"name":"bench","credentials":[{"accessKey":"$AWS_ACCESS_KEY_ID","secretKey":"$AWS_SECRET_ACCESS_KEY"}],"actions":["Admin","Read","Write","List","Tagging"]}]}
JSON
port=${S3_PORT:-18433}
"${WEED:-weed}" mini -dir="$work/weed/data" -ip=127.0.0.1 -ip.bind=127.0.0.1 \
  -bucket=bench-restic,bench-rustic,bench-cairn -s3.config="$work/weed/s3.json" -s3.port="$port" \
  -master.port=$((port + 1000)) -volume.port=$((port + 2000)) -filer.port=$((port + 3000)) \
  -admin.ui=false -webdav=false -master.telemetry=false -s3.port.iceberg=0 -s3.port.lance=0 \
  > "$work/weed/log" 2>&1 &
weed_pid=$!
trap 'kill $weed_pid 2>/dev/null' EXIT
export S3_ENDPOINT=http://127.0.0.1:$port AWS_ENDPOINT_URL=http://127.0.0.1:$port
for _ in $(seq 1 60); do curl -s -o /dev/null "$S3_ENDPOINT" && break; sleep 1; done
WORK=$work PHASES=${PHASES:-"init backup1 backup2 restore check check_read"} \
  bash -c 'source "$1"; source "$2"; shift 2; source "$0" "$@"' \
  "$shared/peers.sh" "$here/cairn-adapter.sh" "$here/s3-adapters.sh" "$data" "$out" restics3 rustics3 cairns3
python3 "$shared/report.py" "$out/results.tsv"
