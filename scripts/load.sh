#!/usr/bin/env bash
# Load check (not a timed test): 16 workers write, read back and verify files of mixed sizes
# (1 KiB to 4 MiB) through one mount for a bounded time, against a local S3 server. Reports the
# operations done, errors (must be 0), and the daemon's peak memory, which must stay within the
# memory budget (--max-memory, passed to the mount) + 64 MiB.
#   scripts/load.sh [--seconds N] [--workers N] [--max-memory MIB]
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_LIMIT=60
WORKERS=16
MAX_MEMORY_MIB=256
while [ $# -gt 0 ]; do
  case "$1" in
    --seconds) SECONDS_LIMIT=$2; shift 2 ;;
    --workers) WORKERS=$2; shift 2 ;;
    --max-memory) MAX_MEMORY_MIB=$2; shift 2 ;;
    *) echo "usage: $0 [--seconds N] [--workers N] [--max-memory MIB]" >&2; exit 2 ;;
  esac
done
bash scripts/setup.sh >/dev/null
cargo build --release --quiet
WORK=$(mktemp -d); MNT=$WORK/mnt; mkdir -p "$MNT" "$WORK/results"
PORT=$(.venv/bin/python -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
export AWS_ACCESS_KEY_ID=load AWS_SECRET_ACCESS_KEY=load-secret AWS_REGION=us-east-1
cleanup() {
  if grep -q " $MNT " /proc/self/mountinfo 2>/dev/null; then
    fusermount3 -u "$MNT" 2>/dev/null || { sleep 2; fusermount3 -u "$MNT" 2>/dev/null; } || fusermount3 -u -z "$MNT" || true
  fi
  [ -n "${SERVER:-}" ] && kill "$SERVER" 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT
.venv/bin/moto_server -H 127.0.0.1 -p "$PORT" >/dev/null 2>&1 & SERVER=$!
for _ in $(seq 100); do (echo > /dev/tcp/127.0.0.1/"$PORT") 2>/dev/null && break; sleep 0.1; done
.venv/bin/python -c "import boto3; boto3.client('s3', endpoint_url='http://127.0.0.1:$PORT').create_bucket(Bucket='load')"
target/release/cosmount load "$MNT" --endpoint-url "http://127.0.0.1:$PORT" --force-path-style --log-file "$WORK/cosmount.log" \
  --max-memory "${MAX_MEMORY_MIB}M"
PID=$(pgrep -n -f -- "cosmount load $MNT")

# Each worker is its own bash process (no inherited traps): write, read back, compare, delete.
WORKER='
id=$1; limit=$2; mnt=$3; work=$4; workers=$5
end=$((SECONDS + limit)); n=0; errors=0
mkdir -p "$mnt/w$id"
while [ $SECONDS -lt $end ]; do
  size=$(( (RANDOM * RANDOM) % (4 * 1024 * 1024) + 1024 ))
  f="$mnt/w$id/f$n"
  head -c "$size" /dev/urandom > "$work/results/src-$id"
  cp "$work/results/src-$id" "$f" || errors=$((errors + 1))
  cmp -s "$work/results/src-$id" "$f" || errors=$((errors + 1))
  ls "$mnt/w$(( (id + 1) % workers ))" >/dev/null 2>&1 || true
  if [ $((n % 5)) -eq 4 ]; then rm -f "$mnt/w$id/f$((n - 4))" || errors=$((errors + 1)); fi
  n=$((n + 1))
done
echo "$n $errors" > "$work/results/w$id"
'
echo "load: $WORKERS workers for ${SECONDS_LIMIT}s on $(nproc) cores, --max-memory ${MAX_MEMORY_MIB}M"
pids=()
for i in $(seq 0 $((WORKERS - 1))); do
  bash -c "$WORKER" _ "$i" "$SECONDS_LIMIT" "$MNT" "$WORK" "$WORKERS" & pids+=($!)
done
wait "${pids[@]}"
ops=0; errors=0
for i in $(seq 0 $((WORKERS - 1))); do read -r n e < "$WORK/results/w$i"; ops=$((ops + n)); errors=$((errors + e)); done
hwm=$(grep VmHWM /proc/"$PID"/status | awk '{print $2}')
echo "load: $ops files written and verified, $errors errors, daemon peak RSS $((hwm / 1024)) MiB (budget ${MAX_MEMORY_MIB} MiB + 64)"
grep -c ' ERROR ' "$WORK/cosmount.log" | sed 's/^/load: ERROR lines in the log: /' || true
[ "$errors" -eq 0 ] || { echo "load: FAILED: $errors errors" >&2; exit 1; }
[ $((hwm / 1024)) -le $((MAX_MEMORY_MIB + 64)) ] || { echo "load: FAILED: peak RSS over the budget + 64 MiB" >&2; exit 1; }
