#!/usr/bin/env bash
# Generates the man page and the shell completions from the CLI definition (clap_mangen,
# clap_complete) into target/assets (or $1), and checks that they render. CI runs this through
# scripts/test.sh; `cargo deb` packages the results (run this first).
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:-target/assets}"
cargo run --quiet --example gen_docs -- "$out"
test -s "$out/cosmount.1"
grep -q -- 'endpoint\\-url' "$out/cosmount.1"
grep -q 'fuse.cosmount' "$out/cosmount.1"
if command -v man >/dev/null; then
  MANWIDTH=80 man -l "$out/cosmount.1" 2>/dev/null | grep -q 'MOUNT OPTIONS'
fi
bash -n "$out/completions/cosmount.bash"
grep -q -- '--metrics-addr' "$out/completions/cosmount.bash"
test -s "$out/completions/_cosmount"
test -s "$out/completions/cosmount.fish"
gzip -9 -n -c "$out/cosmount.1" > "$out/cosmount.1.gz"
echo "gen-docs: wrote $out/cosmount.1 and $out/completions/"
