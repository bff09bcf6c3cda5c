#!/bin/sh
# Runs every redial benchmark and writes BENCHMARKS.md at the repository root.
# Usage: bench/run.sh            (from anywhere; a few minutes on 2 cores)
# The benchmarks are the bench target `redial` of crates/bench (so stubborn-io stays a
# dev-dependency); `cargo bench` builds it with the release profile.
# Two long runs are separate and keep their own sections of BENCHMARKS.md when this script
# rewrites the rest: the soak (10 minutes,
#   cargo bench -p redial-bench --bench soak -- --out BENCHMARKS.md)
# and the model checker's deep run (cargo run --release -p redial-modelcheck --bin deep).
set -eu
cd "$(dirname "$0")/.."
root="$(pwd)"
kept=""
for section in soak modelcheck; do
  part="$(sed -n "/<!-- $section:begin -->/,/<!-- $section:end -->/p" "$root/BENCHMARKS.md" 2>/dev/null || true)"
  if [ -n "$part" ]; then
    kept="$kept
$part
"
  fi
done
cargo bench -p redial-bench --bench redial -- all --out "$root/BENCHMARKS.md"
if [ -n "$kept" ]; then
  printf '%s' "$kept" >> "$root/BENCHMARKS.md"
fi
