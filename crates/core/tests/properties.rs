//! Property tests: random configurations and random sequences of events (with current, old
//! and made-up epochs), commands and time steps, checked against the invariants of DESIGN.md
//! by `common::check`. `REDIAL_PROPTEST_CASES` raises the case count (default 1,000 each).

mod common;

use std::time::Duration;

use common::check::{self, EpochSel, Ev, Op};
use proptest::prelude::*;
use redial_core::*;

fn cases() -> u32 {
    std::env::var("REDIAL_PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1000)
}

fn config() -> impl Strategy<Value = Config> {
    any::<[u8; 24]>().prop_map(|b| check::config(&mut check::Bytes(&b)))
}

fn error() -> impl Strategy<Value = NetError> {
    prop_oneof![
        4 => Just(NetError::Refused),
        4 => Just(NetError::TimedOut),
        4 => Just(NetError::Reset),
        4 => Just(NetError::Unreachable),
        4 => Just(NetError::ResolveFailed),
        1 => Just(NetError::InvalidAddress),
    ]
}

fn epoch(stale: u32) -> impl Strategy<Value = EpochSel> {
    prop_oneof![
        10 => Just(EpochSel::Latest),
        stale => Just(EpochSel::Previous),
        stale => (0u8..8).prop_map(EpochSel::Raw),
    ]
}

fn event() -> impl Strategy<Value = Ev> {
    prop_oneof![
        (0u8..4).prop_map(Ev::Resolved),
        error().prop_map(Ev::ResolveFailed),
        Just(Ev::DialOk),
        error().prop_map(Ev::DialFailed),
        prop_oneof![Just(0usize), Just(1), Just(usize::MAX)].prop_map(Ev::BytesRead),
        Just(Ev::Pong),
        Just(Ev::PeerPing),
        Just(Ev::Written),
        (0usize..4).prop_map(Ev::Acked),
        Just(Ev::Eof),
        error().prop_map(Ev::IoError),
        Just(Ev::Protocol),
        Just(Ev::Closed),
    ]
}

/// Weights: (time, respond, events, stale share, enqueue, reads).
fn ops(w: [u32; 6]) -> impl Strategy<Value = Vec<Op>> {
    let [time, respond, events, stale, enqueue, reads] = w;
    let op = prop_oneof![
        time => (0u64..3000).prop_map(|m| Op::Advance(Duration::from_millis(m))),
        time => Just(Op::Jump),
        1 => (0u64..2000).prop_map(|m| Op::Backwards(Duration::from_millis(m))),
        1 => prop_oneof![Just(Duration::MAX), (0u64..u64::MAX).prop_map(Duration::from_nanos)]
            .prop_map(Op::Advance),
        respond => Just(Op::Respond),
        events => (event(), epoch(stale)).prop_map(|(e, s)| Op::Event(e, s)),
        reads + 1 => epoch(stale).prop_map(|s| Op::Event(Ev::BytesRead(1), s)),
        reads + 1 => epoch(stale).prop_map(|s| Op::Event(Ev::Pong, s)),
        enqueue => (0u8..40, any::<bool>()).prop_map(|(n, i)| Op::Enqueue(
            n,
            if i { Delivery::Idempotent } else { Delivery::AtMostOnce }
        )),
        enqueue.div_ceil(2) => (0u8..8, 0u8..12, any::<bool>()).prop_map(|(n, len, i)| Op::EnqueueBatch(
            n,
            len,
            if i { Delivery::Idempotent } else { Delivery::AtMostOnce }
        )),
        1 => (0u64..3000).prop_map(|m| Op::CloseGraceful(Duration::from_millis(m))),
        1 => Just(Op::CloseImmediate),
        1 => Just(Op::ReconnectNow),
        1 => Just(Op::Timer),
    ];
    prop::collection::vec(op, 0..300)
}

fn run(cfg: Config, ops: &[Op]) {
    let trace = check::run_ops(cfg.clone(), ops);
    let again = check::run_ops(cfg, ops);
    assert!(trace == again, "inv6: same inputs, different actions");
}

proptest! {
    // Shrunk failures are kept below as named regression tests, not in a seed file.
    #![proptest_config(ProptestConfig {
        cases: cases(),
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    /// Invariants 1-6 over a balanced mix of everything.
    #[test]
    fn invariants_hold_for_any_mix_of_events_commands_and_time(
        cfg in config(), ops in ops([4, 6, 6, 3, 3, 2])
    ) {
        run(cfg, &ops);
    }

    /// Invariant 2 with many stale and made-up epochs.
    #[test]
    fn stale_epochs_never_change_the_current_connection(
        cfg in config(), ops in ops([3, 6, 8, 20, 2, 2])
    ) {
        run(cfg, &ops);
    }

    /// Invariant 4 with a busy queue: exactly one outcome each, no duplicate writes, order.
    #[test]
    fn every_message_ends_exactly_once_in_order(
        cfg in config(), ops in ops([2, 8, 4, 2, 8, 1])
    ) {
        run(cfg, &ops);
    }

    /// Invariants 3 and 5: time-heavy runs (backoff, give-up, silent peers).
    #[test]
    fn backoff_give_up_and_liveness_deadlines_hold_over_time(
        cfg in config(), ops in ops([10, 5, 3, 2, 1, 0])
    ) {
        run(cfg, &ops);
    }

    /// Invariant 6 from raw bytes (the fuzz target's decoder), run twice.
    #[test]
    fn same_seed_same_inputs_same_trace(data in prop::collection::vec(any::<u8>(), 0..1200)) {
        check::run(&data);
    }
}

// ----- shrunk failures, kept as named regressions -----

/// A huge `BytesRead` length overflowed the `bytes_read` counter (a panic in debug builds).
#[test]
fn regression_huge_read_lengths_do_not_overflow_stats() {
    let ops = [
        Op::Respond,
        Op::Respond,
        Op::Event(Ev::BytesRead(usize::MAX), EpochSel::Latest),
        Op::Event(Ev::BytesRead(1), EpochSel::Latest),
    ];
    run(Config::default(), &ops);
}

/// `EvictOldest` evicted every queued message and then rejected the new one anyway, because
/// the bytes in flight alone left no room: messages were lost for nothing.
#[test]
fn regression_no_eviction_for_a_message_that_cannot_fit_anyway() {
    let mut cfg = Config::default()
        .with_write_timeout(Some(Duration::from_millis(1401)))
        .with_queue(QueueLimits {
            max_messages: 8,
            max_bytes: 64,
            max_message: 32,
            overflow: Overflow::EvictOldest,
        });
    cfg.batch_messages = 2;
    let ops = [
        Op::Enqueue(12, Delivery::AtMostOnce),
        Op::Respond,
        Op::Enqueue(10, Delivery::AtMostOnce),
        Op::Respond,
        Op::Enqueue(0, Delivery::AtMostOnce),
        Op::Enqueue(19, Delivery::AtMostOnce),
    ];
    run(cfg, &ops);
}
