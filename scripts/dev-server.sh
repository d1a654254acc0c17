#!/usr/bin/env bash
# Start the local S3 server (moto 5.2.5) by hand on 127.0.0.1:${PORT:-5000}, in the foreground.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/moto_server -H 127.0.0.1 -p "${PORT:-5000}"
