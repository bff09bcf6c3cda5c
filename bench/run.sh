#!/bin/sh
# Runs every redial benchmark and writes BENCHMARKS.md at the repository root.
# Usage: bench/run.sh            (from anywhere; about 4-5 minutes on 2 cores)
set -eu
cd "$(dirname "$0")/.."
cargo build --release -p redial-bench
target_dir="${CARGO_TARGET_DIR:-target}"
"$target_dir/release/redial-bench" all --out BENCHMARKS.md
