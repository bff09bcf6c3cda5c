#!/bin/sh
# Runs every redial benchmark and writes BENCHMARKS.md at the repository root.
# Usage: bench/run.sh            (from anywhere; a few minutes on 2 cores)
# The benchmarks are the bench target `redial` of crates/bench (so stubborn-io stays a
# dev-dependency); `cargo bench` builds it with the release profile.
# The peers comparison (issue #13: redis-rs and async-nats against real servers) is its own
# bench target, run last: it replaces its section (<!-- peers:begin --> ... <!-- peers:end -->)
# and leaves the rest alone (cargo bench -p redial-bench --bench peers -- --out BENCHMARKS.md;
# about a minute). It exits non-zero if redial's fault report is not exact.
# Two long runs are separate and keep their own sections of BENCHMARKS.md when this script
# rewrites the rest: the soak (10 minutes,
#   cargo bench -p redial-bench --bench soak -- --out BENCHMARKS.md)
# and the model checker's deep run (cargo run --release -p redial-modelcheck --bin deep).
set -eu
cd "$(dirname "$0")/.."
root="$(pwd)"
kept=""
for section in soak modelcheck peers; do
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
cargo bench -p redial-bench --bench peers -- --out "$root/BENCHMARKS.md"
