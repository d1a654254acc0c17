#!/usr/bin/env python3
"""Small measuring helpers of scripts/bench.sh that work through a mount (standard library only).

  helpers.py offsets --seed S --count N --size BYTES [--block 65536]
      N random block-aligned offsets inside an object of BYTES bytes, one a line (seeded, so every
      system reads the same places).
  helpers.py randread --file F --offsets-file O [--block 65536] [--threads T] [--verify LOCAL]
      pread(BLOCK) at each offset, T threads sharing the list (T=1: one read after another); the
      clock starts after open(). With --verify every block is compared, after the clock stopped,
      with the same bytes of LOCAL; a short or wrong block is an error (exit 1).
  helpers.py lsf DIR
      Run `ls -f DIR` with its output on a pipe: total seconds and the entry count (without . and
      ..). (GNU ls reads the whole directory before it prints anything, so its first output says
      nothing about when the first entries arrive: see `first`.)
  helpers.py first DIR
      os.scandir(DIR): seconds until the first entry arrives (the first getdents answer), total
      seconds and the entry count.

Each prints one flat JSON object on stdout (no spaces, for the script's jget).
"""
import argparse
import json
import os
import random
import subprocess
import sys
import threading
import time


def out(obj):
    print(json.dumps(obj, separators=(",", ":")))


def cmd_offsets(a):
    rng = random.Random(a.seed)
    blocks = a.size // a.block
    if blocks < 1:
        sys.exit("helpers.py offsets: object smaller than one block")
    for _ in range(a.count):
        print(rng.randrange(blocks) * a.block)


def cmd_randread(a):
    with open(a.offsets_file) as f:
        offsets = [int(w) for w in f.read().split()]
    results = [None] * len(offsets)
    fd = os.open(a.file, os.O_RDONLY)
    next_i = [0]
    lock = threading.Lock()
    errors = []

    def worker():
        while True:
            with lock:
                i = next_i[0]
                next_i[0] += 1
            if i >= len(offsets):
                return
            try:
                results[i] = os.pread(fd, a.block, offsets[i])
            except OSError as e:
                errors.append(f"pread at {offsets[i]}: {e}")
                return

    t0 = time.perf_counter()
    if a.threads <= 1:
        worker()
    else:
        ts = [threading.Thread(target=worker) for _ in range(a.threads)]
        for t in ts:
            t.start()
        for t in ts:
            t.join()
    secs = time.perf_counter() - t0
    os.close(fd)
    if errors:
        sys.exit(f"helpers.py randread: {errors[0]}")
    bad = 0
    if a.verify:
        with open(a.verify, "rb") as f:
            for off, got in zip(offsets, results):
                if got != os.pread(f.fileno(), a.block, off):
                    bad += 1
    elif any(r is None or len(r) != a.block for r in results):
        bad = 1
    if bad:
        sys.exit(f"helpers.py randread: {bad} of {len(offsets)} blocks short or wrong")
    out({"op": "randread", "seconds": round(secs, 4), "reads": len(offsets), "threads": a.threads,
         "ops_s": round(len(offsets) / secs, 1), "verified": bool(a.verify)})


def cmd_lsf(a):
    t0 = time.perf_counter()
    p = subprocess.Popen(["ls", "-f", a.dir], stdout=subprocess.PIPE)
    lines = 0
    while True:
        chunk = p.stdout.read1(1 << 16)
        if not chunk:
            break
        lines += chunk.count(b"\n")
    rc = p.wait()
    secs = time.perf_counter() - t0
    if rc != 0:
        sys.exit(f"helpers.py lsf: ls -f exited {rc}")
    out({"op": "lsf", "seconds": round(secs, 4), "entries": lines - 2})


def cmd_first(a):
    t0 = time.perf_counter()
    first = None
    n = 0
    with os.scandir(a.dir) as it:
        for _ in it:
            if first is None:
                first = time.perf_counter() - t0
            n += 1
    secs = time.perf_counter() - t0
    out({"op": "first", "seconds": round(secs, 4), "first_seconds": round(first or secs, 4), "entries": n})


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("offsets")
    p.add_argument("--seed", type=int, required=True)
    p.add_argument("--count", type=int, required=True)
    p.add_argument("--size", type=int, required=True)
    p.add_argument("--block", type=int, default=65536)
    p = sub.add_parser("randread")
    p.add_argument("--file", required=True)
    p.add_argument("--offsets-file", required=True)
    p.add_argument("--block", type=int, default=65536)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--verify")
    p = sub.add_parser("lsf")
    p.add_argument("dir")
    p = sub.add_parser("first")
    p.add_argument("dir")
    a = ap.parse_args()
    {"offsets": cmd_offsets, "randread": cmd_randread, "lsf": cmd_lsf, "first": cmd_first}[a.cmd](a)


if __name__ == "__main__":
    main()
