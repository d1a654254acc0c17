#!/usr/bin/env bash
# Benchmarks cosmount the way /work/shared/BENCH.md says: ratios taken in one run, on the same data,
# against the same local S3 server, for a raw aws-sdk-s3 client (the practical limit) and, in full
# mode, for the peers s3fs and rclone mount (installed with apt-get if missing).
#
#   scripts/bench.sh [--quick] [--label NAME] [--latency MS]
#
# Workloads, each for every system in turn (raw client first; "cosmount-la" is cosmount with
# --listing-attributes, measured on the listing workloads only; "cosmount-wc" is cosmount with
# --write-cache DIR, a directory of its own, when BENCH_SYSTEMS names it; "local" is a local directory):
#   seq_write      a SIZE random file: raw multipart upload vs `cp big MNT/` (timed until the object is
#                  stored: `cp` returning, including close, and, for write-back systems, the upload after)
#   seq_read_cold  that object, page cache dropped, fresh mount: raw parallel ranged GETs vs `cat`
#   par_read_cold  4 objects of PAR MiB read at once: raw ranged GETs of all 4 through one pool (8 in
#                  flight) vs 4 concurrent `cat`s; aggregate MB/s
#   rand_read      RAND x 64 KiB at random aligned offsets of the big object (seeded, new offsets each
#   rand_read8     run, the same for every system): raw ranged GETs 1 (8) in flight vs bench/helpers.py
#                  doing os.pread from 1 (8) threads; ops/s, every block compared with the input
#   small_write    FILES x 32 KiB files in 50 directories: raw PUTs (32 in flight) vs `cp -r`, timed
#                  until it returns; small_write_s3: from its start until a LIST of the prefix by the
#                  raw client (right after cp returned, then every 50 ms) shows every key with its size
#   small_read     the same files after a remount, cache dropped: raw LIST + GETs vs `find | cat`
#   tar_x          a source-like tree of TAR files (200 B-64 KiB, a few dozen directories, the same in
#   tar_x_s3         every run) in a tarball: raw PUTs of its files (32 in flight) vs `tar -xf` into
#                    the mount, until tar returns / until every key is listed (as small_write)
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
# --latency MS (or BENCH_LATENCY_MS) runs small_write, small_read, ls and find a second time through a
# delay proxy in the harness that adds MS of round-trip to every request (the first bytes of each
# request and of each response held MS/2; the rest streamed), for the raw client and every system
# alike; those rows are reported as WORKLOAD@MSms (e.g. ls_l_cold@20ms) in a table of their own,
# with ratios to the raw client through the same proxy. Off by default; BENCH_WORKLOADS names these
# groups small_write@lat small_read@lat ls@lat find@lat, or "latency" for all four (latency rows only).
# Listing and time workloads are in seconds (lower is better; the ratio is time / baseline time);
# MB/s, ops/s and files/s are higher-is-better (ratio = figure / raw).
# Reads use the objects the raw client wrote (the same bytes for everyone); every system's writes go
# to a bucket of its own and are checked through the S3 API (size and MD5 / byte-for-byte `diff`).
# Listings are checked by entry count and sizes. Full mode: 1 GiB, PAR 256, RAND 2 000, 1 000 files,
# TAR 2 000, LS 10 000, LS_BIG 100 000, FIND 5 000; --quick: 32 MiB, PAR 8, RAND 100, 100 files,
# TAR 200, LS 300, LS_BIG 2 000, FIND 200 (10 directories), cosmount only (CI smoke run, about a
# minute).
# Median of BENCH_REPS runs (default: 3 in full mode, except 1 for the LS_BIG listing; 1 in
# --quick), taken in rounds: the raw client and every system run once, then again (see rounds),
# so that the machine's drift over minutes reaches every system alike (rsync2 runs its own REPS). Peak RSS is VmHWM of each mount daemon; if `cosmount --help` lists --max-memory, cosmount
# runs with --max-memory 512M and its peak RSS is reported against that budget + 64 MiB.
#
# Everything listens on 127.0.0.1 only; data lives under bench/work/ and is deleted at the end;
# mounts and servers are cleaned up on any exit. Results: bench/results/<date>-<label>.{md,json}.
# Exit 0 only if every check of the raw client and of cosmount (in every mode) passed (peers'
# failures are reported in the table, not fatal). Needs fuse3 (scripts/setup.sh), cargo, python3,
# rsync, tar and root for dropping caches (without root the read figures are marked "warm").
#
# Overrides (for experiments): BENCH_REPS, BENCH_SYSTEMS ("cosmount s3fs rclone"; also cosmount-la,
# cosmount-wc), BENCH_BIG_MIB, BENCH_FILES, BENCH_TAR, BENCH_PAR_MIB, BENCH_RAND, BENCH_LS,
# BENCH_LS_BIG, BENCH_LS_BIG_REPS, BENCH_FIND, BENCH_WORKLOADS (groups to run, default "seq_write
# seq_read par_read rand_read small_write small_read tar_x ls ls_big find rsync", plus the latency
# groups with --latency), BENCH_LATENCY_MS, BENCH_KEEP=1 (keep bench/work/ and logs).
set -euo pipefail
# This script is the entry point only: the harness is the Rust program bench-harness in bench/
# (src/harness/, one module per concern, unit-tested with `cargo test` there). The help
# above is printed without building; anything else builds bench/ and execs the harness with the
# same arguments from the repository root (it builds cosmount itself, after checking its tools).
cd "$(dirname "$0")/.."

skip=0
for a in "$@"; do
  if [ "$skip" = 1 ]; then skip=0; continue; fi
  case "$a" in
    --quick|--label=*|--latency=*) ;;
    --label|--latency) skip=1 ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) break ;;   # the harness reports it (exit 2)
  esac
done

command -v cargo >/dev/null || { echo "bench: ERROR: cargo is missing" >&2; exit 1; }
echo "bench: building bench/ (bench-harness, bench-server, raw-client)" >&2
CARGO_TARGET_DIR="$PWD/bench/target" cargo build --release --quiet --manifest-path bench/Cargo.toml
exec bench/target/release/bench-harness "$@"
