#!/usr/bin/env bash
# POSIX conformance: runs the public pjdfstest suite against a fresh cosmount mount of a new
# bucket on a local moto server, and prints the per-directory table the README carries.
#
#   scripts/pjdfstest.sh [--min N] [TESTDIR...]
#
# The suite is not part of this repository: its source is taken from $PJDFSTEST_SRC (default
# ../shared/pjdfstest beside the repository, else /work/shared/pjdfstest: pjdfstest-src.tar.gz
# with its build.sh and run.sh)
# and built once into target/pjdfstest. TESTDIR defaults to the 13 directories of run.sh (open
# unlink rename mkdir rmdir truncate ftruncate chmod chown utimensat symlink link mkfifo: 8 590
# assertions). Runs as root (the suite switches uids); the mount uses --allow-other.
#
# Output: one line per directory (`DIR: N passed, N failed`), the total, and a Markdown table in
# target/pjdfstest/results.md; the failing assertions go to target/pjdfstest/failures.txt.
# Exit status: 0 if the suite ran and (with --min) at least N assertions passed; 1 if fewer
# passed; 2 if it could not run (no suite source, not root, build or mount failed).
# Everything it starts (moto, the daemon, the mount) is stopped when it ends, however it ends.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

MIN=0
DIRS=()
while [ $# -gt 0 ]; do
  case "$1" in
    --min) MIN="${2:?--min needs a number}"; shift ;;
    --min=*) MIN="${1#--min=}" ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    -*) echo "pjdfstest: unknown option $1 (usage: scripts/pjdfstest.sh [--min N] [TESTDIR...])" >&2; exit 2 ;;
    *) DIRS+=("$1") ;;
  esac
  shift
done

SRC=${PJDFSTEST_SRC:-$ROOT/../shared/pjdfstest}
[ -f "$SRC/pjdfstest-src.tar.gz" ] || [ -n "${PJDFSTEST_SRC:-}" ] || SRC=/work/shared/pjdfstest
if [ ! -f "$SRC/pjdfstest-src.tar.gz" ] || [ ! -x "$SRC/build.sh" ] || [ ! -x "$SRC/run.sh" ]; then
  echo "pjdfstest: no suite at $SRC (pjdfstest-src.tar.gz, build.sh, run.sh); set PJDFSTEST_SRC" >&2
  exit 2
fi
[ "$(id -u)" -eq 0 ] || { echo "pjdfstest: run as root (the suite switches uids and gids)" >&2; exit 2; }

need=()
for tool in autoreconf:autoconf automake:automake libtoolize:libtool pkg-config:pkg-config make:build-essential cc:build-essential perl:perl; do
  command -v "${tool%%:*}" >/dev/null || need+=("${tool#*:}")
done
[ -e /usr/include/openssl/evp.h ] || need+=(libssl-dev)
if [ ${#need[@]} -gt 0 ]; then
  echo "pjdfstest: installing ${need[*]} with apt-get"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(printf '%s\n' "${need[@]}" | sort -u) >/dev/null
fi
bash scripts/setup.sh
cargo build --release --quiet
TARGET=${CARGO_TARGET_DIR:-target}
case $TARGET in /*) ;; *) TARGET=$ROOT/$TARGET ;; esac
BIN=$TARGET/release/cosmount
OUT=$ROOT/target/pjdfstest
mkdir -p "$OUT"
SUITE=$("$SRC/build.sh" "$OUT/suite" | tail -1) || { echo "pjdfstest: the suite did not build (see $OUT/suite/build.log)" >&2; exit 2; }

WORK=$(mktemp -d /tmp/cosmount-pjdfstest.XXXXXX)
MNT=$WORK/mnt
mkdir -p "$MNT"
SERVER_PID=""
cleanup() {
  local rc=$?
  cd /
  if awk -v m="$MNT" '$5 == m { f = 1 } END { exit !f }' /proc/self/mountinfo; then
    fusermount3 -u "$MNT" 2>/dev/null || fusermount3 -u -z "$MNT" 2>/dev/null || true
  fi
  for _ in $(seq 50); do pgrep -f "cosmount .*$MNT" >/dev/null || break; sleep 0.1; done
  pkill -KILL -f "cosmount .*$MNT" 2>/dev/null || true
  exec 7>&- || true # moto stops when its standard input closes
  [ -n "$SERVER_PID" ] && { kill "$SERVER_PID" 2>/dev/null || true; wait "$SERVER_PID" 2>/dev/null || true; }
  cp "$WORK/cosmount.log" "$OUT/cosmount.log" 2>/dev/null || true
  rm -rf --one-file-system "$WORK"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# Credentials for the local server only.
unset IBM_API_KEY_ID IBM_SERVICE_INSTANCE_ID IBM_AUTH_ENDPOINT COS_CREDENTIALS_FILE AWS_PROFILE AWS_SESSION_TOKEN
export AWS_ACCESS_KEY_ID=pjdfstest AWS_SECRET_ACCESS_KEY=pjdfstest-secret AWS_REGION=us-east-1
export AWS_SHARED_CREDENTIALS_FILE=/dev/null AWS_CONFIG_FILE=/dev/null

mkfifo "$WORK/moto.stdin"
.venv/bin/python tests/support/moto_server.py <"$WORK/moto.stdin" >"$WORK/moto.port" 2>"$WORK/moto.log" &
SERVER_PID=$!
exec 7>"$WORK/moto.stdin"
for _ in $(seq 300); do grep -q '^PORT ' "$WORK/moto.port" && break; sleep 0.1; done
grep -q '^PORT ' "$WORK/moto.port" || { echo "pjdfstest: moto did not start" >&2; exit 2; }
ENDPOINT="http://127.0.0.1:$(awk '/^PORT / { print $2 }' "$WORK/moto.port")"
.venv/bin/python -c 'import boto3, sys; boto3.client("s3", endpoint_url=sys.argv[1]).create_bucket(Bucket="pjdfstest")' "$ENDPOINT"

"$BIN" --endpoint-url "$ENDPOINT" --force-path-style --allow-other --log-file "$WORK/cosmount.log" pjdfstest "$MNT" \
  || { echo "pjdfstest: the mount failed (see $OUT/cosmount.log)" >&2; exit 2; }
echo "pjdfstest: $SUITE against cosmount $("$BIN" --version | awk '{ print $2 }') on moto ($ENDPOINT), mounted at $MNT"

START=$(date +%s)
PJD_LOG=$OUT/failures.txt
: >"$PJD_LOG"
PJDFSTEST_DIR=$SUITE PJD_LOG=$PJD_LOG "$SRC/run.sh" "$MNT" "${DIRS[@]}" | tee "$OUT/run.txt"
SECS=$(($(date +%s) - START))

# The table: every directory line of run.sh, then the total.
{
  echo "| directory | passed / total |"
  echo "|---|---|"
  sed -n 's/^\([a-z]*\): \([0-9]*\) passed, \([0-9]*\) failed.*/\1 \2 \3/p' "$OUT/run.txt" |
    while read -r d p f; do echo "| $d | $p / $((p + f)) |"; done
  sed -n 's/^\([0-9]*\) passed, \([0-9]*\) failed$/\1 \2/p' "$OUT/run.txt" |
    while read -r p f; do echo "| **total** | **$p / $((p + f))** |"; done
} >"$OUT/results.md"
echo
cat "$OUT/results.md"
echo "(${SECS} s; failing assertions in $PJD_LOG)"
PASSED=$(sed -n 's/^\([0-9]*\) passed, [0-9]* failed$/\1/p' "$OUT/run.txt" | tail -1)
[ -n "$PASSED" ] || { echo "pjdfstest: the suite printed no total" >&2; exit 2; }
if [ "$PASSED" -lt "$MIN" ]; then
  echo "pjdfstest: $PASSED assertions passed, fewer than the $MIN required" >&2
  exit 1
fi
