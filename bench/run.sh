#!/bin/sh
# Runs every redial benchmark and writes BENCHMARKS.md at the repository root.
# Usage: bench/run.sh            (from anywhere; a few minutes on 2 cores)
# The benchmarks are the bench target `redial` of crates/bench (so stubborn-io stays a
# dev-dependency); `cargo bench` builds it with the release profile.
set -eu
cd "$(dirname "$0")/.."
root="$(pwd)"
cargo bench -p redial-bench --bench redial -- all --out "$root/BENCHMARKS.md"
