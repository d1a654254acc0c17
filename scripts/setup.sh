#!/usr/bin/env bash
# Installs what cosmount's demo and tests need on a fresh Debian machine, skipping what is there:
# fuse3 (fusermount3, mount.fuse3), attr (getfattr/setfattr), rsync, procps (pgrep, for the fstab
# test), and a Python virtualenv at .venv with
# moto's S3 server pinned to 5.2.5. Safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
command -v fusermount3 >/dev/null || need+=(fuse3)
command -v getfattr >/dev/null || need+=(attr)
command -v rsync >/dev/null || need+=(rsync)
command -v pgrep >/dev/null || need+=(procps)
if [ ${#need[@]} -gt 0 ]; then
  echo "setup: installing ${need[*]} with apt-get"
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need[@]}" >/dev/null
fi
[ -e /dev/fuse ] || { echo "setup: /dev/fuse is missing: this machine cannot mount FUSE filesystems" >&2; exit 1; }

MOTO_VERSION=5.2.5
if ! .venv/bin/python -c "import moto, sys; sys.exit(moto.__version__ != '$MOTO_VERSION')" 2>/dev/null; then
  echo "setup: creating .venv with moto[server]==$MOTO_VERSION"
  python3 -m venv .venv
  .venv/bin/pip install -q --disable-pip-version-check "moto[server]==$MOTO_VERSION"
fi
