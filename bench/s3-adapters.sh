# Adapters for bench/s3.sh: the three tools with their repositories in
# buckets of one local S3 server (endpoint S3_ENDPOINT, credentials in the
# AWS_* environment). Repository sizes are not measured (they are not local
# directories).
s3r()            { echo "s3:$S3_ENDPOINT/bench-restic"; }
restics3_version()   { restic version | head -1; }
restics3_env()       { export RESTIC_PASSWORD=$PASSWORD RESTIC_CACHE_DIR=$WORK/restics3/cache; }
restics3_init()      { CMD=(restic -r "$(s3r)" init); }
restics3_backup()    { CWD=$2; CMD=(restic -r "$(s3r)" backup --host bench --tag "$4" "$3"); }
restics3_restore()   { CMD=(restic -r "$(s3r)" restore latest --host bench --target "$2"); }
restics3_check()     { CMD=(restic -r "$(s3r)" check); }
restics3_check_read() { CMD=(restic -r "$(s3r)" check --read-data); }

# rustic reads its S3 options from a profile.
rustics3_version()   { rustic --version; }
rustics3_env() {
  export RUSTIC_CACHE_DIR=$WORK/rustics3/cache XDG_CONFIG_HOME=$WORK/rustics3/config
  mkdir -p "$XDG_CONFIG_HOME/rustic"
  cat > "$XDG_CONFIG_HOME/rustic/s3bench.toml" <<TOML
[repository]
repository = "opendal:s3"
password = "$PASSWORD"
[repository.options]
endpoint = "$S3_ENDPOINT"
bucket = "bench-rustic"
root = "/"
region = "$AWS_REGION"
access_key_id = "$AWS_ACCESS_KEY_ID"
secret_access_key = "$AWS_SECRET_ACCESS_KEY"
TOML
}
rustics3_init()      { CMD=(rustic -P s3bench --no-progress init); }
rustics3_backup()    { CWD=$2; CMD=(rustic -P s3bench --no-progress backup --host bench --tag "$4" "$3"); }
rustics3_restore()   { CMD=(rustic -P s3bench --no-progress restore latest "$2"); }
rustics3_check()     { CMD=(rustic -P s3bench --no-progress check); }
rustics3_check_read() { CMD=(rustic -P s3bench --no-progress check --read-data); }

cairns3_version()    { "$CAIRN" --version; }
cairns3_env()        { export CAIRN_PASSWORD=$PASSWORD CAIRN_CACHE_DIR=$WORK/cairns3/cache; unset CAIRN_REPOSITORY; }
cairns3_init()       { CMD=("$CAIRN" -r s3://bench-cairn/repo init); }
cairns3_backup()     { CWD=$2; CMD=("$CAIRN" -r s3://bench-cairn/repo -q backup --host bench --tag "$4" "$3"); }
cairns3_restore()    { CMD=("$CAIRN" -r s3://bench-cairn/repo -q restore latest --host bench --target "$2"); }
cairns3_check()      { CMD=("$CAIRN" -r s3://bench-cairn/repo -q check); }
cairns3_check_read() { CMD=("$CAIRN" -r s3://bench-cairn/repo -q check --read-data); }
