#!/bin/sh
# Runs every redial benchmark and writes BENCHMARKS.md at the repository root.
# Usage: bench/run.sh            (from anywhere; a few minutes on 2 cores)
# The benchmarks are the bench target `redial` of crates/bench (so stubborn-io stays a
# dev-dependency); `cargo bench` builds it with the release profile.
# The soak (10 minutes) is separate and keeps its own section of BENCHMARKS.md:
#   cargo bench -p redial-bench --bench soak -- --out BENCHMARKS.md
set -eu
cd "$(dirname "$0")/.."
root="$(pwd)"
soak="$(sed -n '/<!-- soak:begin -->/,/<!-- soak:end -->/p' "$root/BENCHMARKS.md" 2>/dev/null || true)"
cargo bench -p redial-bench --bench redial -- all --out "$root/BENCHMARKS.md"
if [ -n "$soak" ]; then
  printf '\n%s\n' "$soak" >> "$root/BENCHMARKS.md"
fi
