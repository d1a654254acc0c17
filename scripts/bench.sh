#!/usr/bin/env bash
# Benchmarks cosmount the way /work/shared/BENCH.md says: ratios taken in one run, on the same data,
# against the same local S3 server, for a raw aws-sdk-s3 client (the practical limit) and, in full
# mode, for the peers s3fs and rclone mount (installed with apt-get if missing).
#
#   scripts/bench.sh [--quick] [--label NAME]
#
# Workloads, each for every system in turn (raw client first; "cosmount-la" is cosmount with
# --listing-attributes, measured on the listing workloads only; "local" is a local directory):
#   seq_write      a SIZE random file: raw multipart upload vs `cp big MNT/` (timed until the object is
#                  stored: `cp` returning, including close, and, for write-back peers, the upload after)
#   seq_read_cold  that object, page cache dropped, fresh mount: raw parallel ranged GETs vs `cat`
#   par_read_cold  4 objects of PAR MiB read at once: raw ranged GETs of all 4 through one pool (8 in
#                  flight) vs 4 concurrent `cat`s; aggregate MB/s
#   rand_read      RAND x 64 KiB at random aligned offsets of the big object (seeded, new offsets each
#   rand_read8     run, the same for every system): raw ranged GETs 1 (8) in flight vs bench/helpers.py
#                  doing os.pread from 1 (8) threads; ops/s, every block compared with the input
#   small_write    FILES x 32 KiB files in 50 directories: raw PUTs (32 in flight) vs `cp -r`
#   small_read     the same files after a remount, cache dropped: raw LIST + GETs vs `find | cat`
#   ls_f_cold      `ls -f` of an LS-entry directory (fresh mount, cache dropped) vs raw paginated LIST
#   ls_l_cold      `ls -l` of it vs raw LIST + HEAD of every key (32 in flight): what full POSIX
#                  attributes need; cosmount-la (no HEADs) is compared with the raw LIST instead,
#                  and so is "local": `ls -l` of a local directory of the same names once the
#                  kernel's dentries and inodes are dropped (echo 2 > drop_caches)
#   ls_f_warm      the same `ls -f` / `ls -l` again right after the cold one, compared with the same
#   ls_l_warm      command on a local directory holding the same names and sizes
#   ls_f_big_cold  `ls -f` of an LS_BIG-entry directory, cold, vs raw paginated LIST;
#   ls_f_big_first   and (another fresh mount) the time until os.scandir gets its first entry vs
#                    the raw client's first page
#   find_cold      `find` over a FIND-file tree (50 directories) vs raw LIST without delimiter
#   rsync2         a second `rsync -a --stats` of the FILES tree onto the mount, after a first one and a
#                  remount, vs raw LIST + HEAD of that tree; the cell counts files it re-copied
# Listing and time workloads are in seconds (lower is better; the ratio is time / baseline time);
# MB/s, ops/s and files/s are higher-is-better (ratio = figure / raw).
# Reads use the objects the raw client wrote (the same bytes for everyone); every system's writes go
# to a bucket of its own and are checked through the S3 API (size and MD5 / byte-for-byte `diff`).
# Listings are checked by entry count and sizes. Full mode: 1 GiB, PAR 256, RAND 2 000, 1 000 files,
# LS 10 000, LS_BIG 100 000, FIND 5 000; --quick: 32 MiB, PAR 8, RAND 100, 100 files, LS 300,
# LS_BIG 2 000, FIND 200 (10 directories), cosmount only (CI smoke run, about a minute).
# Median of BENCH_REPS runs (default: 3 in full mode, except 1 for the LS_BIG listing; 1 in
# --quick), taken in rounds: the raw client and every system run once, then again (see rounds),
# so that the machine's drift over minutes reaches every system alike (rsync2 runs its own REPS). Peak RSS is VmHWM of each mount daemon; if `cosmount --help` lists --max-memory, cosmount
# runs with --max-memory 512M and its peak RSS is reported against that budget + 64 MiB.
#
# Everything listens on 127.0.0.1 only; data lives under bench/work/ and is deleted at the end;
# mounts and servers are cleaned up on any exit. Results: bench/results/<date>-<label>.{md,json}.
# Exit 0 only if every check of the raw client and of cosmount passed (peers' failures are reported
# in the table, not fatal). Needs fuse3 (scripts/setup.sh), cargo, python3, rsync and root for
# dropping caches (without root the read figures are marked "warm").
#
# Overrides (for experiments): BENCH_REPS, BENCH_SYSTEMS ("cosmount s3fs rclone"), BENCH_BIG_MIB,
# BENCH_FILES, BENCH_PAR_MIB, BENCH_RAND, BENCH_LS, BENCH_LS_BIG, BENCH_LS_BIG_REPS, BENCH_FIND,
# BENCH_WORKLOADS (groups to run, default "seq_write seq_read par_read rand_read small_write
# small_read ls ls_big find rsync"), BENCH_KEEP=1 (keep bench/work/ and logs).
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
  PAR_MIB=${BENCH_PAR_MIB:-8}; RAND_N=${BENCH_RAND:-100}; LS_N=${BENCH_LS:-300}; LS_BIG_N=${BENCH_LS_BIG:-2000}
  FIND_N=${BENCH_FIND:-200}; FIND_DIRS=10; LS_BIG_REPS=${BENCH_LS_BIG_REPS:-${BENCH_REPS:-1}}
  CMD_TIMEOUT=120
else
  MODE=full; BIG_MIB=${BENCH_BIG_MIB:-1024}; FILES=${BENCH_FILES:-1000}; SYSTEMS=${BENCH_SYSTEMS:-cosmount s3fs rclone}
  PAR_MIB=${BENCH_PAR_MIB:-256}; RAND_N=${BENCH_RAND:-2000}; LS_N=${BENCH_LS:-10000}; LS_BIG_N=${BENCH_LS_BIG:-100000}
  FIND_N=${BENCH_FIND:-5000}; FIND_DIRS=50; LS_BIG_REPS=${BENCH_LS_BIG_REPS:-1}
  CMD_TIMEOUT=900
fi
ALL_GROUPS="seq_write seq_read par_read rand_read small_write small_read ls ls_big find rsync"
WL_GROUPS=${BENCH_WORKLOADS:-$ALL_GROUPS}
for g in $WL_GROUPS; do case " $ALL_GROUPS " in *" $g "*) ;; *) echo "bench: unknown workload group $g (BENCH_WORKLOADS; groups: $ALL_GROUPS)" >&2; exit 2 ;; esac; done
want() { case " $WL_GROUPS " in *" $1 "*) return 0 ;; *) return 1 ;; esac; }
LABEL=${LABEL:-$MODE}
case "$LABEL" in *[!A-Za-z0-9._-]*) echo "bench: --label may only use A-Z a-z 0-9 . _ -" >&2; exit 2 ;; esac
REPS=${BENCH_REPS:-$([ "$QUICK" = 1 ] && echo 1 || echo 3)}
FILE_SIZE=32768
DIRS=50
BIG_BYTES=$((BIG_MIB * 1024 * 1024))
# The raw client's settings: the best of a sweep on this machine (see bench/README.md).
RAW_PART_MIB=8; RAW_PUT_CONC=8; RAW_RANGE_MIB=8; RAW_GET_CONC=8; RAW_SMALL_CONC=32; RAW_HEAD_CONC=32
PAR_BYTES=$((PAR_MIB * 1024 * 1024)); BLOCK=65536; LS_SIZE=100
# cosmount's memory budget for the run, if this build has one.
MAX_MEMORY_MIB=512

log() { printf 'bench: %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

# ---------------------------------------------------------------------------------------------
# State, cleanup
WORK="$REPO/bench/work/run-$$"
LOGS="$WORK/logs"
SERVER_PID=""
declare -a MOUNTPOINTS=()
declare -A DAEMON=()      # mountpoint -> daemon pid
declare -A FIG=() RUNS=() STATUS=() NOTE=() RSS=() RSS_GROUP=() RECOPIED=()
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
# The run numbers of a workload function: 1..REPS, or this round's (see rounds).
RUN_BASE=0; ACCUMULATE=0
runs() { seq $((RUN_BASE + 1)) $((RUN_BASE + REPS)); }
# rounds FUNCTION: run FUNCTION (a workload group: the raw client, then every system, one run each)
# REPS times over, so that each round finds every system under the same machine conditions (on a
# shared 2-core machine they drift within minutes); record() keeps every round's figure and reports
# the median. Run i of every system has run number i (object names, random offsets).
rounds() {
  local reps=$REPS round
  REPS=1; ACCUMULATE=1
  for round in $(seq "$reps"); do RUN_BASE=$((round - 1)); "$@"; done
  REPS=$reps; RUN_BASE=0; ACCUMULATE=0
}
median() { printf '%s\n' "$@" | sort -g | awk '{ a[NR] = $1 } END { if (NR % 2) print a[(NR + 1) / 2]; else printf "%.6g\n", (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }
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
    cosmount|cosmount-la)
      local extra=("${COSMOUNT_ARGS[@]}")
      [ "$sys" = cosmount ] || extra+=(--listing-attributes)
      timeout -k 5 60 "$COSMOUNT" "$bucket" "$mnt" --endpoint-url "$ENDPOINT" --force-path-style --region us-east-1 \
        "${extra[@]}" --log-file "$LOGS/$sys.log" </dev/null >"$out" 2>&1 || rc=$? ;;
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
      DAEMON[$mnt]=$(daemon_pid "${sys%-la}" "$mnt") || DAEMON[$mnt]=""
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
    [ "$hwm" -gt "${RSS[${sys%-la}]:-0}" ] && RSS[${sys%-la}]=$hwm
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
  if [ "$ACCUMULATE" = 1 ] && [ -n "${STATUS[$k]:-}" ]; then
    # A later round of an interleaved group (see rounds): its runs join the earlier ones.
    [ "${STATUS[$k]}" = ok ] || return 0
    if [ "$3" = ok ]; then
      RUNS[$k]="${RUNS[$k]} $5"
      # shellcheck disable=SC2086 # the runs are words
      FIG[$k]=$(median ${RUNS[$k]})
      [ -z "$6" ] || [ "$6" = "${NOTE[$k]}" ] || NOTE[$k]="${NOTE[$k]:+${NOTE[$k]}; }$6"
      log "  $1 $2: $4 (round $((RUN_BASE + 1)); median so far ${FIG[$k]})"
      return 0
    fi
    set -- "$1" "$2" "$3" "$4" "${RUNS[$k]} $5" "$6"
  fi
  STATUS[$k]=$3; FIG[$k]=$4; RUNS[$k]=$5; NOTE[$k]=$6
  if [ "$3" != ok ] && { [ "$1" = raw ] || [ "${1%-la}" = cosmount ]; }; then FAILED_CORE=1; fi
  if [ "$3" = ok ]; then log "  $1 $2: $4 (runs: $5)${6:+ — $6}"; else log "  $1 $2: $3${6:+ — $6}"; fi
}

md5_of() { md5sum "$1" | cut -d' ' -f1; }

# check_object BUCKET KEY [SIZE MD5]: the stored object has SIZE (BIG_BYTES) bytes and MD5 (the big
# input's) — via raw GETs.
check_object() {
  local f="$WORK/check.bin" sum size want_size=${3:-$BIG_BYTES} want_md5=${4:-$BIG_MD5}
  raw get-ranged --bucket "$1" --key "$2" --range-size "$RAW_RANGE_MIB" --concurrency "$RAW_GET_CONC" --out "$f" >/dev/null \
    || { CHECK_ERR="GET $1/$2 failed"; return 1; }
  size=$(stat -c %s "$f"); sum=$(md5_of "$f"); rm -f "$f"
  [ "$size" = "$want_size" ] || { CHECK_ERR="$1/$2 has $size bytes, expected $want_size"; return 1; }
  [ "$sum" = "$want_md5" ] || { CHECK_ERR="$1/$2 MD5 $sum, expected $want_md5"; return 1; }
}

# check_tree BUCKET PREFIX [TREE]: the stored objects are exactly the input tree, byte for byte.
check_tree() {
  local tree=${3:-$TREE}
  local d="$WORK/check-tree"
  rm -rf "$d"
  raw get-small --bucket "$1" --prefix "$2" --concurrency "$RAW_SMALL_CONC" --out-dir "$d" >/dev/null \
    || { CHECK_ERR="GET of $1/$2/ failed"; return 1; }
  if ! diff -rq "$tree" "$d" >"$WORK/diff.out" 2>&1; then
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
  for r in $(runs); do
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
  for r in $(runs); do
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
  for r in $(runs); do
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
  for r in $(runs); do
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
  for r in $(runs); do
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
  for r in $(runs); do
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
  for r in $(runs); do
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
  for r in $(runs); do
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

# --- 4 objects at once
wl_par_read_raw() {
  local r j figs=()
  for r in $(runs); do
    drop_caches
    j=$(raw get-many --bucket bench-raw --key par-0 --key par-1 --key par-2 --key par-3 --range-size "$RAW_RANGE_MIB" --concurrency "$RAW_GET_CONC") \
      || { record raw par_read_cold failed "" "${figs[*]}" "get-many failed"; return; }
    [ "$(jget "$j" bytes)" = $((4 * PAR_BYTES)) ] || { record raw par_read_cold failed "" "" "short read: $j"; return; }
    figs+=("$(calc "4 * $PAR_BYTES / 1e6 / $(jget "$j" seconds)")")
  done
  record raw par_read_cold ok "$(median "${figs[@]}")" "${figs[*]}" ""   # content checked after the upload
}

wl_par_read() {
  local sys=$1 mnt="$WORK/mnt-$1" r i t0 secs sum err figs=() pids=()
  for r in $(runs); do
    drop_caches
    if ! mount_fs "$sys" bench-raw "$mnt"; then record "$sys" par_read_cold failed "" "${figs[*]}" "mount: $MOUNT_ERR"; return; fi
    err=""; pids=()
    t0=$EPOCHREALTIME
    for i in 0 1 2 3; do
      timeout -k 10 "$CMD_TIMEOUT" cat "$mnt/par-$i" >/dev/null 2>"$WORK/cat-$i.err" &
      pids+=($!)
    done
    for i in 0 1 2 3; do wait "${pids[$i]}" || err="cat par-$i failed: $(head -c 200 "$WORK/cat-$i.err")"; done
    secs=$(secs_since "$t0")
    if [ -z "$err" ] && [ "$r" = 1 ]; then
      for i in 0 1 2 3; do
        sum=$(timeout -k 10 "$CMD_TIMEOUT" md5sum "$mnt/par-$i" | cut -d' ' -f1) || sum="(md5sum failed)"
        [ "$sum" = "${PAR_MD5[$i]}" ] || err="par-$i read MD5 $sum, expected ${PAR_MD5[$i]}"
      done
    fi
    unmount_fs "$sys" "$mnt" par_read_cold
    if [ -n "$err" ]; then record "$sys" par_read_cold failed "" "${figs[*]}" "$err"; return; fi
    figs+=("$(calc "4 * $PAR_BYTES / 1e6 / $secs")")
  done
  record "$sys" par_read_cold ok "$(median "${figs[@]}")" "${figs[*]}" ""
}

# --- random 64 KiB reads; offsets file of run R with T in flight: $WORK/offsets-T-R
offsets_file() {
  local f="$WORK/offsets-$1-$2"
  [ -s "$f" ] || python3 "$HELPERS" offsets --seed $(($1 * 1000 + $2)) --count "$RAND_N" --size "$BIG_BYTES" --block "$BLOCK" >"$f"
  echo "$f"
}

wl_rand_read_raw() {
  local t=$1 wl=$2 r j figs=()
  for r in $(runs); do
    drop_caches
    j=$(raw random-read --bucket bench-raw --key big-1 --offsets-file "$(offsets_file "$t" "$r")" --block "$BLOCK" \
      --concurrency "$t" --verify-file "$BIG" 2>"$WORK/raw.err") \
      || { record raw "$wl" failed "" "${figs[*]}" "random-read: $(head -c 200 "$WORK/raw.err")"; return; }
    figs+=("$(jget "$j" ops_s)")
  done
  record raw "$wl" ok "$(median "${figs[@]}")" "${figs[*]}" ""
}

wl_rand_read() {
  local sys=$1 t=$2 wl=$3 mnt="$WORK/mnt-$1" r j figs=()
  for r in $(runs); do
    drop_caches
    if ! mount_fs "$sys" bench-raw "$mnt"; then record "$sys" "$wl" failed "" "${figs[*]}" "mount: $MOUNT_ERR"; return; fi
    if ! j=$(timeout -k 10 "$CMD_TIMEOUT" python3 "$HELPERS" randread --file "$mnt/big-1" --offsets-file "$(offsets_file "$t" "$r")" \
        --block "$BLOCK" --threads "$t" --verify "$BIG" 2>"$WORK/rr.err"); then
      unmount_fs "$sys" "$mnt" "$wl"
      record "$sys" "$wl" failed "" "${figs[*]}" "$(head -c 200 "$WORK/rr.err")"; return
    fi
    unmount_fs "$sys" "$mnt" "$wl"
    figs+=("$(jget "$j" ops_s)")
  done
  record "$sys" "$wl" ok "$(median "${figs[@]}")" "${figs[*]}" ""
}

# --- listings. LS_DIR (LS_N objects of LS_SIZE bytes), LS_BIG_DIR and FIND_DIR are in buckets of
# their own (bench-ls, bench-lsbig, bench-find) that nothing writes to after they are filled, so
# bench-server's listing cache (see bench/README.md) serves every system alike.
LS_DIR=ls/d00; LS_BIG_DIR=lsbig/d00; FIND_DIR=find
# check_ls_l FILE N: an `ls -l` output lists N entries of LS_SIZE bytes.
check_ls_l() {
  local n
  n=$(awk -v s="$LS_SIZE" '$5 == s { n++ } END { print n + 0 }' "$1")
  [ "$n" = "$2" ] || { CHECK_ERR="ls -l showed $n entries of $LS_SIZE bytes, expected $2: $(head -n 3 "$1" | tr '\n' ';')"; return 1; }
}

wl_ls_raw() {
  local r j fl=() fh=()
  for r in $(runs); do
    drop_caches
    j=$(raw list --bucket bench-ls --prefix "$LS_DIR/" --delimiter /) || { record raw ls_f_cold failed "" "" "list failed"; return; }
    [ "$(jget "$j" keys)" = "$LS_N" ] || { record raw ls_f_cold failed "" "" "listed $(jget "$j" keys) keys, expected $LS_N"; return; }
    fl+=("$(jget "$j" seconds)")
    drop_caches
    j=$(raw list-head --bucket bench-ls --prefix "$LS_DIR/" --delimiter / --concurrency "$RAW_HEAD_CONC" 2>"$WORK/raw.err") \
      || { record raw ls_l_cold failed "" "" "list-head: $(head -c 200 "$WORK/raw.err")"; return; }
    [ "$(jget "$j" keys)" = "$LS_N" ] || { record raw ls_l_cold failed "" "" "listed $(jget "$j" keys) keys, expected $LS_N"; return; }
    fh+=("$(jget "$j" seconds)")
  done
  record raw ls_f_cold ok "$(median "${fl[@]}")" "${fl[*]}" "paginated LIST with delimiter"
  record raw ls_l_cold ok "$(median "${fh[@]}")" "${fh[*]}" "LIST + HEAD of every key, $RAW_HEAD_CONC in flight"
}

wl_ls_local() {
  local d="$WORK/data/$LS_DIR" r t0 j fl=() ff=()
  ls -l "$d" >/dev/null; ls -f "$d" >/dev/null   # warm
  for r in $(runs); do
    t0=$EPOCHREALTIME
    ls -l "$d" >"$WORK/lsl.out"
    fl+=("$(secs_since "$t0")")
    check_ls_l "$WORK/lsl.out" "$LS_N" || { record local ls_l_warm failed "" "" "$CHECK_ERR"; return; }
    j=$(python3 "$HELPERS" lsf "$d")
    [ "$(jget "$j" entries)" = "$LS_N" ] || { record local ls_f_warm failed "" "" "ls -f: $j"; return; }
    ff+=("$(jget "$j" seconds)")
  done
  record local ls_l_warm ok "$(median "${fl[@]}")" "${fl[*]}" ""
  record local ls_f_warm ok "$(median "${ff[@]}")" "${ff[*]}" ""
  # What a local file system pays when `ls -l` needs inodes that are not in memory: the kernel's
  # dentries and inodes dropped (its directory blocks stay in the page cache, so no disk is read).
  [ "$COLD" = 1 ] || return 0
  fl=()
  for r in $(runs); do
    sync; echo 2 >/proc/sys/vm/drop_caches
    t0=$EPOCHREALTIME
    ls -l "$d" >"$WORK/lsl.out"
    fl+=("$(secs_since "$t0")")
    check_ls_l "$WORK/lsl.out" "$LS_N" || { record local ls_l_cold failed "" "" "$CHECK_ERR"; return; }
  done
  record local ls_l_cold ok "$(median "${fl[@]}")" "${fl[*]}" "dentries and inodes dropped (echo 2 > drop_caches), blocks in the page cache"
}

# ls_f_on SYS MNT DIR N [first]: time `ls -f MNT/DIR` (sets LSF_SECS) and check it has N entries;
# with "first", time os.scandir's first entry instead (sets LSF_FIRST too).
ls_f_on() {
  local j
  j=$(timeout -k 10 "$CMD_TIMEOUT" python3 "$HELPERS" "${5:-lsf}" "$2/$3" 2>"$WORK/lsf.err") \
    || { CHECK_ERR="${5:-ls -f} failed: $(head -c 200 "$WORK/lsf.err")"; return 1; }
  [ "$(jget "$j" entries)" = "$4" ] || { CHECK_ERR="${5:-ls -f} listed $(jget "$j" entries) entries, expected $4"; return 1; }
  LSF_SECS=$(jget "$j" seconds); LSF_FIRST=$(jget "$j" first_seconds)
}

wl_ls() {
  local sys=$1 mnt="$WORK/mnt-$1" r t0 fc=() fw=() lc=() lw=() err=""
  for r in $(runs); do
    drop_caches
    if ! mount_fs "$sys" bench-ls "$mnt"; then err="mount: $MOUNT_ERR"; break; fi
    if ! ls_f_on "$sys" "$mnt" "$LS_DIR" "$LS_N"; then err=$CHECK_ERR; unmount_fs "$sys" "$mnt" ls; break; fi
    fc+=("$LSF_SECS")
    if ! ls_f_on "$sys" "$mnt" "$LS_DIR" "$LS_N"; then err=$CHECK_ERR; unmount_fs "$sys" "$mnt" ls; break; fi
    fw+=("$LSF_SECS")
    unmount_fs "$sys" "$mnt" ls
    drop_caches
    if ! mount_fs "$sys" bench-ls "$mnt"; then err="mount: $MOUNT_ERR"; break; fi
    t0=$EPOCHREALTIME
    if ! timeout -k 10 "$CMD_TIMEOUT" ls -l "$mnt/$LS_DIR" >"$WORK/lsl.out" 2>"$WORK/ls.err"; then
      err="ls -l failed: $(head -c 200 "$WORK/ls.err")"; unmount_fs "$sys" "$mnt" ls; break
    fi
    lc+=("$(secs_since "$t0")")
    if ! check_ls_l "$WORK/lsl.out" "$LS_N"; then err=$CHECK_ERR; unmount_fs "$sys" "$mnt" ls; break; fi
    t0=$EPOCHREALTIME
    if ! timeout -k 10 "$CMD_TIMEOUT" ls -l "$mnt/$LS_DIR" >"$WORK/lsl.out" 2>"$WORK/ls.err"; then
      err="ls -l (warm) failed: $(head -c 200 "$WORK/ls.err")"; unmount_fs "$sys" "$mnt" ls; break
    fi
    lw+=("$(secs_since "$t0")")
    if ! check_ls_l "$WORK/lsl.out" "$LS_N"; then err="warm: $CHECK_ERR"; unmount_fs "$sys" "$mnt" ls; break; fi
    unmount_fs "$sys" "$mnt" ls
  done
  local w a
  for w in ls_f_cold:fc ls_f_warm:fw ls_l_cold:lc ls_l_warm:lw; do
    local -n arr=${w#*:}
    a=${w%:*}
    if [ "${#arr[@]}" = "$REPS" ]; then record "$sys" "$a" ok "$(median "${arr[@]}")" "${arr[*]}" ""
    else record "$sys" "$a" failed "" "${arr[*]}" "$err"; fi
    unset -n arr
  done
}

wl_ls_big_raw() {
  local r j fs=() ff=()
  for r in $(runs); do
    drop_caches
    j=$(raw list --bucket bench-lsbig --prefix "$LS_BIG_DIR/" --delimiter /) || { record raw ls_f_big_cold failed "" "" "list failed"; return; }
    [ "$(jget "$j" keys)" = "$LS_BIG_N" ] || { record raw ls_f_big_cold failed "" "" "listed $(jget "$j" keys) keys, expected $LS_BIG_N"; return; }
    fs+=("$(jget "$j" seconds)"); ff+=("$(jget "$j" first_page_seconds)")
  done
  record raw ls_f_big_cold ok "$(median "${fs[@]}")" "${fs[*]}" "paginated LIST with delimiter"
  record raw ls_f_big_first ok "$(median "${ff[@]}")" "${ff[*]}" "first page of 1 000 keys"
}

wl_ls_big() {
  local sys=$1 mnt="$WORK/mnt-$1" r fs=() ff=()
  for r in $(seq "$LS_BIG_REPS"); do
    drop_caches
    if ! mount_fs "$sys" bench-lsbig "$mnt"; then record "$sys" ls_f_big_cold failed "" "${fs[*]}" "mount: $MOUNT_ERR"; return; fi
    if ! ls_f_on "$sys" "$mnt" "$LS_BIG_DIR" "$LS_BIG_N"; then
      unmount_fs "$sys" "$mnt" ls_big; record "$sys" ls_f_big_cold failed "" "${fs[*]}" "$CHECK_ERR"; return
    fi
    unmount_fs "$sys" "$mnt" ls_big
    fs+=("$LSF_SECS")
    drop_caches
    if ! mount_fs "$sys" bench-lsbig "$mnt"; then record "$sys" ls_f_big_first failed "" "${ff[*]}" "mount: $MOUNT_ERR"; continue; fi
    if ! ls_f_on "$sys" "$mnt" "$LS_BIG_DIR" "$LS_BIG_N" first; then
      unmount_fs "$sys" "$mnt" ls_big; record "$sys" ls_f_big_first failed "" "${ff[*]}" "$CHECK_ERR"; continue
    fi
    unmount_fs "$sys" "$mnt" ls_big
    ff+=("$LSF_FIRST")
  done
  record "$sys" ls_f_big_cold ok "$(median "${fs[@]}")" "${fs[*]}" ""
  [ "${#ff[@]}" != "$LS_BIG_REPS" ] || record "$sys" ls_f_big_first ok "$(median "${ff[@]}")" "${ff[*]}" "os.scandir's first entry, fresh mount"
}

wl_find_raw() {
  local r j figs=()
  for r in $(runs); do
    drop_caches
    j=$(raw list --bucket bench-find --prefix "$FIND_DIR/") || { record raw find_cold failed "" "" "list failed"; return; }
    [ "$(jget "$j" keys)" = "$FIND_N" ] || { record raw find_cold failed "" "" "listed $(jget "$j" keys) keys, expected $FIND_N"; return; }
    figs+=("$(jget "$j" seconds)")
  done
  record raw find_cold ok "$(median "${figs[@]}")" "${figs[*]}" "paginated LIST without delimiter"
}

wl_find() {
  local sys=$1 mnt="$WORK/mnt-$1" r t0 n secs figs=()
  for r in $(runs); do
    drop_caches
    if ! mount_fs "$sys" bench-find "$mnt"; then record "$sys" find_cold failed "" "${figs[*]}" "mount: $MOUNT_ERR"; return; fi
    t0=$EPOCHREALTIME
    if ! timeout -k 10 "$CMD_TIMEOUT" find "$mnt/$FIND_DIR" >"$WORK/find.out" 2>"$WORK/find.err"; then
      unmount_fs "$sys" "$mnt" find; record "$sys" find_cold failed "" "${figs[*]}" "find failed: $(head -c 200 "$WORK/find.err")"; return
    fi
    secs=$(secs_since "$t0")
    unmount_fs "$sys" "$mnt" find
    n=$(wc -l <"$WORK/find.out")
    [ "$n" = $((FIND_N + FIND_DIRS + 1)) ] || { record "$sys" find_cold failed "" "${figs[*]}" "find printed $n paths, expected $((FIND_N + FIND_DIRS + 1))"; return; }
    figs+=("$secs")
  done
  record "$sys" find_cold ok "$(median "${figs[@]}")" "${figs[*]}" ""
}

# --- second rsync of an unchanged tree
wl_rsync_raw() {
  local r j figs=()
  raw put-small --bucket bench-rsrc --prefix rsync-src --from-dir "$TREE" --concurrency "$RAW_SMALL_CONC" >/dev/null \
    || { record raw rsync2 failed "" "" "put-small failed"; return; }
  raw list --bucket bench-rsrc >/dev/null   # bench-server walks the bucket once after a write
  for r in $(runs); do
    drop_caches
    j=$(raw list-head --bucket bench-rsrc --prefix rsync-src/ --concurrency "$RAW_HEAD_CONC" 2>"$WORK/raw.err") \
      || { record raw rsync2 failed "" "" "list-head: $(head -c 200 "$WORK/raw.err")"; return; }
    [ "$(jget "$j" keys)" = "$FILES" ] || { record raw rsync2 failed "" "" "listed $(jget "$j" keys) keys, expected $FILES"; return; }
    figs+=("$(jget "$j" seconds)")
  done
  record raw rsync2 ok "$(median "${figs[@]}")" "${figs[*]}" "LIST (no delimiter) + HEAD of every key, $RAW_HEAD_CONC in flight"
}

wl_rsync() {
  local sys=$1 mnt="$WORK/mnt-$1" r t0 secs first n figs=() copied=()
  if ! mount_fs "$sys" "bench-$sys" "$mnt"; then record "$sys" rsync2 failed "" "" "mount: $MOUNT_ERR"; return; fi
  t0=$EPOCHREALTIME
  if ! timeout -k 10 "$CMD_TIMEOUT" rsync -a "$TREE/" "$mnt/rsync/" >"$WORK/rsync.out" 2>&1; then
    unmount_fs "$sys" "$mnt" rsync; record "$sys" rsync2 failed "" "" "first rsync failed: $(tail -c 200 "$WORK/rsync.out")"; return
  fi
  first=$(secs_since "$t0")
  if ! raw wait-prefix --bucket "bench-$sys" --prefix rsync --count "$FILES" --bytes $((FILES * FILE_SIZE)) --timeout "$CMD_TIMEOUT" >/dev/null; then
    unmount_fs "$sys" "$mnt" rsync; record "$sys" rsync2 failed "" "" "after the first rsync, rsync/ never held $FILES objects"; return
  fi
  unmount_fs "$sys" "$mnt" rsync
  for r in $(runs); do
    drop_caches
    if ! mount_fs "$sys" "bench-$sys" "$mnt"; then record "$sys" rsync2 failed "" "${figs[*]}" "mount: $MOUNT_ERR"; return; fi
    t0=$EPOCHREALTIME
    if ! timeout -k 10 "$CMD_TIMEOUT" rsync -a --stats "$TREE/" "$mnt/rsync/" >"$WORK/rsync.out" 2>&1; then
      unmount_fs "$sys" "$mnt" rsync; record "$sys" rsync2 failed "" "${figs[*]}" "second rsync failed: $(tail -c 200 "$WORK/rsync.out")"; return
    fi
    secs=$(secs_since "$t0")
    n=$(sed -n 's/^Number of regular files transferred: *\([0-9,]*\).*/\1/p' "$WORK/rsync.out" | tr -d ,)
    if [ -n "$n" ] && [ "$n" != 0 ]; then
      raw wait-prefix --bucket "bench-$sys" --prefix rsync --count "$FILES" --bytes $((FILES * FILE_SIZE)) --timeout "$CMD_TIMEOUT" >/dev/null || true
    fi
    unmount_fs "$sys" "$mnt" rsync
    [ -n "$n" ] || { record "$sys" rsync2 failed "" "${figs[*]}" "no 'Number of regular files transferred' in rsync --stats"; return; }
    figs+=("$secs"); copied+=("$n")
  done
  if ! check_tree "bench-$sys" rsync; then record "$sys" rsync2 failed "" "${figs[*]}" "$CHECK_ERR"; return; fi
  local note="first rsync $first s; files re-copied by the second: ${copied[*]}"
  RECOPIED[$sys]=${copied[0]}
  for n in "${copied[@]}"; do [ "$n" = 0 ] || RECOPIED[$sys]=$n; done
  record "$sys" rsync2 ok "$(median "${figs[@]}")" "${figs[*]}" "$note"
}

# ---------------------------------------------------------------------------------------------
# 1. Prerequisites and builds
command -v cargo >/dev/null || die "cargo is missing"
command -v fusermount3 >/dev/null || die "fusermount3 is missing: run scripts/setup.sh (installs fuse3)"
[ -e /dev/fuse ] || die "/dev/fuse is missing: this machine cannot mount FUSE file systems"
[ -z "${EPOCHREALTIME:-}" ] && die "bash 5 or newer is needed (EPOCHREALTIME)"
command -v python3 >/dev/null || die "python3 is missing (bench/helpers.py measures through the mounts)"
! want rsync || command -v rsync >/dev/null || die "rsync is missing (workload rsync; BENCH_WORKLOADS selects others)"
HELPERS="$REPO/bench/helpers.py"

log "building bench/ (bench-server, raw-client) and cosmount (release)"
CARGO_TARGET_DIR="$REPO/bench/target" cargo build --release --quiet --manifest-path bench/Cargo.toml
BENCH_BIN="$REPO/bench/target/release"
cargo build --release --quiet
COSMOUNT="${CARGO_TARGET_DIR:-$REPO/target}/release/cosmount"
[ -x "$COSMOUNT" ] || die "cosmount binary not found at $COSMOUNT"
COSMOUNT_ARGS=()
if "$COSMOUNT" --help 2>/dev/null | grep -q -- '--max-memory'; then
  COSMOUNT_ARGS+=(--max-memory "${MAX_MEMORY_MIB}M")
else
  MAX_MEMORY_MIB=""
fi
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

for b in raw $SYSTEMS ls lsbig find rsrc; do raw create-bucket --bucket "bench-$b"; done
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
# Data of the read and listing workloads, written by the raw client, untimed.
if ! want seq_write && { want seq_read || want rand_read; }; then
  raw put-multipart --bucket bench-raw --key big-1 --file "$BIG" --part-size "$RAW_PART_MIB" --concurrency "$RAW_PUT_CONC" >/dev/null
fi
if ! want small_write && want small_read; then
  raw put-small --bucket bench-raw --prefix tree-1 --from-dir "$TREE" --concurrency "$RAW_SMALL_CONC" >/dev/null
fi
declare -a PAR_MD5=()
if want par_read; then
  log "data: 4 x $PAR_MIB MiB random objects par-0..3"
  for i in 0 1 2 3; do
    head -c "$PAR_BYTES" /dev/urandom >"$WORK/data/par"
    PAR_MD5[$i]=$(md5_of "$WORK/data/par")
    raw put-multipart --bucket bench-raw --key "par-$i" --file "$WORK/data/par" --part-size "$RAW_PART_MIB" --concurrency "$RAW_PUT_CONC" >/dev/null
    check_object bench-raw "par-$i" "$PAR_BYTES" "${PAR_MD5[$i]}" || die "$CHECK_ERR"
  done
  rm -f "$WORK/data/par"
fi
if want ls; then
  log "data: $LS_N objects of $LS_SIZE bytes in $LS_DIR/ (and the same names in a local directory)"
  raw put-small --bucket bench-ls --prefix "${LS_DIR%/d00}" --count "$LS_N" --size "$LS_SIZE" --dirs 1 --concurrency "$RAW_SMALL_CONC" >/dev/null
  raw list --bucket bench-ls >/dev/null   # bench-server walks a bucket once after writes: not in any figure
  mkdir -p "$WORK/data/$LS_DIR"
  (cd "$WORK/data/$LS_DIR" && for i in $(seq 0 $((LS_N - 1))); do printf 'f%04d\n' "$i"; done | xargs truncate -s "$LS_SIZE")
fi
if want ls_big; then
  log "data: $LS_BIG_N objects in $LS_BIG_DIR/"
  raw put-small --bucket bench-lsbig --prefix "${LS_BIG_DIR%/d00}" --count "$LS_BIG_N" --size "$LS_SIZE" --dirs 1 --concurrency "$RAW_SMALL_CONC" >/dev/null
  raw list --bucket bench-lsbig >/dev/null
fi
if want find; then
  log "data: $FIND_N objects in $FIND_DIRS directories of $FIND_DIR/"
  raw put-small --bucket bench-find --prefix "$FIND_DIR" --count "$FIND_N" --size "$LS_SIZE" --dirs "$FIND_DIRS" --concurrency "$RAW_SMALL_CONC" >/dev/null
  raw list --bucket bench-find >/dev/null
fi
sync

LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
# 5. Workloads: for each, the raw client, then each system, in REPS rounds (see rounds).
# The listing workloads also run cosmount with --listing-attributes (system cosmount-la).
LS_SYSTEMS=""
for s in $SYSTEMS; do LS_SYSTEMS="$LS_SYSTEMS $s"; [ "$s" != cosmount ] || LS_SYSTEMS="$LS_SYSTEMS cosmount-la"; done
# run_systems FUNCTION WORKLOADS SYSTEMS [ARGS...]: wl_FUNCTION SYSTEM ARGS for each system; a peer
# that is not installed gets WORKLOADS (space-separated) marked failed.
run_systems() {
  local fn=$1 wls=$2 systems=$3 s w
  shift 3
  for s in $systems; do
    if [ -n "${PEER_ERR[$s]:-}" ]; then for w in $wls; do record "$s" "$w" failed "" "" "${PEER_ERR[$s]}"; done; continue; fi
    "wl_$fn" "$s" "$@"
  done
}
if want seq_write; then
  group_seq_write() { wl_seq_write_raw; run_systems seq_write seq_write "$SYSTEMS"; }
  log "workload seq_write ($BIG_MIB MiB, $REPS rounds)"; rounds group_seq_write
fi
# bench-server lists a bucket by walking it once after a write, then from memory (bench/README.md):
# list bench-raw, untimed, before the groups that read it, so that no system pays that walk.
prewarm() { raw list --bucket bench-raw >/dev/null; }
if want seq_read; then
  group_seq_read() { wl_seq_read_raw; run_systems seq_read seq_read_cold "$SYSTEMS"; }
  prewarm; log "workload seq_read_cold ($BIG_MIB MiB, $REPS rounds)"; rounds group_seq_read
fi
if want par_read; then
  group_par_read() { wl_par_read_raw; run_systems par_read par_read_cold "$SYSTEMS"; }
  prewarm; log "workload par_read_cold (4 x $PAR_MIB MiB, $REPS rounds)"; rounds group_par_read
fi
if want rand_read; then
  group_rand_read() { wl_rand_read_raw "$1" "$2"; run_systems rand_read "$2" "$SYSTEMS" "$1" "$2"; }
  prewarm; log "workload rand_read ($RAND_N x 64 KiB, 1 in flight, $REPS rounds)"; rounds group_rand_read 1 rand_read
  log "workload rand_read8 ($RAND_N x 64 KiB, 8 in flight, $REPS rounds)"; rounds group_rand_read 8 rand_read8
fi
if want small_write; then
  group_small_write() { wl_small_write_raw; run_systems small_write small_write "$SYSTEMS"; }
  log "workload small_write ($FILES files, $REPS rounds)"; rounds group_small_write
fi
if want small_read; then
  group_small_read() { wl_small_read_raw; run_systems small_read small_read "$SYSTEMS"; }
  prewarm; log "workload small_read ($FILES files, $REPS rounds)"; rounds group_small_read
fi
if want ls; then
  group_ls() { wl_ls_raw; wl_ls_local; run_systems ls "ls_f_cold ls_f_warm ls_l_cold ls_l_warm" "$LS_SYSTEMS"; }
  log "workload ls ($LS_N entries: ls -f, ls -l, cold and warm, $REPS rounds)"; rounds group_ls
fi
if want ls_big; then
  log "workload ls_big ($LS_BIG_N entries: ls -f cold, $LS_BIG_REPS runs)"
  wl_ls_big_raw; run_systems ls_big "ls_f_big_cold ls_f_big_first" "$LS_SYSTEMS"
fi
if want find; then
  group_find() { wl_find_raw; run_systems find find_cold "$LS_SYSTEMS"; }
  log "workload find ($FIND_N files in $FIND_DIRS directories, $REPS rounds)"; rounds group_find
fi
if want rsync; then
  log "workload rsync ($FILES files: second rsync -a after a remount, $REPS runs)"; wl_rsync_raw; run_systems rsync rsync2 "$SYSTEMS"
fi
LOAD_AFTER=$(cut -d' ' -f1-3 /proc/loadavg)
ELAPSED=$(calc "${EPOCHREALTIME} - $T_START" 0)

# ---------------------------------------------------------------------------------------------
# 6. Report
COLDW=$([ "$COLD" = 1 ] && echo cold || echo warm)
DATA_WL=() META_WL=()
want seq_write && DATA_WL+=(seq_write)
want seq_read && DATA_WL+=(seq_read_cold)
want par_read && DATA_WL+=(par_read_cold)
want rand_read && DATA_WL+=(rand_read rand_read8)
want small_write && DATA_WL+=(small_write)
want small_read && DATA_WL+=(small_read)
want ls && META_WL+=(ls_f_cold ls_l_cold ls_f_warm ls_l_warm)
want ls_big && META_WL+=(ls_f_big_cold ls_f_big_first)
want find && META_WL+=(find_cold)
want rsync && META_WL+=(rsync2)
WORKLOADS=("${DATA_WL[@]}" "${META_WL[@]}")
declare -A TITLE=(
  [seq_write]="seq write $BIG_MIB MiB (MB/s)"
  [seq_read_cold]="seq read $BIG_MIB MiB $COLDW (MB/s)"
  [par_read_cold]="4 × $PAR_MIB MiB read at once, $COLDW (MB/s)"
  [rand_read]="random 64 KiB reads, 1 in flight (ops/s)"
  [rand_read8]="random 64 KiB reads, 8 in flight (ops/s)"
  [small_write]="cp -r $FILES x 32 KiB (files/s)"
  [small_read]="read $FILES files after remount (files/s)"
  [ls_f_cold]="\`ls -f\` $LS_N, $COLDW (s)"
  [ls_l_cold]="\`ls -l\` $LS_N, $COLDW (s)"
  [ls_f_warm]="\`ls -f\` $LS_N, warm (s)"
  [ls_l_warm]="\`ls -l\` $LS_N, warm (s)"
  [ls_f_big_cold]="\`ls -f\` $LS_BIG_N, $COLDW (s)"
  [ls_f_big_first]="$LS_BIG_N: first entry, $COLDW (s)"
  [find_cold]="\`find\` $FIND_N files, $COLDW (s)"
  [rsync2]="2nd \`rsync -a\` $FILES files (s)"
)
declare -A UNIT=([seq_write]="MB/s" [seq_read_cold]="MB/s" [par_read_cold]="MB/s" [rand_read]="ops/s" [rand_read8]="ops/s"
  [small_write]="files/s" [small_read]="files/s")
for w in "${META_WL[@]}"; do UNIT[$w]=s; done
declare -A SYSNAME=([raw]="raw aws-sdk-s3" [cosmount]="cosmount" [cosmount-la]="cosmount --listing-attributes"
  [s3fs]="s3fs" [rclone]="rclone mount" [local]="local directory")

base_of() { # the system whose figure SYSTEM's figure for WORKLOAD is divided by
  case "$2" in
    ls_f_warm|ls_l_warm) echo local ;;
    *) echo raw ;;
  esac
}
base_key() { # base_key SYSTEM WORKLOAD: the FIG key of the baseline
  case "$1|$2" in
    cosmount-la\|ls_l_cold|local\|ls_l_cold) echo "raw|ls_f_cold" ;;
    *) echo "$(base_of "$1" "$2")|$2" ;;
  esac
}
ratio() { # figure of SYSTEM over its baseline's for WORKLOAD
  local f=${FIG[$1|$2]:-} bk r
  bk=$(base_key "$1" "$2"); r=${FIG[$bk]:-}
  if [ -n "$f" ] && [ -n "$r" ] && [ "${STATUS[$1|$2]}" = ok ] && [ "${STATUS[$bk]:-}" = ok ]; then calc "$f / $r" 2; fi
}
cell() {
  local k="$1|$2" r
  [ -n "${STATUS[$k]:-}" ] || { echo "—"; return; }
  [ "${STATUS[$k]}" = ok ] || { echo "FAILED"; return; }
  r=$(ratio "$1" "$2")
  printf '%s' "${FIG[$k]}"
  [ -z "$r" ] || printf ' (%s×)' "$r"
  if [ "$2" = rsync2 ] && [ -n "${RECOPIED[$1]:-}" ] && [ "${RECOPIED[$1]}" != 0 ]; then printf ' re-copied %s' "${RECOPIED[$1]}"; fi
  echo
}
rss_cell() {
  local r=${RSS[$1]:-}
  [ -n "$r" ] || { echo "—"; return; }
  if [ "$1" = cosmount ] && [ -n "$MAX_MEMORY_MIB" ]; then
    echo "$r of $((MAX_MEMORY_MIB + 64)) ($( [ "$r" -le $((MAX_MEMORY_MIB + 64)) ] && echo within || echo OVER))"
  else
    echo "$r"
  fi
}
# table SYSTEMS WORKLOADS... [--rss]
table() {
  local systems=$1 rss=$2 s w
  shift 2
  [ $# -gt 0 ] || return 0
  printf '| system |'; for w in "$@"; do printf ' %s |' "${TITLE[$w]}"; done
  [ "$rss" = 0 ] && echo || echo ' peak RSS (MiB) |'
  printf '|---|'; for _ in "$@"; do printf -- '---:|'; done
  [ "$rss" = 0 ] && echo || printf -- '---:|\n'
  for s in $systems; do
    printf '| %s |' "${SYSNAME[$s]}"
    for w in "$@"; do printf ' %s |' "$(cell "$s" "$w")"; done
    if [ "$rss" = 0 ]; then echo; elif [ "$s" = raw ]; then echo ' — |'; else echo " $(rss_cell "$s") |"; fi
  done
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
OVERRIDES=$(env | grep -E '^BENCH_(REPS|SYSTEMS|BIG_MIB|FILES|PAR_MIB|RAND|LS|LS_BIG|LS_BIG_REPS|FIND|WORKLOADS)=' | sort | tr '\n' ' ' | sed 's/ $//' || true)
[ -z "$OVERRIDES" ] || CMDLINE="$OVERRIDES $CMDLINE"
META_SYSTEMS="raw $LS_SYSTEMS"; want ls && META_SYSTEMS="$META_SYSTEMS local"
COSMOUNT_OPTS="\`--force-path-style\`, part size 8 MiB, upload concurrency 8"
[ -z "$MAX_MEMORY_MIB" ] || COSMOUNT_OPTS="$COSMOUNT_OPTS, \`--max-memory ${MAX_MEMORY_MIB}M\` (peak RSS shown against that + 64 MiB)"

{
  echo "# cosmount benchmark: $DATE, $LABEL ($MODE mode)"
  echo
  echo "\`$CMDLINE\` — ratios are to the raw aws-sdk-s3 client in this same run (BENCH.md); for warm listings, to a local directory."
  echo
  echo "- Machine: $NPROC CPUs, $MEM_MIB MiB RAM, kernel $KERNEL; load average (1/5/15 min) $LOAD_BEFORE before the workloads, $LOAD_AFTER after; workloads took $ELAPSED s."
  echo "- Server: bench-server (s3s-fs 0.14.1 with TCP_NODELAY) on 127.0.0.1; 1-byte GET latency p50 $LAT_P50 ms, p99 $LAT_P99 ms."
  echo "- Data: one $BIG_MIB MiB random file; 4 random objects of $PAR_MIB MiB; $FILES random files of 32 KiB in $DIRS directories; $RAND_N random 64 KiB-aligned offsets per run; listings: $LS_N and $LS_BIG_N objects of $LS_SIZE bytes in one directory each, $FIND_N in $FIND_DIRS directories. Median of $REPS runs ($LS_BIG_REPS for the $LS_BIG_N listing); reads and cold listings $([ "$COLD" = 1 ] && echo "cold (page cache dropped, fresh mount each run)" || echo "NOT cold (could not drop the page cache), fresh mount each run")."
  echo "- raw: bench/ raw-client (aws-sdk-s3, the mount's SDK): multipart $RAW_PART_MIB MiB parts x $RAW_PUT_CONC, ranged GETs $RAW_RANGE_MIB MiB x $RAW_GET_CONC (the 4 objects: one pool of $RAW_GET_CONC), random 64 KiB ranged GETs 1 / 8 in flight, small PUT/GET $RAW_SMALL_CONC in flight (LIST then GETs), listings: paginated ListObjectsV2 (1 000 a page; delimiter \`/\` for a directory, none for \`find\`), \`ls -l\` and \`rsync\`: LIST + HEAD of every key, $RAW_HEAD_CONC in flight; CRC32 request checksums like the mount."
  echo "- cosmount $COSMOUNT_REV: defaults ($COSMOUNT_OPTS); cosmount --listing-attributes: the same plus that option, on listings only (its cold \`ls -l\` ratio is to the raw LIST without HEADs)."
  [ "${STATUS[local|ls_l_cold]:-}" != ok ] || echo "- local directory, cold \`ls -l\`: the same $LS_N files after \`echo 2 > /proc/sys/vm/drop_caches\` (the kernel's dentries and inodes dropped, the directory's blocks still in the page cache): what building the inodes costs a local file system; its ratio is to the raw LIST, like cosmount --listing-attributes."
  for s in $SYSTEMS; do
    case "$s" in
      s3fs) echo "- s3fs ($(peer_version s3fs)): \`-o url=ENDPOINT -o use_path_request_style -o passwd_file=FILE\`, otherwise defaults." ;;
      rclone) echo "- rclone mount ($(peer_version rclone)): S3 remote (provider Other) from RCLONE_CONFIG_* variables, \`--vfs-cache-mode writes --daemon\`, otherwise defaults (write-back after 5 s: its write figures count until the objects are stored)." ;;
    esac
  done
  echo "- Writes are timed until the data is stored in S3 (cp returning, including close, plus any upload after it) and then checked through the S3 API (size + MD5; byte-for-byte for the small files and the rsync tree); reads are checked through the mount (MD5; \`diff -r\`; every random block compared with the input); listings by entry count (and, for \`ls -l\`, every entry's size)."
  echo "- Warm listings: the same command again right after the cold one on the same mount (cosmount's default --metadata-ttl is 1 s), against the same command on a local directory of $LS_N files. \`rsync -a --stats\` after a first rsync and a remount; \"re-copied N\" when it transferred files again."
  echo
  if [ ${#DATA_WL[@]} -gt 0 ]; then
    echo "Data (higher is better; ratio = figure / raw):"
    echo
    table "raw $SYSTEMS" 1 "${DATA_WL[@]}"
    echo
  fi
  if [ ${#META_WL[@]} -gt 0 ]; then
    echo "Listings and metadata (seconds, lower is better; ratio = time / baseline time: raw, or the local directory for warm listings):"
    echo
    table "$META_SYSTEMS" "$([ ${#DATA_WL[@]} -gt 0 ] && echo 0 || echo 1)" "${META_WL[@]}"
    echo
  fi
  echo "Runs (in order):"
  echo
  for s in raw $LS_SYSTEMS local; do
    for w in "${WORKLOADS[@]}"; do
      k="$s|$w"
      [ -n "${STATUS[$k]:-}" ] || continue
      line="- ${SYSNAME[$s]}, $w: ${RUNS[$k]:-none} ${UNIT[$w]}"
      [ "${STATUS[$k]}" = ok ] || line="$line — FAILED"
      [ -z "${NOTE[$k]:-}" ] || line="$line — ${NOTE[$k]}"
      echo "$line"
    done
  done
  if [ ${#RSS_GROUP[@]} -gt 0 ]; then
    echo
    printf 'Peak RSS by workload group (MiB):'
    for s in $LS_SYSTEMS; do for w in seq_write seq_read_cold par_read_cold rand_read rand_read8 small_write small_read ls ls_big find rsync; do
      [ -z "${RSS_GROUP[$s|$w]:-}" ] || printf ' %s %s %s;' "$s" "$w" "${RSS_GROUP[$s|$w]}"; done; done
    echo
  fi
} >"$OUT_MD"

{
  printf '{\n  "date": %s, "label": %s, "mode": %s, "command": %s,\n' "$(json_str "$DATE")" "$(json_str "$LABEL")" "$(json_str "$MODE")" "$(json_str "$CMDLINE")"
  printf '  "machine": {"nproc": %s, "mem_mib": %s, "kernel": %s, "load_before": %s, "load_after": %s, "seconds": %s},\n' \
    "$NPROC" "$MEM_MIB" "$(json_str "$KERNEL")" "$(json_str "$LOAD_BEFORE")" "$(json_str "$LOAD_AFTER")" "$ELAPSED"
  printf '  "server": {"name": "bench-server (s3s-fs 0.14.1, TCP_NODELAY)", "latency_p50_ms": %s, "latency_p99_ms": %s},\n' "$LAT_P50" "$LAT_P99"
  printf '  "data": {"big_bytes": %s, "big_md5": %s, "files": %s, "file_size": %s, "dirs": %s, "par_bytes": %s, "random_reads": %s, "block": %s, "ls_entries": %s, "ls_big_entries": %s, "find_files": %s, "find_dirs": %s, "reps": %s, "ls_big_reps": %s, "cold": %s},\n' \
    "$BIG_BYTES" "$(json_str "$BIG_MD5")" "$FILES" "$FILE_SIZE" "$DIRS" "$PAR_BYTES" "$RAND_N" "$BLOCK" "$LS_N" "$LS_BIG_N" "$FIND_N" "$FIND_DIRS" "$REPS" "$LS_BIG_REPS" "$([ "$COLD" = 1 ] && echo true || echo false)"
  printf '  "raw_client": {"part_mib": %s, "put_concurrency": %s, "range_mib": %s, "get_concurrency": %s, "small_concurrency": %s, "head_concurrency": %s},\n' \
    "$RAW_PART_MIB" "$RAW_PUT_CONC" "$RAW_RANGE_MIB" "$RAW_GET_CONC" "$RAW_SMALL_CONC" "$RAW_HEAD_CONC"
  printf '  "versions": {"cosmount": %s' "$(json_str "$COSMOUNT_REV")"
  for s in $SYSTEMS; do [ "$s" = cosmount ] || printf ', %s: %s' "$(json_str "$s")" "$(json_str "$(peer_version "$s")")"; done
  printf '},\n  "cosmount_max_memory_mib": %s,\n  "peak_rss_mib": {' "${MAX_MEMORY_MIB:-null}"
  sep=""; for s in $LS_SYSTEMS; do printf '%s%s: %s' "$sep" "$(json_str "$s")" "${RSS[$s]:-null}"; sep=", "; done
  printf '},\n  "results": [\n'
  sep=""
  for s in raw $LS_SYSTEMS local; do
    for w in "${WORKLOADS[@]}"; do
      k="$s|$w"
      [ -n "${STATUS[$k]:-}" ] || continue
      runs=$(echo "${RUNS[$k]:-}" | sed 's/^ *//; s/ *$//; s/  */, /g')
      bk=$(base_key "$s" "$w")
      printf '%s    {"system": %s, "workload": %s, "unit": %s, "better": %s, "status": %s, "figure": %s, "baseline": %s, "ratio": %s, "runs": [%s], "note": %s}' \
        "$sep" "$(json_str "$s")" "$(json_str "$w")" "$(json_str "${UNIT[$w]}")" "$(json_str "$([ "${UNIT[$w]}" = s ] && echo lower || echo higher)")" \
        "$(json_str "${STATUS[$k]}")" "${FIG[$k]:-null}" "$(json_str "${bk/|/ }")" "$(r=$(ratio "$s" "$w"); echo "${r:-null}")" "$runs" "$(json_str "${NOTE[$k]:-}")"
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
