#!/usr/bin/env bash
# Benchmarks cosmount the way /work/shared/BENCH.md says: ratios taken in one run, on the same data,
# against the same local S3 server, for a raw aws-sdk-s3 client (the practical limit) and, in full
# mode, for the peers s3fs and rclone mount (installed with apt-get if missing).
#
#   scripts/bench.sh [--quick] [--label NAME]
#
# Workloads, each for every system in turn (raw client first):
#   seq_write      a SIZE random file: raw multipart upload vs `cp big MNT/` (timed until the object is
#                  stored: `cp` returning, including close, and, for write-back peers, the upload after)
#   seq_read_cold  that object, page cache dropped, fresh mount: raw parallel ranged GETs vs `cat`
#   small_write    FILES x 32 KiB files in 50 directories: raw PUTs (32 in flight) vs `cp -r`
#   small_read     the same files after a remount, cache dropped: raw LIST + GETs vs `find | cat`
# Reads use the objects the raw client wrote (the same bytes for everyone); every system's writes go
# to a bucket of its own and are checked through the S3 API (size and MD5 / byte-for-byte `diff`).
# Full mode: 1 GiB and 1 000 files; --quick: 32 MiB and 100 files, cosmount only (CI smoke run).
# Median of BENCH_REPS (default 3) runs. Peak RSS is VmHWM of each mount daemon.
#
# Everything listens on 127.0.0.1 only; data lives under bench/work/ and is deleted at the end;
# mounts and servers are cleaned up on any exit. Results: bench/results/<date>-<label>.{md,json}.
# Exit 0 only if every check of the raw client and of cosmount passed (peers' failures are reported
# in the table, not fatal). Needs fuse3 (scripts/setup.sh), cargo and root for dropping caches
# (without root the read figures are marked "warm").
#
# Overrides (for experiments): BENCH_REPS, BENCH_SYSTEMS ("cosmount s3fs rclone"), BENCH_BIG_MIB,
# BENCH_FILES, BENCH_KEEP=1 (keep bench/work/ and logs).
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$PWD

QUICK=0
LABEL=""
while [ $# -gt 0 ]; do
  case "$1" in
    --quick) QUICK=1 ;;
    --label) LABEL="${2:?--label needs a name}"; shift ;;
    --label=*) LABEL="${1#--label=}" ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "bench: unknown argument $1 (usage: scripts/bench.sh [--quick] [--label NAME])" >&2; exit 2 ;;
  esac
  shift
done
if [ "$QUICK" = 1 ]; then
  MODE=quick; BIG_MIB=${BENCH_BIG_MIB:-32}; FILES=${BENCH_FILES:-100}; SYSTEMS=${BENCH_SYSTEMS:-cosmount}
  CMD_TIMEOUT=120
else
  MODE=full; BIG_MIB=${BENCH_BIG_MIB:-1024}; FILES=${BENCH_FILES:-1000}; SYSTEMS=${BENCH_SYSTEMS:-cosmount s3fs rclone}
  CMD_TIMEOUT=900
fi
LABEL=${LABEL:-$MODE}
case "$LABEL" in *[!A-Za-z0-9._-]*) echo "bench: --label may only use A-Z a-z 0-9 . _ -" >&2; exit 2 ;; esac
REPS=${BENCH_REPS:-3}
FILE_SIZE=32768
DIRS=50
BIG_BYTES=$((BIG_MIB * 1024 * 1024))
# The raw client's settings: the best of a sweep on this machine (see bench/README.md).
RAW_PART_MIB=8; RAW_PUT_CONC=8; RAW_RANGE_MIB=8; RAW_GET_CONC=8; RAW_SMALL_CONC=32

log() { printf 'bench: %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

# ---------------------------------------------------------------------------------------------
# State, cleanup
WORK="$REPO/bench/work/run-$$"
LOGS="$WORK/logs"
SERVER_PID=""
declare -a MOUNTPOINTS=()
declare -A DAEMON=()      # mountpoint -> daemon pid
declare -A FIG=() RUNS=() STATUS=() NOTE=() RSS=() RSS_GROUP=()
FAILED_CORE=0             # a check of raw or cosmount failed

is_mounted() { awk -v m="$1" '$5 == m { found = 1 } END { exit !found }' /proc/self/mountinfo; }

cleanup() {
  local rc=$?
  set +e
  trap - EXIT INT TERM
  for m in "${MOUNTPOINTS[@]}"; do
    if is_mounted "$m"; then
      fusermount3 -u "$m" 2>/dev/null || umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null
    fi
    local pid=${DAEMON[$m]:-}
    if [ -n "$pid" ] && [ -d "/proc/$pid" ] && tr '\0' '\n' <"/proc/$pid/cmdline" 2>/dev/null | grep -qxF -- "$m"; then
      kill "$pid" 2>/dev/null
    fi
  done
  if [ -n "$SERVER_PID" ]; then kill "$SERVER_PID" 2>/dev/null; wait "$SERVER_PID" 2>/dev/null; fi
  if [ "$rc" -ne 0 ] && [ -d "$LOGS" ]; then
    for f in "$LOGS"/*; do
      [ -s "$f" ] || continue
      log "---- last lines of $(basename "$f")"; tail -n 15 "$f" | cut -c1-300 >&2
    done
  fi
  if [ "${BENCH_KEEP:-0}" = 1 ]; then
    log "kept $WORK (BENCH_KEEP=1)"
  else
    rm -rf "$WORK"; rmdir "$REPO/bench/work" 2>/dev/null
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# ---------------------------------------------------------------------------------------------
# Small helpers
jget() { sed -n "s/.*\"$2\":\"\{0,1\}\([^,\"}]*\).*/\1/p" <<<"$1"; }       # field of a flat JSON object
calc() { awk "BEGIN { printf \"%.${2:-1}f\", $1 }"; }
median() { printf '%s\n' "$@" | sort -g | awk '{ a[NR] = $1 } END { if (NR % 2) print a[(NR + 1) / 2]; else printf "%.1f\n", (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }
secs_since() { calc "${EPOCHREALTIME} - $1" 4; }
json_str() { local s=${1//\\/\\\\}; s=${s//\"/\\\"}; s=${s//$'\n'/ }; printf '"%s"' "$s"; }

COLD=1
drop_caches() {
  sync
  if [ "$COLD" = 1 ] && ! { echo 3 >/proc/sys/vm/drop_caches; } 2>/dev/null; then
    COLD=0
    log "cannot write /proc/sys/vm/drop_caches (not root?): read figures are not cold"
  fi
}

raw() { "$BENCH_BIN/raw-client" --endpoint-url "$ENDPOINT" "$@"; }

# ---------------------------------------------------------------------------------------------
# Mounts
daemon_pid() { # daemon_pid NAME MNT: the live process called NAME with MNT as one of its arguments
  local d
  for d in /proc/[0-9]*; do
    [ "$(cat "$d/comm" 2>/dev/null)" = "$1" ] || continue
    if tr '\0' '\n' <"$d/cmdline" 2>/dev/null | grep -qxF -- "$2"; then echo "${d#/proc/}"; return 0; fi
  done
  return 1
}

# mount_fs SYSTEM BUCKET MNT: mount and wait for it (30 s); 1 with MOUNT_ERR set on failure.
# The mount command's output goes to a file, not a pipe: a daemon that keeps its inherited stdout
# (rclone --daemon does) would otherwise hold `$(...)` open for as long as it runs.
MOUNT_ERR=""
mount_fs() {
  local sys=$1 bucket=$2 mnt=$3 out="$LOGS/mount-$1.out" rc=0
  mkdir -p "$mnt"
  case " ${MOUNTPOINTS[*]} " in *" $mnt "*) ;; *) MOUNTPOINTS+=("$mnt") ;; esac
  case "$sys" in
    cosmount)
      timeout -k 5 60 "$COSMOUNT" "$bucket" "$mnt" --endpoint-url "$ENDPOINT" --force-path-style --region us-east-1 \
        --log-file "$LOGS/cosmount.log" </dev/null >"$out" 2>&1 || rc=$? ;;
    s3fs)
      timeout -k 5 60 s3fs "$bucket" "$mnt" -o url="$ENDPOINT" -o use_path_request_style -o passwd_file="$WORK/s3fs.passwd" \
        </dev/null >"$out" 2>&1 || rc=$? ;;
    rclone)
      timeout -k 5 60 rclone mount "bench:$bucket" "$mnt" --config "$WORK/rclone.conf" --vfs-cache-mode writes \
        --cache-dir "$WORK/rclone-cache" --daemon --log-file "$LOGS/rclone.log" </dev/null >"$out" 2>&1 || rc=$? ;;
    *) MOUNT_ERR="unknown system $sys"; return 1 ;;
  esac
  if [ "$rc" -ne 0 ]; then MOUNT_ERR="$sys exited $rc: $(head -c 300 "$out" | tr '\n' ' ')"; return 1; fi
  local i
  for i in $(seq 300); do
    if is_mounted "$mnt"; then
      DAEMON[$mnt]=$(daemon_pid "$sys" "$mnt") || DAEMON[$mnt]=""
      return 0
    fi
    sleep 0.1
  done
  MOUNT_ERR="$sys: $mnt not mounted after 30 s: $(head -c 300 "$out" | tr '\n' ' ')"
  return 1
}

# unmount_fs SYSTEM MNT GROUP: record the daemon's peak RSS, unmount, wait for the daemon to exit.
unmount_fs() {
  local sys=$1 mnt=$2 group=$3 pid hwm i
  pid=${DAEMON[$mnt]:-}
  if [ -n "$pid" ] && hwm=$(awk '/^VmHWM:/ { print $2 }' "/proc/$pid/status" 2>/dev/null) && [ -n "$hwm" ]; then
    hwm=$((hwm / 1024))
    [ "$hwm" -gt "${RSS_GROUP[$sys|$group]:-0}" ] && RSS_GROUP[$sys|$group]=$hwm
    [ "$hwm" -gt "${RSS[$sys]:-0}" ] && RSS[$sys]=$hwm
  fi
  if is_mounted "$mnt"; then
    fusermount3 -u "$mnt" 2>/dev/null || umount "$mnt" 2>/dev/null || {
      log "$sys: $mnt busy, lazy unmount"; umount -l "$mnt"; }
  fi
  if [ -n "$pid" ]; then
    for i in $(seq 600); do [ -d "/proc/$pid" ] || break; sleep 0.1; done
    if [ -d "/proc/$pid" ]; then log "$sys daemon $pid still running 60 s after unmount; killing it"; kill "$pid" 2>/dev/null || true; fi
  fi
  DAEMON[$mnt]=""
}

# ---------------------------------------------------------------------------------------------
# Recording
# record SYSTEM WORKLOAD STATUS FIGURE RUNS NOTE
record() {
  local k="$1|$2"
  STATUS[$k]=$3; FIG[$k]=$4; RUNS[$k]=$5; NOTE[$k]=$6
  if [ "$3" != ok ] && { [ "$1" = raw ] || [ "$1" = cosmount ]; }; then FAILED_CORE=1; fi
  if [ "$3" = ok ]; then log "  $1 $2: $4 (runs: $5)${6:+ — $6}"; else log "  $1 $2: $3${6:+ — $6}"; fi
}

md5_of() { md5sum "$1" | cut -d' ' -f1; }

# check_object BUCKET KEY: the stored object has BIG_BYTES bytes and the input's MD5 (via raw GETs).
check_object() {
  local f="$WORK/check.bin" sum size
  raw get-ranged --bucket "$1" --key "$2" --range-size "$RAW_RANGE_MIB" --concurrency "$RAW_GET_CONC" --out "$f" >/dev/null \
    || { CHECK_ERR="GET $1/$2 failed"; return 1; }
  size=$(stat -c %s "$f"); sum=$(md5_of "$f"); rm -f "$f"
  [ "$size" = "$BIG_BYTES" ] || { CHECK_ERR="$1/$2 has $size bytes, expected $BIG_BYTES"; return 1; }
  [ "$sum" = "$BIG_MD5" ] || { CHECK_ERR="$1/$2 MD5 $sum, expected $BIG_MD5"; return 1; }
}

# check_tree BUCKET PREFIX: the stored objects are exactly the input tree, byte for byte.
check_tree() {
  local d="$WORK/check-tree"
  rm -rf "$d"
  raw get-small --bucket "$1" --prefix "$2" --concurrency "$RAW_SMALL_CONC" --out-dir "$d" >/dev/null \
    || { CHECK_ERR="GET of $1/$2/ failed"; return 1; }
  if ! diff -rq "$TREE" "$d" >"$WORK/diff.out" 2>&1; then
    CHECK_ERR="$1/$2/ differs from the input: $(head -n 3 "$WORK/diff.out" | tr '\n' ';')"; rm -rf "$d"; return 1
  fi
  rm -rf "$d"
}

# stored_secs CP_SECS WAIT_JSON: the time until the data was stored. The wait's first poll is
# immediate, so if it found everything at once, the data was stored when cp returned.
stored_secs() {
  local polls wsecs
  polls=$(jget "$2" polls); wsecs=$(jget "$2" seconds)
  if [ "$polls" = 1 ]; then echo "$1"; else calc "$1 + $wsecs" 4; fi
}

# ---------------------------------------------------------------------------------------------
# Workloads. Each sets the system's result with `record`.
CHECK_ERR=""

wl_seq_write_raw() {
  local r j secs=() figs=()
  for r in $(seq "$REPS"); do
    sync
    j=$(raw put-multipart --bucket bench-raw --key "big-$r" --file "$BIG" --part-size "$RAW_PART_MIB" --concurrency "$RAW_PUT_CONC") \
      || { record raw seq_write failed "" "" "put-multipart failed"; return; }
    secs+=("$(jget "$j" seconds)"); figs+=("$(calc "$BIG_BYTES / 1e6 / $(jget "$j" seconds)")")
  done
  if check_object bench-raw big-1; then
    record raw seq_write ok "$(median "${figs[@]}")" "${figs[*]}" ""
  else
    record raw seq_write failed "" "${figs[*]}" "$CHECK_ERR"
  fi
}

wl_seq_write() {
  local sys=$1 mnt="$WORK/mnt-$1" r t0 cpsecs w stored figs=() cpfigs=() err=""
  if ! mount_fs "$sys" "bench-$sys" "$mnt"; then record "$sys" seq_write failed "" "" "mount: $MOUNT_ERR"; return; fi
  for r in $(seq "$REPS"); do
    sync
    t0=$EPOCHREALTIME
    if ! timeout -k 10 "$CMD_TIMEOUT" cp "$BIG" "$mnt/big-$r" 2>"$WORK/cp.err"; then
      err="cp failed: $(head -c 200 "$WORK/cp.err")"; break
    fi
    cpsecs=$(secs_since "$t0")
    w=$(raw wait-object --bucket "bench-$sys" --key "big-$r" --size "$BIG_BYTES" --timeout "$CMD_TIMEOUT") \
      || { err="object big-$r never appeared with $BIG_BYTES bytes"; break; }
    stored=$(stored_secs "$cpsecs" "$w")
    figs+=("$(calc "$BIG_BYTES / 1e6 / $stored")"); cpfigs+=("$(calc "$BIG_BYTES / 1e6 / $cpsecs")")
  done
  unmount_fs "$sys" "$mnt" seq_write
  if [ -n "$err" ]; then record "$sys" seq_write failed "" "${figs[*]}" "$err"; return; fi
  if ! check_object "bench-$sys" big-1; then record "$sys" seq_write failed "" "${figs[*]}" "$CHECK_ERR"; return; fi
  local note=""
  [ "${figs[*]}" = "${cpfigs[*]}" ] || note="cp returned before the upload finished: $(median "${cpfigs[@]}") MB/s counting cp alone"
  record "$sys" seq_write ok "$(median "${figs[@]}")" "${figs[*]}" "$note"
}

wl_seq_read_raw() {
  local r j figs=()
  for r in $(seq "$REPS"); do
    drop_caches
    j=$(raw get-ranged --bucket bench-raw --key big-1 --range-size "$RAW_RANGE_MIB" --concurrency "$RAW_GET_CONC") \
      || { record raw seq_read_cold failed "" "" "get-ranged failed"; return; }
    [ "$(jget "$j" bytes)" = "$BIG_BYTES" ] || { record raw seq_read_cold failed "" "" "short read: $j"; return; }
    figs+=("$(calc "$BIG_BYTES / 1e6 / $(jget "$j" seconds)")")
  done
  record raw seq_read_cold ok "$(median "${figs[@]}")" "${figs[*]}" ""   # content checked in seq_write
}

wl_seq_read() {
  local sys=$1 mnt="$WORK/mnt-$1" r t0 secs sum figs=()
  for r in $(seq "$REPS"); do
    drop_caches
    if ! mount_fs "$sys" bench-raw "$mnt"; then record "$sys" seq_read_cold failed "" "${figs[*]}" "mount: $MOUNT_ERR"; return; fi
    t0=$EPOCHREALTIME
    if ! timeout -k 10 "$CMD_TIMEOUT" cat "$mnt/big-1" >/dev/null 2>"$WORK/cat.err"; then
      unmount_fs "$sys" "$mnt" seq_read_cold
      record "$sys" seq_read_cold failed "" "${figs[*]}" "cat failed: $(head -c 200 "$WORK/cat.err")"; return
    fi
    secs=$(secs_since "$t0")
    figs+=("$(calc "$BIG_BYTES / 1e6 / $secs")")
    if [ "$r" = 1 ]; then
      sum=$(timeout -k 10 "$CMD_TIMEOUT" md5sum "$mnt/big-1" | cut -d' ' -f1) || sum="(md5sum failed)"
      if [ "$sum" != "$BIG_MD5" ]; then
        unmount_fs "$sys" "$mnt" seq_read_cold
        record "$sys" seq_read_cold failed "" "${figs[*]}" "read MD5 $sum, expected $BIG_MD5"; return
      fi
    fi
    unmount_fs "$sys" "$mnt" seq_read_cold
  done
  record "$sys" seq_read_cold ok "$(median "${figs[@]}")" "${figs[*]}" ""
}

wl_small_write_raw() {
  local r j figs=()
  for r in $(seq "$REPS"); do
    sync
    j=$(raw put-small --bucket bench-raw --prefix "tree-$r" --from-dir "$TREE" --concurrency "$RAW_SMALL_CONC") \
      || { record raw small_write failed "" "" "put-small failed"; return; }
    [ "$(jget "$j" files)" = "$FILES" ] || { record raw small_write failed "" "" "wrong file count: $j"; return; }
    figs+=("$(calc "$FILES / $(jget "$j" seconds)")")
  done
  if check_tree bench-raw tree-1; then
    record raw small_write ok "$(median "${figs[@]}")" "${figs[*]}" ""
  else
    record raw small_write failed "" "${figs[*]}" "$CHECK_ERR"
  fi
}

wl_small_write() {
  local sys=$1 mnt="$WORK/mnt-$1" r t0 cpsecs w stored figs=() cpfigs=() err=""
  if ! mount_fs "$sys" "bench-$sys" "$mnt"; then record "$sys" small_write failed "" "" "mount: $MOUNT_ERR"; return; fi
  for r in $(seq "$REPS"); do
    sync
    t0=$EPOCHREALTIME
    if ! timeout -k 10 "$CMD_TIMEOUT" cp -r "$TREE" "$mnt/tree-$r" 2>"$WORK/cp.err"; then
      err="cp -r failed: $(head -c 200 "$WORK/cp.err")"; break
    fi
    cpsecs=$(secs_since "$t0")
    w=$(raw wait-prefix --bucket "bench-$sys" --prefix "tree-$r" --count "$FILES" --bytes $((FILES * FILE_SIZE)) --timeout "$CMD_TIMEOUT") \
      || { err="tree-$r never held $FILES objects"; break; }
    stored=$(stored_secs "$cpsecs" "$w")
    figs+=("$(calc "$FILES / $stored")"); cpfigs+=("$(calc "$FILES / $cpsecs")")
  done
  unmount_fs "$sys" "$mnt" small_write
  if [ -n "$err" ]; then record "$sys" small_write failed "" "${figs[*]}" "$err"; return; fi
  if ! check_tree "bench-$sys" tree-1; then record "$sys" small_write failed "" "${figs[*]}" "$CHECK_ERR"; return; fi
  local note=""
  [ "${figs[*]}" = "${cpfigs[*]}" ] || note="cp -r returned before the uploads finished: $(median "${cpfigs[@]}") files/s counting cp alone"
  record "$sys" small_write ok "$(median "${figs[@]}")" "${figs[*]}" "$note"
}

wl_small_read_raw() {
  local r j figs=()
  for r in $(seq "$REPS"); do
    drop_caches
    j=$(raw get-small --bucket bench-raw --prefix tree-1 --concurrency "$RAW_SMALL_CONC") \
      || { record raw small_read failed "" "" "get-small failed"; return; }
    [ "$(jget "$j" files)" = "$FILES" ] || { record raw small_read failed "" "" "wrong file count: $j"; return; }
    figs+=("$(calc "$FILES / $(jget "$j" seconds)")")
  done
  record raw small_read ok "$(median "${figs[@]}")" "${figs[*]}" ""   # content checked in small_write
}

wl_small_read() {
  local sys=$1 mnt="$WORK/mnt-$1" r t0 secs n figs=()
  for r in $(seq "$REPS"); do
    drop_caches
    if ! mount_fs "$sys" bench-raw "$mnt"; then record "$sys" small_read failed "" "${figs[*]}" "mount: $MOUNT_ERR"; return; fi
    t0=$EPOCHREALTIME
    if ! (cd "$mnt/tree-1" && timeout -k 10 "$CMD_TIMEOUT" find . -type f -exec cat {} + >/dev/null) 2>"$WORK/cat.err"; then
      unmount_fs "$sys" "$mnt" small_read
      record "$sys" small_read failed "" "${figs[*]}" "find/cat failed: $(head -c 200 "$WORK/cat.err")"; return
    fi
    secs=$(secs_since "$t0")
    figs+=("$(calc "$FILES / $secs")")
    if [ "$r" = 1 ]; then
      n=$(find "$mnt/tree-1" -type f | wc -l)
      if [ "$n" != "$FILES" ] || ! timeout -k 10 "$CMD_TIMEOUT" diff -rq "$TREE" "$mnt/tree-1" >"$WORK/diff.out" 2>&1; then
        unmount_fs "$sys" "$mnt" small_read
        record "$sys" small_read failed "" "${figs[*]}" "read back $n files; differences: $(head -n 3 "$WORK/diff.out" | tr '\n' ';')"; return
      fi
    fi
    unmount_fs "$sys" "$mnt" small_read
  done
  record "$sys" small_read ok "$(median "${figs[@]}")" "${figs[*]}" ""
}

# ---------------------------------------------------------------------------------------------
# 1. Prerequisites and builds
command -v cargo >/dev/null || die "cargo is missing"
command -v fusermount3 >/dev/null || die "fusermount3 is missing: run scripts/setup.sh (installs fuse3)"
[ -e /dev/fuse ] || die "/dev/fuse is missing: this machine cannot mount FUSE file systems"
[ -z "${EPOCHREALTIME:-}" ] && die "bash 5 or newer is needed (EPOCHREALTIME)"

log "building bench/ (bench-server, raw-client) and cosmount (release)"
CARGO_TARGET_DIR="$REPO/bench/target" cargo build --release --quiet --manifest-path bench/Cargo.toml
BENCH_BIN="$REPO/bench/target/release"
cargo build --release --quiet
COSMOUNT="${CARGO_TARGET_DIR:-$REPO/target}/release/cosmount"
[ -x "$COSMOUNT" ] || die "cosmount binary not found at $COSMOUNT"
T_START=$EPOCHREALTIME

mkdir -p "$WORK/s3root" "$LOGS"

# 2. Peers (full mode): install from Debian if missing.
declare -A PEER_ERR=()
peer_cmd() { case "$1" in s3fs) echo s3fs ;; rclone) echo rclone ;; esac; }
missing=()
for s in $SYSTEMS; do
  [ "$s" = cosmount ] && continue
  command -v "$(peer_cmd "$s")" >/dev/null || missing+=("$s")
done
if [ ${#missing[@]} -gt 0 ]; then
  log "installing ${missing[*]} with apt-get"
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  if ! { $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}"; } >"$LOGS/apt.log" 2>&1; then
    log "apt-get failed: $(tail -n 2 "$LOGS/apt.log" | tr '\n' ' ')"
  fi
  for s in "${missing[@]}"; do command -v "$(peer_cmd "$s")" >/dev/null || PEER_ERR[$s]="not installed (apt-get install $s failed)"; done
fi

# 3. Server, credentials, buckets
export AWS_ACCESS_KEY_ID="bench-$$-$RANDOM" AWS_SECRET_ACCESS_KEY="bench-secret-$RANDOM$RANDOM$RANDOM"
export AWS_REGION=us-east-1 NO_PROXY="127.0.0.1,localhost${NO_PROXY:+,$NO_PROXY}" no_proxy="127.0.0.1,localhost${no_proxy:+,$no_proxy}"
# Nothing here is https; a CA bundle from the environment only breaks rclone's S3 client.
unset AWS_PROFILE AWS_SESSION_TOKEN AWS_CA_BUNDLE AWS_ENDPOINT_URL AWS_ENDPOINT_URL_S3 COSMOUNT_ENDPOINT_URL COSMOUNT_REGION

"$BENCH_BIN/bench-server" --host 127.0.0.1 --port 0 --port-file "$WORK/port" "$WORK/s3root" >"$LOGS/server.log" 2>&1 &
SERVER_PID=$!
for _ in $(seq 100); do [ -s "$WORK/port" ] && break; kill -0 "$SERVER_PID" 2>/dev/null || break; sleep 0.1; done
[ -s "$WORK/port" ] || die "bench-server did not start"
ENDPOINT="http://127.0.0.1:$(cat "$WORK/port")"
export BENCH_ENDPOINT_URL=$ENDPOINT
log "server: bench-server (s3s-fs 0.14.1, TCP_NODELAY) at $ENDPOINT"

for b in raw $SYSTEMS; do raw create-bucket --bucket "bench-$b"; done
LAT=$(raw latency --bucket bench-raw --count 500)
LAT_P50=$(jget "$LAT" p50_ms); LAT_P99=$(jget "$LAT" p99_ms)
echo "sanity: 1-byte GET latency p50 $LAT_P50 ms, p99 $LAT_P99 ms (500 GETs one after another)"
awk "BEGIN { exit !($LAT_P50 < 10) }" || die "1-byte GETs take $LAT_P50 ms: the server is stalling (Nagle?), figures would be meaningless"
awk "BEGIN { exit !($LAT_P50 < 1) }" || log "warning: 1-byte GET latency is not sub-millisecond ($LAT_P50 ms); the machine is busy"

printf '%s:%s\n' "$AWS_ACCESS_KEY_ID" "$AWS_SECRET_ACCESS_KEY" >"$WORK/s3fs.passwd"; chmod 600 "$WORK/s3fs.passwd"
: >"$WORK/rclone.conf"
export RCLONE_CONFIG_BENCH_TYPE=s3 RCLONE_CONFIG_BENCH_PROVIDER=Other RCLONE_CONFIG_BENCH_ENDPOINT="$ENDPOINT" \
  RCLONE_CONFIG_BENCH_ACCESS_KEY_ID="$AWS_ACCESS_KEY_ID" RCLONE_CONFIG_BENCH_SECRET_ACCESS_KEY="$AWS_SECRET_ACCESS_KEY" \
  RCLONE_CONFIG_BENCH_REGION=us-east-1

# 4. Data
BIG="$WORK/data/big"; TREE="$WORK/data/tree"
mkdir -p "$WORK/data"
log "data: $BIG_MIB MiB random file, $FILES x $FILE_SIZE-byte files in $DIRS directories"
head -c "$BIG_BYTES" /dev/urandom >"$BIG"
BIG_MD5=$(md5_of "$BIG")
"$BENCH_BIN/raw-client" gen-tree --dir "$TREE" --count "$FILES" --size "$FILE_SIZE" --dirs "$DIRS"
sync

LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
# 5. Workloads: for each, the raw client, then each system.
run_systems() {
  local wl=$1 s
  for s in $SYSTEMS; do
    if [ -n "${PEER_ERR[$s]:-}" ]; then record "$s" "$wl" failed "" "" "${PEER_ERR[$s]}"; continue; fi
    "wl_$wl" "$s"
  done
}
log "workload seq_write ($BIG_MIB MiB, $REPS runs)";      wl_seq_write_raw;   run_systems seq_write
log "workload seq_read_cold ($BIG_MIB MiB, $REPS runs)";  wl_seq_read_raw;    run_systems seq_read
log "workload small_write ($FILES files, $REPS runs)";    wl_small_write_raw; run_systems small_write
log "workload small_read ($FILES files, $REPS runs)";     wl_small_read_raw;  run_systems small_read
LOAD_AFTER=$(cut -d' ' -f1-3 /proc/loadavg)
ELAPSED=$(calc "${EPOCHREALTIME} - $T_START" 0)

# ---------------------------------------------------------------------------------------------
# 6. Report
WORKLOADS=(seq_write seq_read_cold small_write small_read)
declare -A TITLE=(
  [seq_write]="seq write $BIG_MIB MiB (MB/s)"
  [seq_read_cold]="seq read $BIG_MIB MiB $([ "$COLD" = 1 ] && echo cold || echo warm) (MB/s)"
  [small_write]="cp -r $FILES x 32 KiB (files/s)"
  [small_read]="read $FILES files after remount (files/s)"
)
declare -A UNIT=([seq_write]="MB/s" [seq_read_cold]="MB/s" [small_write]="files/s" [small_read]="files/s")
declare -A SYSNAME=([raw]="raw aws-sdk-s3" [cosmount]="cosmount" [s3fs]="s3fs" [rclone]="rclone mount")

ratio() { # figure of SYSTEM over raw's for WORKLOAD
  local f=${FIG[$1|$2]:-} r=${FIG[raw|$2]:-}
  if [ -n "$f" ] && [ -n "$r" ] && [ "${STATUS[$1|$2]}" = ok ]; then calc "$f / $r" 2; fi
}
cell() {
  local k="$1|$2"
  if [ "${STATUS[$k]:-}" != ok ]; then echo "FAILED"; return; fi
  echo "${FIG[$k]} ($(ratio "$1" "$2")×)"
}

DATE=$(date +%Y-%m-%d)
mkdir -p bench/results
OUT_MD="bench/results/$DATE-$LABEL.md"; OUT_JSON="bench/results/$DATE-$LABEL.json"
COSMOUNT_REV=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
[ -z "$(git status --porcelain -- src Cargo.toml Cargo.lock 2>/dev/null)" ] || COSMOUNT_REV="$COSMOUNT_REV + uncommitted changes"
NPROC=$(nproc); MEM_MIB=$(awk '/^MemTotal:/ { printf "%d", $2 / 1024 }' /proc/meminfo)
KERNEL=$(uname -r)
peer_version() { case "$1" in s3fs) s3fs --version 2>/dev/null | head -n 1 | sed 's/ (commit.*//' ;; rclone) rclone version 2>/dev/null | head -n 1 ;; esac; }
CMDLINE="bash scripts/bench.sh"
[ "$QUICK" = 0 ] || CMDLINE="$CMDLINE --quick"
[ "$LABEL" = "$MODE" ] || CMDLINE="$CMDLINE --label $LABEL"

{
  echo "# cosmount benchmark: $DATE, $LABEL ($MODE mode)"
  echo
  echo "\`$CMDLINE\` — ratios are to the raw aws-sdk-s3 client in this same run (BENCH.md)."
  echo
  echo "- Machine: $NPROC CPUs, $MEM_MIB MiB RAM, kernel $KERNEL; load average (1/5/15 min) $LOAD_BEFORE before the workloads, $LOAD_AFTER after; workloads took $ELAPSED s."
  echo "- Server: bench-server (s3s-fs 0.14.1 with TCP_NODELAY) on 127.0.0.1; 1-byte GET latency p50 $LAT_P50 ms, p99 $LAT_P99 ms."
  echo "- Data: one $BIG_MIB MiB random file; $FILES random files of 32 KiB in $DIRS directories. Median of $REPS runs; reads $([ "$COLD" = 1 ] && echo "cold (page cache dropped, fresh mount each run)" || echo "NOT cold (could not drop the page cache), fresh mount each run")."
  echo "- raw: bench/ raw-client (aws-sdk-s3, the mount's SDK): multipart $RAW_PART_MIB MiB parts x $RAW_PUT_CONC, ranged GETs $RAW_RANGE_MIB MiB x $RAW_GET_CONC, small PUT/GET $RAW_SMALL_CONC in flight (LIST then GETs); CRC32 request checksums like the mount."
  echo "- cosmount $COSMOUNT_REV: defaults (\`--force-path-style\`, part size 8 MiB, upload concurrency 8)."
  for s in $SYSTEMS; do
    case "$s" in
      s3fs) echo "- s3fs ($(peer_version s3fs)): \`-o url=ENDPOINT -o use_path_request_style -o passwd_file=FILE\`, otherwise defaults." ;;
      rclone) echo "- rclone mount ($(peer_version rclone)): S3 remote (provider Other) from RCLONE_CONFIG_* variables, \`--vfs-cache-mode writes --daemon\`, otherwise defaults (write-back after 5 s: its write figures count until the objects are stored)." ;;
    esac
  done
  echo "- Writes are timed until the data is stored in S3 (cp returning, including close, plus any upload after it) and then checked through the S3 API (size + MD5; byte-for-byte for the small files); reads are checked through the mount (MD5; \`diff -r\`)."
  echo
  printf '| system |'; for w in "${WORKLOADS[@]}"; do printf ' %s |' "${TITLE[$w]}"; done; echo ' peak RSS (MiB) |'
  printf '|---|'; for _ in "${WORKLOADS[@]}"; do printf -- '---:|'; done; printf -- '---:|\n'
  for s in raw $SYSTEMS; do
    printf '| %s |' "${SYSNAME[$s]}"
    for w in "${WORKLOADS[@]}"; do printf ' %s |' "$(cell "$s" "$w")"; done
    if [ "$s" = raw ]; then echo ' — |'; else echo " ${RSS[$s]:-?} |"; fi
  done
  echo
  echo "Runs (in order):"
  echo
  for s in raw $SYSTEMS; do
    for w in "${WORKLOADS[@]}"; do
      k="$s|$w"
      line="- ${SYSNAME[$s]}, $w: ${RUNS[$k]:-none} ${UNIT[$w]}"
      [ "${STATUS[$k]:-}" = ok ] || line="$line — FAILED"
      [ -z "${NOTE[$k]:-}" ] || line="$line — ${NOTE[$k]}"
      echo "$line"
    done
  done
  if [ ${#RSS_GROUP[@]} -gt 0 ]; then
    echo
    printf 'Peak RSS by workload (MiB):'
    for s in $SYSTEMS; do for w in "${WORKLOADS[@]}"; do [ -z "${RSS_GROUP[$s|$w]:-}" ] || printf ' %s %s %s;' "$s" "$w" "${RSS_GROUP[$s|$w]}"; done; done
    echo
  fi
} >"$OUT_MD"

{
  printf '{\n  "date": %s, "label": %s, "mode": %s, "command": %s,\n' "$(json_str "$DATE")" "$(json_str "$LABEL")" "$(json_str "$MODE")" "$(json_str "$CMDLINE")"
  printf '  "machine": {"nproc": %s, "mem_mib": %s, "kernel": %s, "load_before": %s, "load_after": %s},\n' \
    "$NPROC" "$MEM_MIB" "$(json_str "$KERNEL")" "$(json_str "$LOAD_BEFORE")" "$(json_str "$LOAD_AFTER")"
  printf '  "server": {"name": "bench-server (s3s-fs 0.14.1, TCP_NODELAY)", "latency_p50_ms": %s, "latency_p99_ms": %s},\n' "$LAT_P50" "$LAT_P99"
  printf '  "data": {"big_bytes": %s, "big_md5": %s, "files": %s, "file_size": %s, "dirs": %s, "reps": %s, "cold": %s},\n' \
    "$BIG_BYTES" "$(json_str "$BIG_MD5")" "$FILES" "$FILE_SIZE" "$DIRS" "$REPS" "$([ "$COLD" = 1 ] && echo true || echo false)"
  printf '  "raw_client": {"part_mib": %s, "put_concurrency": %s, "range_mib": %s, "get_concurrency": %s, "small_concurrency": %s},\n' \
    "$RAW_PART_MIB" "$RAW_PUT_CONC" "$RAW_RANGE_MIB" "$RAW_GET_CONC" "$RAW_SMALL_CONC"
  printf '  "versions": {"cosmount": %s' "$(json_str "$COSMOUNT_REV")"
  for s in $SYSTEMS; do [ "$s" = cosmount ] || printf ', %s: %s' "$(json_str "$s")" "$(json_str "$(peer_version "$s")")"; done
  printf '},\n  "peak_rss_mib": {'
  sep=""; for s in $SYSTEMS; do printf '%s%s: %s' "$sep" "$(json_str "$s")" "${RSS[$s]:-null}"; sep=", "; done
  printf '},\n  "results": [\n'
  sep=""
  for s in raw $SYSTEMS; do
    for w in "${WORKLOADS[@]}"; do
      k="$s|$w"
      runs=$(echo "${RUNS[$k]:-}" | sed 's/^ *//; s/ *$//; s/  */, /g')
      printf '%s    {"system": %s, "workload": %s, "unit": %s, "status": %s, "figure": %s, "ratio_to_raw": %s, "runs": [%s], "note": %s}' \
        "$sep" "$(json_str "$s")" "$(json_str "$w")" "$(json_str "${UNIT[$w]}")" "$(json_str "${STATUS[$k]:-not run}")" \
        "${FIG[$k]:-null}" "$(r=$(ratio "$s" "$w"); echo "${r:-null}")" "$runs" "$(json_str "${NOTE[$k]:-}")"
      sep=$',\n'
    done
  done
  printf '\n  ]\n}\n'
} >"$OUT_JSON"

echo
cat "$OUT_MD"
echo
log "results: $OUT_MD, $OUT_JSON"
if [ "$FAILED_CORE" = 1 ]; then
  log "FAILED: a check of the raw client or of cosmount did not pass (see the table)"
  exit 1
fi
