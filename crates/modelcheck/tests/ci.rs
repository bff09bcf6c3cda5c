//! The CI budget: both models explored breadth first within `Limits::CI` (2 messages, 2
//! faults, 1 unforced time jump), both exhaustively: Redis in about 25 s and NATS in about 55 s
//! on two idle cores (55 s for the whole test), deep enough to find each planted bug of
//! docs/TESTING.md (depth 6 to 11). No violation on main. Each run stops after `REDIAL_MC_SECONDS`
//! (default 90 s), so a slow machine cuts the search short instead of the CI run;
//! `REDIAL_MC_DEPTH` overrides the depth bound (default 60, past what the bounds reach).

use std::time::Duration;

use redial_modelcheck::{check_for, Limits, Proto};

fn env(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|d| d.parse().ok())
        .unwrap_or(default)
}

fn run(proto: Proto) {
    let secs = Duration::from_secs(env("REDIAL_MC_SECONDS", 90));
    let depth = env("REDIAL_MC_DEPTH", 60) as usize;
    let r = check_for(proto, Limits::CI, depth, 2, usize::MAX, secs);
    println!("{r}");
    assert!(r.states > 10_000, "the model explored almost nothing: {r}");
    assert!(r.max_depth >= 10, "the search stayed shallow: {r}");
    assert!(r.violations.is_empty(), "{r}");
}

#[test]
fn redis_model_within_ci_bounds() {
    run(Proto::Redis);
}

#[test]
fn nats_model_within_ci_bounds() {
    run(Proto::Nats);
}
