#!/usr/bin/env bash
# End-to-end demo on a fresh machine: installs what is missing, builds cosmount, starts a local
# S3 server, fills a bucket with a small tree, mounts it, looks at it with ordinary tools,
# unmounts, stops the server. Everything runs on 127.0.0.1 and is cleaned up at the end.
set -euo pipefail
cd "$(dirname "$0")/.."
say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

say "Installing what is missing (fuse3, attr, rsync, moto 5.2.5 in .venv)"
bash scripts/setup.sh

say "Building cosmount (release)"
cargo build --release --quiet
BIN=$PWD/target/release/cosmount

WORK=$(mktemp -d)
MNT=$WORK/mnt
mkdir -p "$MNT"
PORT=$(.venv/bin/python -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
ENDPOINT=http://127.0.0.1:$PORT
export AWS_ACCESS_KEY_ID=demo AWS_SECRET_ACCESS_KEY=demo-secret AWS_REGION=us-east-1

cleanup() {
  if grep -q " $MNT " /proc/self/mountinfo 2>/dev/null; then fusermount3 -u "$MNT" || true; fi
  [ -n "${SERVER_PID:-}" ] && kill "$SERVER_PID" 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

say "Starting the local S3 server (moto) on $ENDPOINT"
.venv/bin/moto_server -H 127.0.0.1 -p "$PORT" >"$WORK/server.log" 2>&1 &
SERVER_PID=$!
for _ in $(seq 100); do
  (echo > /dev/tcp/127.0.0.1/"$PORT") 2>/dev/null && break
  sleep 0.1
done

say "Creating bucket demo-bucket with a small sample tree (through the S3 API)"
.venv/bin/python - "$ENDPOINT" <<'PY'
import sys, boto3
s3 = boto3.client("s3", endpoint_url=sys.argv[1], region_name="us-east-1")
s3.create_bucket(Bucket="demo-bucket")
tree = {
    "README.txt": b"Objects in demo-bucket, seen as files.\n",
    "reports/2026/q1.csv": b"month,revenue\njan,10\nfeb,12\nmar,15\n",
    "reports/2026/q2.csv": b"month,revenue\napr,11\nmay,13\njun,17\n",
    "images/": b"",  # a folder made by a console: a marker object
    "logs/app.log": b"".join(b"line %d\n" % i for i in range(2000)),
    "empty.dat": b"",
}
for key, body in tree.items():
    s3.put_object(Bucket="demo-bucket", Key=key, Body=body)
    print(f"  put s3://demo-bucket/{key} ({len(body)} bytes)")
PY

say "Mounting: cosmount demo-bucket $MNT --endpoint-url $ENDPOINT --force-path-style"
"$BIN" demo-bucket "$MNT" --endpoint-url "$ENDPOINT" --force-path-style
echo "cosmount returned $?: the mount is live"
grep " $MNT " /proc/self/mountinfo

say "ls -lR $MNT"
ls -lR "$MNT"

say "cat $MNT/reports/2026/q1.csv"
cat "$MNT/reports/2026/q1.csv"

say "stat $MNT/logs/app.log"
stat "$MNT/logs/app.log"

say "tail -n 3 $MNT/logs/app.log (a ranged read near the end)"
tail -n 3 "$MNT/logs/app.log"

say "Unmounting with fusermount3 -u $MNT"
fusermount3 -u "$MNT"
for _ in $(seq 50); do pgrep -f "cosmount demo-bucket $MNT" >/dev/null || break; sleep 0.1; done
if grep -q " $MNT " /proc/self/mountinfo; then echo "still mounted!"; exit 1; fi
echo "unmounted; the daemon has exited"

say "Stopping the local S3 server; demo done"
