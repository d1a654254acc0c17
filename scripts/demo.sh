#!/usr/bin/env bash
# The README's first command: cosmount's three uses end to end, against local servers on 127.0.0.1.
#
#   1. Copy a real tree in with cp -r and rsync -a, check it with diff -r, and keep it in sync:
#      a second rsync sends nothing, a third sends only what changed. Then the mount's /metrics.
#   2. Mount at boot: the same bucket from an fstab line (mount -a -T, as root) and the way the
#      systemd unit runs cosmount (Type=notify: READY=1, then SIGTERM unmounts and exits 0).
#   3. Legal holds and retention on the repository's IBM COS double: setfattr puts a hold, rm is
#      refused with "Operation not permitted", getfattr -d shows the hold and the retention.
#
# It installs what is missing (scripts/setup.sh), builds the release binary, and removes everything
# it made when it ends, also on failure or Ctrl-C: mounts, daemons, servers, temporary files. It
# exits non-zero as soon as a step does not behave as it says.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
PY=$ROOT/.venv/bin/python

STEP=0
if [ -t 1 ]; then BOLD=$'\e[1m' CYAN=$'\e[36m' GREEN=$'\e[32m' RED=$'\e[31m' PLAIN=$'\e[0m'; else BOLD='' CYAN='' GREEN='' RED='' PLAIN=''; fi
step() { STEP=$((STEP + 1)); printf '\n%s== %d. %s%s\n' "$BOLD" "$STEP" "$1" "$PLAIN"; shift; for l in "$@"; do printf '   %s\n' "$l"; done; }
show() { printf '%s$ %s%s\n' "$CYAN" "$*" "$PLAIN"; }
run() { show "$*"; "$@"; }
ok() { printf '%sok:%s %s\n' "$GREEN" "$PLAIN" "$*"; }
fail() { printf '\n%sFAILED at step %d: %s%s\n' "$RED" "$STEP" "$*" "$PLAIN" >&2; exit 1; }

printf '%s== Installing what is missing (scripts/setup.sh) and building cosmount (release)%s\n' "$BOLD" "$PLAIN"
bash scripts/setup.sh
cargo build --release --quiet
TARGET=${CARGO_TARGET_DIR:-target}
case $TARGET in /*) ;; *) TARGET=$ROOT/$TARGET ;; esac
BIN=$TARGET/release/cosmount
[ -x "$BIN" ] || fail "no binary at $BIN"
START=$(date +%s)

WORK=$(mktemp -d /tmp/cosmount-demo.XXXXXX)
mkdir -p "$WORK/logs" "$WORK/state"
BACKGROUND_PIDS=()

# Every mount of the demo is under $WORK, and every daemon has $WORK on its command line.
our_mounts() { awk -v w="$WORK/" 'index($5, w) == 1 { print $5 }' /proc/self/mountinfo 2>/dev/null || true; }
mounted() { awk -v m="$1" '$5 == m { found = 1 } END { exit !found }' /proc/self/mountinfo; }
our_daemons() { pgrep -f "cosmount .*$WORK/" || true; }

cleanup() {
  local rc=$?
  cd /
  for m in $(our_mounts); do fusermount3 -u "$m" 2>/dev/null || fusermount3 -u -z "$m" 2>/dev/null || true; done
  local pids=()
  mapfile -t pids < <(our_daemons)
  if [ ${#pids[@]} -gt 0 ]; then
    kill -TERM "${pids[@]}" 2>/dev/null || true
    for _ in $(seq 50); do [ -z "$(our_daemons)" ] && break; sleep 0.1; done
    mapfile -t pids < <(our_daemons)
    if [ ${#pids[@]} -gt 0 ]; then kill -KILL "${pids[@]}" 2>/dev/null || true; fi
  fi
  exec 7>&- 8>&-   # the servers stop when their standard input closes
  for p in "${BACKGROUND_PIDS[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
  for m in $(our_mounts); do umount -l "$m" 2>/dev/null || true; done
  if [ -z "$(our_mounts)" ]; then rm -rf --one-file-system "$WORK"; else echo "left $WORK: still mounted" >&2; fi
  if [ "$rc" -eq 0 ]; then
    printf '\n%s== Done: all %d steps behaved as shown, in %d s after the build; everything the demo made is gone.%s\n' \
      "$BOLD" "$STEP" "$(($(date +%s) - START))" "$PLAIN"
  else
    printf '\n%s== The demo failed (exit %d); its mounts, daemons, servers and files are cleaned up.%s\n' "$RED" "$rc" "$PLAIN" >&2
  fi
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# Credentials for the local servers only: nothing of the caller's may be used or changed.
unset IBM_API_KEY_ID IBM_SERVICE_INSTANCE_ID IBM_AUTH_ENDPOINT COS_CREDENTIALS_FILE AWS_PROFILE AWS_SESSION_TOKEN
export AWS_ACCESS_KEY_ID=demo AWS_SECRET_ACCESS_KEY=demo-secret AWS_REGION=us-east-1
export AWS_SHARED_CREDENTIALS_FILE=/dev/null AWS_CONFIG_FILE=/dev/null

# A server (tests/support/*.py) on a free port; it prints "PORT n" and stops when its stdin closes,
# which happens when this script exits, however it exits. Sets ENDPOINT.
start_server() { # script-name fd
  local name=$1 fd=$2
  mkfifo "$WORK/$name.stdin"
  "$PY" "tests/support/$name.py" <"$WORK/$name.stdin" >"$WORK/$name.port" 2>"$WORK/logs/$name.log" &
  BACKGROUND_PIDS+=("$!")
  eval "exec $fd>\"\$WORK/\$name.stdin\""
  for _ in $(seq 300); do grep -q '^PORT ' "$WORK/$name.port" && break; sleep 0.1; done
  grep -q '^PORT ' "$WORK/$name.port" || fail "$name did not start (see $WORK/logs/$name.log)"
  ENDPOINT="http://127.0.0.1:$(awk '/^PORT / { print $2 }' "$WORK/$name.port")"
}
free_port() { "$PY" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
s3() { "$PY" "$WORK/s3.py" "$@"; }
cat >"$WORK/s3.py" <<'PY'
"""The demo's S3 API calls, to set buckets up and to check what is really stored."""
import base64, hashlib, sys, urllib.request
import boto3

cmd, endpoint, bucket = sys.argv[1:4]
s3 = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")
if cmd == "mb":
    s3.create_bucket(Bucket=bucket)
elif cmd == "protect":  # IBM's ?protection: retention 0 days by default, at most 365
    x = (b"<ProtectionConfiguration><Status>Retention</Status><MinimumRetention><Days>0</Days></MinimumRetention>"
         b"<DefaultRetention><Days>0</Days></DefaultRetention><MaximumRetention><Days>365</Days></MaximumRetention>"
         b"</ProtectionConfiguration>")
    md5 = base64.b64encode(hashlib.md5(x).digest()).decode()
    r = urllib.request.Request(f"{endpoint}/{bucket}?protection", data=x, method="PUT", headers={"Content-MD5": md5})
    urllib.request.urlopen(r).read()
elif cmd == "count":  # keys under a prefix
    n = sum(p.get("KeyCount", 0) for p in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=sys.argv[4]))
    print(n)
elif cmd == "head":  # size and user metadata of one object, or "missing"
    try:
        h = s3.head_object(Bucket=bucket, Key=sys.argv[4])
        print(f"s3://{bucket}/{sys.argv[4]}: {h['ContentLength']} bytes, metadata {h['Metadata']}")
    except s3.exceptions.ClientError:
        print("missing")
PY

step "Starting two local S3 servers" \
  "moto 5.2.5 (plain S3) and the repository's IBM COS double (moto plus IBM's retention API)."
start_server moto_server 7 && MOTO=$ENDPOINT
start_server cos_double 8 && DOUBLE=$ENDPOINT
echo "moto on $MOTO, the IBM COS double on $DOUBLE"
cd "$WORK"

# --- Use 1 -----------------------------------------------------------------------------------
step "A real tree to copy: this repository's src, tests, scripts and packaging" \
  "plus a 20 MiB file (stored as a multipart upload), an empty directory, a symlink and a name with spaces."
mkdir atlas
cp -a "$ROOT/src" "$ROOT/tests" "$ROOT/scripts" "$ROOT/packaging" atlas/
mkdir atlas/empty atlas/data
head -c 20971520 /dev/urandom >atlas/data/random.bin
echo "a file name with spaces" >"atlas/notes with spaces.txt"
ln -s scripts/demo.sh atlas/latest-demo
FILES=$(find atlas -type f | wc -l)
echo "atlas/: $FILES files, $(find atlas -type d | wc -l) directories, $(du -sh atlas | cut -f1)"

step "Mounting bucket demo-sync with its metrics on, in the background" \
  "cosmount returns once the mount is live; the daemon keeps serving."
s3 mb "$MOTO" demo-sync
METRICS=127.0.0.1:$(free_port)
mkdir sync
run "$BIN" demo-sync sync --endpoint-url "$MOTO" --force-path-style --metrics-addr "$METRICS" \
  --state-dir "$WORK/state" --log-file "$WORK/logs/sync.log"
mounted "$WORK/sync" || fail "sync is not mounted"
ok "mounted: $(findmnt -n -o SOURCE,TARGET,FSTYPE "$WORK/sync")"

step "cp -r of the tree into the bucket, then diff -r" "cp writes each file; cosmount stores it when cp closes it."
run cp -r atlas sync/cp-copy
run diff -r atlas sync/cp-copy || fail "diff -r found differences after cp -r"
ok "diff -r: no differences"
n=$(s3 count "$MOTO" demo-sync cp-copy/)
echo "the S3 API lists $n keys under cp-copy/ ($FILES files, the symlink and the directory markers)"
[ "$n" -gt "$FILES" ] || fail "the bucket holds $n keys under cp-copy/, fewer than the $FILES files copied"

step "rsync -a of the same tree into another folder, then diff -r" \
  "rsync -a also sets modes, owners and times; cosmount keeps them in each object's metadata."
show "rsync -a --stats atlas/ sync/rsync-copy/"
rsync -a --stats atlas/ sync/rsync-copy/ | grep -E '^Number of (regular )?files|^Total transferred'
run diff -r atlas sync/rsync-copy || fail "diff -r found differences after rsync -a"
ok "diff -r: no differences"
s3 head "$MOTO" demo-sync rsync-copy/scripts/demo.sh

s3_requests() { # S3 requests sent so far, by operation, from the mount's /metrics
  "$PY" -c 'import sys, urllib.request; print(urllib.request.urlopen(sys.argv[1], timeout=10).read().decode())' \
    "http://$METRICS/metrics" |
    sed -n 's/^cosmount_s3_requests_total{operation="\([A-Za-z]*\)"} \([0-9.e+]*\)$/\1 \2/p' | sort
}
step "The second rsync -a of the unchanged tree transfers 0 files" \
  "rsync compares size and mtime, which the mount reports from the stored metadata: nothing to send." \
  "-i lists every item rsync changes; nothing may be listed."
sleep 1.2 # past --metadata-ttl (1 s): the mount asks S3 again rather than trusting what it saw
s3_requests >before.txt
show "rsync -a -i --stats atlas/ sync/rsync-copy/"
rsync -a -i --stats atlas/ sync/rsync-copy/ >rsync2.txt
grep -E '^Number of (regular )?files|^Total transferred' rsync2.txt
s3_requests >after.txt
changed=$(grep -Ev '^$|^Number|^Total|^Literal|^Matched|^File list|^sent|^total' rsync2.txt || true)
[ -z "$changed" ] || fail "the second rsync changed items: $changed"
grep -q '^Number of regular files transferred: 0$' rsync2.txt || fail "the second rsync transferred files"
ok "0 files transferred, no item itemized"
echo "S3 requests the second rsync caused (from /metrics):"
join -a1 -a2 -e0 -o 0,1.2,2.2 before.txt after.txt | awk '$3 != $2 { printf "  %-24s %d\n", $1, $3 - $2 }'
sent=$(join -a1 -a2 -e0 -o 0,1.2,2.2 before.txt after.txt |
  awk '$1 ~ /^(PutObject|CopyObject|CreateMultipartUpload|UploadPart|DeleteObject)$/ && $3 != $2 { print $1 }')
[ -z "$sent" ] || fail "the second rsync stored or deleted objects: $sent"
ok "no PutObject, CopyObject, multipart upload or DeleteObject: only listings and metadata reads"

step "Keeping it in sync: change one file, add one, delete one, rsync -a --delete again" \
  "rsync sends exactly the two changed files and deletes the third through the mount."
echo "one more line" >>atlas/scripts/setup.sh
echo "a new file" >atlas/new.txt
rm atlas/packaging/cosmount.conf.example
show "rsync -a --delete -i --stats atlas/ sync/rsync-copy/"
rsync -a --delete -i --stats atlas/ sync/rsync-copy/ >rsync3.txt
grep -E '^[<>ch.*]|^\*deleting' rsync3.txt | grep -v '^\.d' || true
grep -E '^Number of regular files transferred' rsync3.txt
grep -q '^Number of regular files transferred: 2$' rsync3.txt || fail "the third rsync did not transfer exactly 2 files"
grep -q '^\*deleting *packaging/cosmount.conf.example$' rsync3.txt || fail "the third rsync did not delete the removed file"
run diff -r atlas sync/rsync-copy || fail "diff -r found differences after the sync"
[ "$(s3 head "$MOTO" demo-sync rsync-copy/packaging/cosmount.conf.example)" = missing ] ||
  fail "the deleted file is still in the bucket"
ok "2 files sent, 1 deleted (gone from the bucket too), diff -r: no differences"

step "The mount's Prometheus metrics (--metrics-addr $METRICS)" \
  "What the copies cost in S3 requests, and how the FUSE requests went."
show "GET http://$METRICS/metrics   (selected lines)"
"$PY" -c 'import sys, urllib.request; print(urllib.request.urlopen(sys.argv[1], timeout=10).read().decode())' \
  "http://$METRICS/metrics" >metrics.txt
grep -E '^cosmount_s3_requests_total|^cosmount_fuse_requests_total\{op="(write|read|readdirplus|lookup)"\}|^cosmount_s3_(sent|received)_bytes_total|^cosmount_memory_budget_bytes|^cosmount_fuse_errors_total' metrics.txt
puts=$(awk '$1 == "cosmount_s3_requests_total{operation=\"PutObject\"}" { print $2 }' metrics.txt)
[ "${puts:-0}" != 0 ] || fail "/metrics shows no PutObject"
grep -q '^cosmount_s3_requests_total{operation="CreateMultipartUpload"}' metrics.txt ||
  fail "/metrics shows no multipart upload (the 20 MiB file)"
ok "$(wc -l <metrics.txt) lines of metrics; PutObject and multipart uploads counted"

run fusermount3 -u sync
for _ in $(seq 100); do pgrep -f "cosmount demo-sync $WORK/sync" >/dev/null || break; sleep 0.1; done
pgrep -f "cosmount demo-sync $WORK/sync" >/dev/null && fail "the daemon did not exit after fusermount3 -u"
ok "unmounted; the daemon has exited"

# --- Use 2 -----------------------------------------------------------------------------------
mkdir boot
OPTS="ro,_netdev,nofail,endpoint_url=$MOTO,force_path_style,state_dir=$WORK/state,log_file=$WORK/logs/boot.log,x-systemd.automount"
echo "demo-sync:rsync-copy  $WORK/boot  fuse.cosmount  $OPTS  0  0" >fstab
if [ "$(id -u)" -eq 0 ] && command -v unshare >/dev/null && command -v mount >/dev/null; then
  step "Mount at boot, from fstab: mount -a -T fstab, then umount" \
    "The line below mounts the synced folder read-only. mount(8) runs cosmount without PATH, so the binary" \
    "must be in /usr/local/bin: here that is a private mount namespace where /usr/local/bin is a directory" \
    "holding a link to the binary, so the machine is not changed."
  cat fstab
  mkdir bin && ln -s "$BIN" bin/cosmount
  show "mount -a -T fstab; findmnt boot; diff -r atlas boot; touch boot/x; umount boot"
  # shellcheck disable=SC2016 # expanded by the inner shell
  WORK=$WORK unshare --mount --propagation private bash -c '
    set -e
    mount --bind "$WORK/bin" /usr/local/bin
    mount -a -T "$WORK/fstab"
    findmnt "$WORK/boot"
    diff -r "$WORK/atlas" "$WORK/boot" && echo "diff -r atlas boot: no differences"
    if touch "$WORK/boot/x" 2>touch.err; then echo "touch: allowed on a ro mount"; exit 1; fi
    cat touch.err
    umount "$WORK/boot"
    for _ in $(seq 100); do pgrep -f "[c]osmount demo-sync:rsync-copy" >/dev/null || break; sleep 0.1; done
    if pgrep -f "[c]osmount demo-sync:rsync-copy" >/dev/null; then echo "the daemon is still running"; exit 1; fi
  ' >boot.txt 2>&1 || { cat boot.txt; fail "mounting from fstab did not behave as shown"; }
  cat boot.txt
  grep -q 'Read-only file system' boot.txt || fail "touch on the ro mount did not fail with Read-only file system"
  ok "mounted by mount(8) from the fstab line, read-only as asked, unmounted by umount; the daemon exited"
else
  step "Mount at boot, from fstab (as a user: the command mount.fuse3 runs for the line)" \
    "Mounting from fstab needs root; this runs what mount(8) runs for the line below."
  cat fstab
  run "$BIN" demo-sync:rsync-copy "$WORK/boot" -o "$OPTS"
  run diff -r atlas boot || fail "diff -r found differences on the fstab-style mount"
  show "touch boot/x"
  if touch boot/x 2>touch.err; then fail "touch was allowed on a ro mount"; fi
  cat touch.err
  grep -q 'Read-only file system' touch.err || fail "touch on the ro mount did not fail with Read-only file system"
  run fusermount3 -u boot
  ok "mounted with the fstab line's options, read-only as asked, unmounted"
fi

step "Mount at boot, with systemd: what packaging/cosmount@.service runs" \
  "The unit is Type=notify: cosmount --foreground sends READY=1 to \$NOTIFY_SOCKET once the mount is live," \
  "and systemctl stop sends SIGTERM, which unmounts cleanly (exit 0). Here a small listener plays systemd."
cat >demo.conf <<EOF
BUCKET=demo-sync:cp-copy
MOUNTPOINT=$WORK/boot
COSMOUNT_ENDPOINT_URL=$MOTO
COSMOUNT_ARGS="--force-path-style --read-only --state-dir $WORK/state"
EOF
echo "/etc/cosmount/demo.conf would hold:"; sed 's/^/  /' demo.conf
"$PY" -c '
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(sys.argv[1]); s.settimeout(60)
print("listening", flush=True)
while True:
    msg = s.recv(4096).decode()
    print(msg.replace("\n", " "), flush=True)
    if "STOPPING=1" in msg:
        break
' "$WORK/notify.sock" >notify.txt 2>&1 &
LISTENER=$!
BACKGROUND_PIDS+=("$LISTENER")
for _ in $(seq 100); do grep -q listening notify.txt && break; sleep 0.1; done
# shellcheck disable=SC2016 # shown as the unit writes it
show 'NOTIFY_SOCKET=notify.sock cosmount --foreground $COSMOUNT_ARGS $BUCKET $MOUNTPOINT &'
(
  set -a # systemd's EnvironmentFile=
  # shellcheck disable=SC1091
  . ./demo.conf
  set +a
  # shellcheck disable=SC2086 # COSMOUNT_ARGS is split into words, as systemd does
  NOTIFY_SOCKET=$WORK/notify.sock exec "$BIN" --foreground $COSMOUNT_ARGS "$BUCKET" "$MOUNTPOINT" 2>"$WORK/logs/unit.log"
) &
UNIT=$!
for _ in $(seq 300); do grep -q 'READY=1' notify.txt && break; sleep 0.1; done
grep -q 'READY=1' notify.txt || fail "no READY=1 from cosmount --foreground"
echo "the service manager got: $(grep READY=1 notify.txt)"
run ls boot
[ -f boot/scripts/demo.sh ] || fail "the files were not there when READY=1 came"
show "kill -TERM $UNIT   # systemctl stop"
kill -TERM "$UNIT"
rc=0; wait "$UNIT" || rc=$?
wait "$LISTENER" || true
echo "the service manager got: $(grep STOPPING=1 notify.txt || true)"
[ "$rc" -eq 0 ] || fail "cosmount --foreground exited $rc after SIGTERM"
grep -q 'STOPPING=1' notify.txt || fail "no STOPPING=1 after SIGTERM"
mounted "$WORK/boot" && fail "still mounted after SIGTERM"
ok "READY=1 once mounted, files in place; SIGTERM: STOPPING=1, unmounted, exit 0"

# --- Use 3 -----------------------------------------------------------------------------------
step "Legal holds and retention: a bucket with an IBM retention policy, on the IBM COS double" \
  "Policy: retention of 0 days by default (so the demo can delete), at most 365. getfattr -d on the mount root shows it."
s3 mb "$DOUBLE" demo-evidence
s3 protect "$DOUBLE" demo-evidence
mkdir evidence
run "$BIN" demo-evidence evidence --endpoint-url "$DOUBLE" --force-path-style --state-dir "$WORK/state" \
  --log-file "$WORK/logs/evidence.log"
run getfattr -d evidence | tee policy.txt
grep -q 'user.cos.protection.status="Retention"' policy.txt || fail "getfattr -d shows no retention policy"
mkdir -p case-2026-17
printf 'Findings of case 2026-17.\n' >case-2026-17/report.txt
head -c 200000 /dev/urandom >case-2026-17/photo.jpg
run cp -r case-2026-17 evidence/
ok "the bucket's policy is shown; the case folder is stored"

step "setfattr puts the legal hold case-2026-17 on both files and extends report.txt's retention to a day" \
  "getfattr -d shows the retention, the hold count, and each hold with the date it was applied."
run find evidence/case-2026-17 -type f -exec setfattr -n user.cos.legal-hold.case-2026-17 {} +
run setfattr -n user.cos.retention-period -v 86400 evidence/case-2026-17/report.txt
run getfattr -d evidence/case-2026-17/report.txt | tee report.xattr
grep -q '^user.cos.legal-hold.case-2026-17=' report.xattr || fail "getfattr -d does not show the hold"
grep -q '^user.cos.legal-hold-count="1"' report.xattr || fail "getfattr -d does not count the hold"
grep -q '^user.cos.retention-period="86400"' report.xattr || fail "getfattr -d does not show the extended retention"
grep -q '^user.cos.retention-expiration-date=' report.xattr || fail "getfattr -d does not show the expiration date"
ok "hold and retention shown"

expect_eperm() { # command...: must fail with "Operation not permitted"
  show "$*"
  if "$@" 2>err.txt; then fail "$* was allowed"; fi
  cat err.txt
  grep -q 'Operation not permitted' err.txt || fail "$* failed, but not with Operation not permitted"
}
step "rm of a held file is refused with Operation not permitted" \
  "The object stays in the bucket; cosmount's log names the reason."
expect_eperm rm evidence/case-2026-17/photo.jpg
[ -f evidence/case-2026-17/photo.jpg ] || fail "photo.jpg is gone from the mount"
s3 head "$DOUBLE" demo-evidence case-2026-17/photo.jpg | grep -q bytes || fail "photo.jpg is gone from the bucket"
why=$(grep 'photo.jpg' "$WORK/logs/evidence.log" | grep -m1 'EPERM' || true)
echo "cosmount's log: ${why#* WARN }"
case $why in *"legal hold"*) ;; *) fail "the log does not name the legal hold" ;; esac
expect_eperm setfattr -n user.cos.retention-period -v 60 evidence/case-2026-17/report.txt
ok "rm refused; the photo is still in the bucket; retention cannot be shortened either"

step "Releasing the hold: setfattr -x" \
  "photo.jpg, held but not retained, can then be deleted; report.txt stays protected by its retention."
run find evidence/case-2026-17 -type f -exec setfattr -x user.cos.legal-hold.case-2026-17 {} +
run getfattr -n user.cos.legal-hold-count evidence/case-2026-17/report.txt | tee count.txt
grep -q 'user.cos.legal-hold-count="0"' count.txt || fail "the hold count is not 0 after setfattr -x"
run rm evidence/case-2026-17/photo.jpg || fail "rm of the released photo.jpg failed"
[ "$(s3 head "$DOUBLE" demo-evidence case-2026-17/photo.jpg)" = missing ] || fail "photo.jpg is still in the bucket"
expect_eperm rm evidence/case-2026-17/report.txt
ok "released photo.jpg deleted; report.txt, retained for a day, still refused"

run fusermount3 -u evidence
for _ in $(seq 100); do [ -z "$(our_daemons)" ] && break; sleep 0.1; done
[ -z "$(our_daemons)" ] || fail "a cosmount daemon is still running after the last unmount"
[ -z "$(our_mounts)" ] || fail "still mounted: $(our_mounts)"
ok "every mount unmounted, every daemon exited; the servers stop and the temporary files go as the demo ends"
