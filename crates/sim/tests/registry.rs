//! The registry model (one of three servers leaves the set with sessions on it) and the
//! shared retry budget through a long outage.

use std::time::Duration;

use redial_core::budget::BudgetPolicy;
use redial_core::spread::Departure;
use redial_sim::{
    FaultKind, FaultSchedule, Percentiles, Policy, Registry, Report, Scenario, Simulation, Workload,
};

const S: fn(u64) -> Duration = Duration::from_secs;

fn leave(clients: usize, spread: Duration) -> Report {
    let reg = Registry::new(3, Some((1, S(10))))
        .with_departure(Departure::new().with_spread(spread).with_drain(S(5)));
    let sc = Scenario::new(
        clients,
        Scenario::sim_config(Policy::DEFAULT.backoff),
        S(30),
    )
    .with_registry(Some(reg))
    .with_workload(Some(Workload::default()))
    .with_seed(3);
    Simulation::new(sc).unwrap().run()
}

#[test]
fn sessions_move_off_a_departed_server_spread_over_the_rest() {
    let r = leave(3000, S(2));
    assert!(r.violations.is_empty(), "{:?}", r.violations);
    let m = r.summary().messages;
    assert_eq!(m.settled(), m.enqueued, "every message has an outcome");
    assert_eq!(m.abandoned + m.rejected, 0);
    // About a third were on server 1; every one of them moved.
    assert!((800..1200).contains(&r.moves.len()), "{}", r.moves.len());
    let moved = Percentiles::of(r.moves.iter().map(|s| s.time));
    assert!(moved.max_ms <= 2_000.0 + 5_000.0 + 100.0, "{moved:?}");
    // Nobody dials the departed server once it left (past the drain of the last mover).
    assert_eq!(
        r.server_peak(1, S(10) + Duration::from_millis(100), S(30)),
        0
    );
    // The movers land on both remaining servers.
    let (p0, p2) = (
        r.server_peak(0, S(10), S(20)),
        r.server_peak(2, S(10), S(20)),
    );
    assert!(p0 > 0 && p2 > 0, "{p0} {p2}");
}

#[test]
fn jittered_moves_keep_the_peak_low() {
    let spread = leave(3000, S(2));
    let herd = leave(3000, Duration::ZERO);
    let peak = |r: &Report| {
        r.server_peak(0, S(10), S(20))
            .max(r.server_peak(2, S(10), S(20)))
    };
    let (spread, herd) = (peak(&spread), peak(&herd));
    // 1,000 movers: all in one bucket without jitter; about 1/20 of them per 100 ms with 2 s.
    assert!(herd >= 400, "{herd}");
    assert!(spread * 4 < herd, "spread {spread}, herd {herd}");
}

fn outage(budget: Option<BudgetPolicy>) -> Report {
    let sc = Scenario::new(3000, Scenario::sim_config(Policy::DEFAULT.backoff), S(130))
        .with_faults(FaultSchedule::single(FaultKind::Refuse, S(10), S(60)))
        .with_budget(budget)
        .with_seed(5);
    Simulation::new(sc).unwrap().run()
}

#[test]
fn the_budget_holds_attempts_below_the_backoff_schedules() {
    let policy = BudgetPolicy::new()
        .with_capacity(300)
        .with_min_per_sec(30)
        .with_seed(1);
    let free = outage(None);
    let braked = outage(Some(policy));
    for r in [&free, &braked] {
        assert!(r.violations.is_empty(), "{:?}", r.violations);
        assert_eq!(r.not_reconnected, 0, "everyone is back");
        assert_eq!(r.gave_up, 0);
    }
    let during = |r: &Report| {
        r.server_dials[100..700]
            .iter()
            .map(|&d| u64::from(d))
            .sum::<u64>()
    };
    let (f, b) = (during(&free), during(&braked));
    // Through the outage: first attempts (3,000) + capacity + 30 a second for 60 s, at most.
    assert!(b <= 3000 + 300 + 30 * 60 + 30, "{b}");
    assert!(b * 3 < f, "budget {b}, none {f}");
    let stats = braked.budget.expect("a budget ran");
    assert!(stats.denied > 0 && stats.deposits >= 3000, "{stats:?}");
}
