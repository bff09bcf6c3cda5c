//! redial's benchmarks (issue 7) live in the bench target `benches/redial/` — a bench target,
//! so that the peers it measures against (stubborn-io) are dev-dependencies only and reach no
//! library's dependency tree. Run everything and write `BENCHMARKS.md` with `bench/run.sh`
//! (`cargo bench -p redial-bench --bench redial -- all --out BENCHMARKS.md`).
