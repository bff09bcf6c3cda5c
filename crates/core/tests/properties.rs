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

fn config() -> impl Strategy<Value = check::Setup> {
    any::<[u8; 32]>().prop_map(|b| check::config(&mut check::Bytes(&b)))
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
        Just(Ev::Written),
        Just(Ev::Eof),
        error().prop_map(Ev::IoError),
        Just(Ev::Closed),
    ]
}

fn delivery() -> impl Strategy<Value = Delivery> {
    any::<bool>().prop_map(|i| {
        if i {
            Delivery::Idempotent
        } else {
            Delivery::AtMostOnce
        }
    })
}

/// Weights: (time, respond, inputs, stale share, enqueue, peer).
fn ops(w: [u32; 6]) -> impl Strategy<Value = Vec<Op>> {
    let [time, respond, inputs, stale, enqueue, peer] = w;
    let op = prop_oneof![
        time => (0u64..3000).prop_map(|m| Op::Advance(Duration::from_millis(m))),
        time => Just(Op::Jump),
        1 => (0u64..2000).prop_map(|m| Op::Backwards(Duration::from_millis(m))),
        1 => prop_oneof![Just(Duration::MAX), (0u64..u64::MAX).prop_map(Duration::from_nanos)]
            .prop_map(Op::Advance),
        respond => Just(Op::Respond),
        respond.div_ceil(3) => Just(Op::Deliver),
        respond => any::<u8>().prop_map(Op::Converse),
        inputs => (event(), epoch(stale)).prop_map(|(e, s)| Op::Input(e, s)),
        peer + 1 => (1u8..5, prop::bool::weighted(0.1)).prop_map(|(n, e)| Op::PeerReply(n, e)),
        peer + 1 => (0u8..32, epoch(stale)).prop_map(|(n, s)| Op::Feed(n, s)),
        peer.div_ceil(2) => Just(Op::PeerPong),
        peer.div_ceil(3) => Just(Op::PeerPing),
        peer.div_ceil(2) => any::<u8>().prop_map(Op::PeerMessage),
        1 => Just(Op::PeerExtra),
        1 => any::<u8>().prop_map(Op::Garbage),
        1 => any::<bool>().prop_map(Op::Consume),
        enqueue => (0u8..40, delivery()).prop_map(|(n, d)| Op::Enqueue(n, d)),
        enqueue.div_ceil(2) => (0u8..8, 0u8..12, delivery()).prop_map(|(n, len, d)| Op::EnqueueBatch(n, len, d)),
        enqueue.div_ceil(3) => (0u8..3).prop_map(Op::Subscribe),
        enqueue.div_ceil(4) => (0u8..4).prop_map(Op::Unsubscribe),
        1 => (0u64..3000).prop_map(|m| Op::CloseGraceful(Duration::from_millis(m))),
        1 => Just(Op::CloseImmediate),
        1 => Just(Op::ReconnectNow),
    ];
    prop::collection::vec(op, 0..300)
}

fn run(setup: check::Setup, ops: &[Op]) {
    let trace = check::run_ops(setup.clone(), ops);
    let again = check::run_ops(setup, ops);
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
    fn invariants_hold_for_any_mix_of_inputs_commands_peer_and_time(
        setup in config(), ops in ops([4, 6, 4, 3, 3, 6])
    ) {
        run(setup, &ops);
    }

    /// Invariant 2 with many stale and made-up epochs.
    #[test]
    fn stale_epochs_never_change_the_current_connection(
        setup in config(), ops in ops([3, 6, 8, 20, 2, 3])
    ) {
        run(setup, &ops);
    }

    /// Invariant 4 with a busy queue and a talkative peer: exactly one outcome each, no
    /// duplicate writes, order, every reply credited to its own request.
    #[test]
    fn every_message_ends_exactly_once_in_order(
        setup in config(), ops in ops([2, 8, 2, 2, 8, 8])
    ) {
        run(setup, &ops);
    }

    /// Invariants 3 and 5: time-heavy runs (backoff, give-up, silent peers).
    #[test]
    fn backoff_give_up_and_liveness_deadlines_hold_over_time(
        setup in config(), ops in ops([10, 5, 3, 2, 1, 2])
    ) {
        run(setup, &ops);
    }

    /// Invariant 6 from raw bytes (the fuzz target's decoder), run twice.
    #[test]
    fn same_seed_same_inputs_same_trace(data in prop::collection::vec(any::<u8>(), 0..1200)) {
        check::run(&data);
    }
}

// ----- shrunk failures, kept as named regressions -----

/// A huge read length overflowed the `bytes_read` counter (a panic in debug builds); a host
/// reporting absurd `fresh` counts must not be a way to panic.
#[test]
fn regression_huge_read_lengths_do_not_overflow_stats() {
    let mut s = Session::new(
        Config::default(),
        Framed::new(LengthCodec::default()),
        Instant::ZERO,
    )
    .unwrap();
    let addr = [Addr::Ip("127.0.0.1:1".parse().unwrap())];
    let mut epoch = Epoch::NONE;
    for _ in 0..4 {
        loop {
            let a = s.poll(Instant::ZERO);
            match a {
                Action::Resolve { epoch: e } => {
                    let _ = s.handle_input(
                        Instant::ZERO,
                        Input::Resolved {
                            epoch: e,
                            addrs: &addr,
                        },
                    );
                }
                Action::Dial { epoch: e, .. } => {
                    epoch = e;
                    let _ = s.handle_input(Instant::ZERO, Input::DialOk { epoch: e });
                }
                Action::Wait { .. } => break,
                _ => {}
            }
        }
    }
    for _ in 0..2 {
        s.handle_read(Instant::ZERO, epoch, b"\0", usize::MAX, &mut |_| {});
    }
    assert_eq!(s.stats().bytes_read, u64::MAX);
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
    run(
        check::Setup {
            cfg,
            kind: check::Kind::Frames,
        },
        &ops,
    );
}

/// Every input kept under `fuzz/regressions/` runs clean through the shared checker (the
/// fuzz target's own entry point), so a finding fixed once stays fixed in `cargo test`.
#[test]
fn regression_fuzz_inputs_kept_in_the_tree_run_clean() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/regressions");
    let mut ran = 0;
    for entry in std::fs::read_dir(&dir).expect("fuzz/regressions exists") {
        let path = entry.expect("readable entry").path();
        let data = std::fs::read(&path).expect("readable input");
        check::run(&data);
        ran += 1;
    }
    assert!(ran > 0, "no inputs under {}", dir.display());
}
