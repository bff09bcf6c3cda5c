//! Scenario tests: each drives one behaviour on virtual time (jumping to the next deadline)
//! and fails if that behaviour breaks.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::*;
use redial_core::*;

fn never() -> Config {
    plain().with_give_up(GiveUp::NEVER)
}

fn no_heartbeat() -> Config {
    plain().with_heartbeat(None).with_write_timeout(None)
}

fn addr(port: u16) -> Addr {
    Addr::Ip(SocketAddr::from(([10, 0, 0, 1], port)))
}

// ----- reconnect and backoff -----

#[test]
fn first_attempt_is_immediate() {
    let mut h = H::new(plain());
    let (epoch, dialed) = h.resolve(&ADDRS[..1]);
    assert_eq!(h.now, Instant::ZERO);
    assert_eq!(dialed, Some(ADDRS[0]));
    assert_eq!(h.dial_times(), vec![Instant::ZERO]);
    assert_eq!(epoch.get(), 1);
}

#[test]
fn refused_attempts_double_from_100ms_and_stay_under_the_30s_cap() {
    let mut h = H::new(never());
    for _ in 0..16 {
        h.attempt(Err(NetError::Refused));
    }
    let want: Vec<Duration> = [
        100, 200, 400, 800, 1600, 3200, 6400, 12800, 25600, 30000, 30000, 30000, 30000, 30000,
        30000,
    ]
    .into_iter()
    .map(ms)
    .collect();
    assert_eq!(h.dial_gaps(), want);
    let delays: Vec<_> = h.failures().iter().map(|f| f.4.unwrap()).collect();
    assert_eq!(&delays[..15], &want[..]);
}

fn jitter_gaps(jitter: Jitter) -> (Backoff, Vec<Duration>) {
    let b = Backoff::new().with_jitter(jitter);
    let mut h = H::new(
        Config::default()
            .with_backoff(b)
            .with_give_up(GiveUp::NEVER)
            .with_seed(7),
    );
    for _ in 0..40 {
        h.attempt(Err(NetError::Refused));
    }
    let gaps = h.dial_gaps();
    let reported: Vec<_> = h.failures().iter().map(|f| f.4.unwrap()).collect();
    assert_eq!(
        gaps[..],
        reported[..gaps.len()],
        "dials follow the reported delays"
    );
    for g in &gaps {
        assert!(*g <= b.cap, "{jitter:?}: {g:?} above the cap");
    }
    (b, gaps)
}

#[test]
fn full_jitter_stays_within_zero_and_base() {
    let (b, gaps) = jitter_gaps(Jitter::Full);
    for (i, g) in gaps.iter().enumerate() {
        assert!(*g <= b.base(i as u32 + 1), "gap {i}: {g:?}");
    }
    assert!(gaps.windows(2).any(|w| w[0] != w[1]), "jitter spreads");
}

#[test]
fn equal_jitter_stays_within_half_base_and_base() {
    let (b, gaps) = jitter_gaps(Jitter::Equal);
    for (i, g) in gaps.iter().enumerate() {
        let base = b.base(i as u32 + 1);
        assert!(*g >= base / 2 && *g <= base, "gap {i}: {g:?} vs {base:?}");
    }
}

#[test]
fn decorrelated_jitter_stays_within_initial_and_three_times_previous() {
    let (b, gaps) = jitter_gaps(Jitter::Decorrelated);
    let mut prev = Duration::ZERO;
    for g in &gaps {
        assert!(*g >= b.initial && *g <= (prev.max(b.initial) * 3).min(b.cap));
        prev = *g;
    }
}

#[test]
fn proportional_jitter_stays_within_the_band() {
    let (b, gaps) = jitter_gaps(Jitter::Proportional(0.25));
    for (i, g) in gaps.iter().enumerate() {
        let base = b.base(i as u32 + 1).as_secs_f64();
        let g = g.as_secs_f64();
        assert!(g >= base * 0.75 - 1e-9 && g <= (base * 1.25).min(30.0) + 1e-9);
    }
}

#[test]
fn gives_up_with_defaults_only_when_10_failures_and_5_minutes_are_both_reached() {
    let mut h = H::new(plain());
    let mut n = 0;
    while h.gave_up().is_none() {
        h.attempt(Err(NetError::Refused));
        n += 1;
        assert!(n < 100, "never gave up");
        if n == 10 {
            assert!(h.gave_up().is_none(), "10 failures alone is not enough");
        }
    }
    let (failures, elapsed, last) = h.gave_up().unwrap();
    assert!(failures >= 10);
    assert!(elapsed >= Duration::from_secs(300), "{elapsed:?}");
    assert!(
        elapsed < Duration::from_secs(330),
        "gave up at the first chance"
    );
    assert_eq!(last, NetError::Refused);
    assert_eq!(h.s.state(), State::Closed);
    let dials = h.dial_times().len();
    h.advance(Duration::from_secs(3600));
    assert_eq!(h.dial_times().len(), dials, "no dial after give-up");
    assert_eq!(h.wait, None);
}

#[test]
fn gives_up_on_either_limit() {
    let give_up = GiveUp {
        when: GiveUpWhen::Either,
        ..GiveUp::default()
    };
    let mut h = H::new(plain().with_give_up(give_up));
    for _ in 0..10 {
        h.attempt(Err(NetError::Refused));
    }
    assert_eq!(h.gave_up().map(|g| g.0), Some(10));
    assert!(h.now < at(60_000));
    // Time alone, too: huge initial delay, so 5 minutes pass after 2 failures.
    let b = Backoff::new()
        .with_jitter(Jitter::None)
        .with_initial(Duration::from_secs(200))
        .with_cap(Duration::from_secs(200));
    let mut h = H::new(plain().with_give_up(give_up).with_backoff(b));
    h.attempt(Err(NetError::Refused));
    h.attempt(Err(NetError::Refused));
    assert!(h.gave_up().is_none());
    h.attempt(Err(NetError::Refused));
    assert_eq!(h.gave_up().map(|g| g.0), Some(3));
}

#[test]
fn gives_up_on_count_alone() {
    let give_up = GiveUp {
        max_elapsed: None,
        max_failures: Some(4),
        ..GiveUp::default()
    };
    let mut h = H::new(plain().with_give_up(give_up));
    for _ in 0..3 {
        h.attempt(Err(NetError::Refused));
        assert!(h.gave_up().is_none());
    }
    h.attempt(Err(NetError::Refused));
    assert_eq!(h.gave_up().map(|g| g.0), Some(4));
    assert_eq!(h.failures().last().unwrap().4, None, "no next delay");
}

#[test]
fn permanent_error_gives_up_at_once() {
    let mut h = H::new(plain());
    let q = h.send(b"x", Delivery::AtMostOnce);
    h.attempt(Err(NetError::InvalidAddress));
    assert_eq!(
        h.gave_up(),
        Some((1, Duration::ZERO, NetError::InvalidAddress))
    );
    assert_eq!(h.s.state(), State::Closed);
    assert_eq!(
        h.outcomes(),
        vec![(
            q,
            Outcome::Abandoned(AbandonReason::GaveUp),
            Some(b"x".to_vec())
        )]
    );
}

#[test]
fn connect_timeout_fails_the_attempt_and_closes_that_epoch() {
    let mut h = H::new(never());
    let (epoch, _) = h.resolve(&ADDRS[..1]);
    h.advance_to(at(4999));
    assert!(h.closes().is_empty());
    assert_eq!(h.jump(), at(5000));
    assert_eq!(h.closes(), vec![(epoch, DisconnectReason::ConnectTimeout)]);
    let f = h.failures();
    assert_eq!(
        f,
        vec![(
            epoch,
            1,
            Some(ADDRS[0]),
            NetError::ConnectTimeout,
            Some(ms(100))
        )]
    );
    // The next attempt has a fresh epoch and its own deadline.
    let (e2, _) = h.resolve(&ADDRS[..1]);
    assert!(e2 > epoch);
    assert_eq!(h.now, at(5100));
}

#[test]
fn resolve_rotates_over_several_addresses() {
    let mut h = H::new(never());
    let addrs = [addr(1), addr(2), addr(3)];
    let mut dialed = Vec::new();
    for _ in 0..5 {
        let (epoch, a) = h.resolve(&addrs);
        dialed.push(a.unwrap());
        h.handle(Event::DialFailed {
            epoch,
            error: NetError::Refused,
        });
    }
    assert_eq!(
        dialed,
        vec![addrs[0], addrs[1], addrs[2], addrs[0], addrs[1]]
    );
    // Every cycle resolves afresh.
    let resolves = h
        .log
        .iter()
        .filter(|(_, a)| matches!(a, Action::Resolve { .. }))
        .count();
    assert_eq!(resolves, 5);
}

#[test]
fn every_attempt_failure_names_address_attempt_error_and_next_delay() {
    let mut h = H::new(never());
    let addrs = [addr(1), addr(2)];
    let errors = [NetError::Refused, NetError::Unreachable, NetError::Reset];
    let mut epochs = Vec::new();
    for error in errors {
        let (epoch, _) = h.resolve(&addrs);
        epochs.push(epoch);
        h.handle(Event::DialFailed { epoch, error });
    }
    let (epoch, _) = loop {
        if let Some(e) = h.pending(|a| match a {
            Action::Resolve { epoch } => Some(*epoch),
            _ => None,
        }) {
            break (e, ());
        }
        h.jump();
    };
    h.handle(Event::ResolveFailed {
        epoch,
        error: NetError::ResolveFailed,
    });
    let want = vec![
        (
            epochs[0],
            1,
            Some(addrs[0]),
            NetError::Refused,
            Some(ms(100)),
        ),
        (
            epochs[1],
            2,
            Some(addrs[1]),
            NetError::Unreachable,
            Some(ms(200)),
        ),
        (epochs[2], 3, Some(addrs[0]), NetError::Reset, Some(ms(400))),
        (epoch, 4, None, NetError::ResolveFailed, Some(ms(800))),
    ];
    assert_eq!(h.failures(), want);
}

// ----- liveness -----

/// Connected at T=0 with heartbeat 5 s / 5 s (defaults), no jitter.
fn connected(cfg: impl Into<TestCfg>) -> (H, Epoch) {
    let mut h = H::new(cfg);
    let e = h.connect();
    assert_eq!(h.now, Instant::ZERO);
    (h, e)
}

#[test]
fn ping_goes_out_after_an_interval_of_read_silence() {
    let (mut h, e) = connected(plain());
    assert_eq!(h.jump(), at(5000));
    assert_eq!(h.transmit(), Some((e, 0, true, 0)));
    assert_eq!(h.s.stats().pings, 1);
}

#[test]
fn silent_peer_is_dead_exactly_at_last_read_plus_interval_plus_timeout() {
    let (mut h, e) = connected(plain());
    h.advance_to(at(1000));
    h.handle(Event::BytesRead { epoch: e, len: 3 });
    h.advance_to(at(6000));
    let (_, _, ping, _) = h.transmit().unwrap();
    assert!(ping);
    h.handle(Event::Written { epoch: e });
    h.advance_to(Instant::from_nanos(11_000_000_000 - 1));
    assert_eq!(h.s.state(), State::Connected);
    assert!(h.closes().is_empty());
    assert_eq!(h.jump(), at(11_000));
    assert_eq!(
        h.closes(),
        vec![(
            e,
            DisconnectReason::HeartbeatTimeout {
                silent_for: Duration::from_secs(10)
            }
        )]
    );
    assert_ne!(h.s.state(), State::Connected);
    assert_eq!(h.s.stats().liveness_timeouts, 1);
}

#[test]
fn bytes_read_postpone_the_liveness_deadline() {
    let (mut h, e) = connected(plain());
    for t in (1..=30).map(|s| at(s * 1000)) {
        h.advance_to(t);
        h.handle(Event::BytesRead { epoch: e, len: 1 });
    }
    assert_eq!(h.s.state(), State::Connected);
    assert_eq!(
        h.s.stats().pings,
        0,
        "reads are proof enough; no ping needed"
    );
    assert_eq!(h.jump(), at(35_000), "ping after an interval of silence");
    h.write_all();
    assert_eq!(h.jump(), at(40_000), "then dead at last read + 10 s");
    assert_eq!(h.s.connection(), None);
}

#[test]
fn our_own_writes_do_not_postpone_liveness() {
    let (mut h, e) = connected(plain());
    for t in (1..=9).map(|s| at(s * 1000)) {
        h.advance_to(t);
        h.send(b"m", Delivery::AtMostOnce);
        h.write_all();
    }
    assert_eq!(h.s.connection(), Some(e));
    h.advance_to(Instant::from_nanos(10_000_000_000 - 1));
    assert_eq!(h.s.connection(), Some(e));
    assert_eq!(h.jump(), at(10_000));
    assert_eq!(h.s.connection(), None, "dead despite our writes");
    assert!(matches!(
        h.disconnects()[..],
        [DisconnectReason::HeartbeatTimeout { .. }]
    ));
}

#[test]
fn pong_gives_an_rtt_sample() {
    let (mut h, e) = connected(plain());
    h.jump();
    h.write_all();
    h.advance(ms(40));
    h.handle(Event::Pong { epoch: e });
    let rtt: Vec<_> = h
        .notifications()
        .filter_map(|n| match n {
            Notification::Rtt { sample, smoothed } => Some((*sample, *smoothed)),
            _ => None,
        })
        .collect();
    assert_eq!(rtt, vec![(ms(40), ms(40))]);
    assert_eq!(h.s.stats().rtt, Some(ms(40)));
    // The pong is a read: the next ping waits a full interval from it.
    assert_eq!(h.jump(), at(10_040));
}

#[test]
fn adaptive_timeout_detects_death_faster_on_a_fast_link() {
    let hb = Heartbeat {
        interval: Duration::from_secs(5),
        timeout: Duration::from_secs(5),
        adaptive_floor: Some(ms(300)),
    };
    let (mut h, e) = connected(plain().with_heartbeat(Some(hb)));
    h.jump();
    h.write_all();
    h.advance(ms(10));
    h.handle(Event::Pong { epoch: e });
    // Last read at 5.010 s; the timeout is now max(floor, srtt + 4 var) = 300 ms.
    assert_eq!(h.jump(), at(10_010), "ping");
    h.write_all();
    assert_eq!(
        h.jump(),
        at(10_310),
        "dead after interval + adaptive timeout"
    );
    assert_eq!(h.s.connection(), None);
}

#[test]
fn read_idle_deadline_closes_a_quiet_connection() {
    let (mut h, e) = connected(no_heartbeat().with_read_idle_timeout(Some(ms(2000))));
    h.advance_to(at(1500));
    h.handle(Event::BytesRead { epoch: e, len: 1 });
    assert_eq!(h.jump(), at(3500));
    assert_eq!(
        h.closes(),
        vec![(
            e,
            DisconnectReason::ReadIdle {
                silent_for: ms(2000)
            }
        )]
    );
}

#[test]
fn a_write_that_does_not_complete_in_time_kills_the_connection() {
    let (mut h, e) = connected(plain().with_write_timeout(Some(ms(700))));
    h.advance_to(at(100));
    h.send(b"stuck", Delivery::AtMostOnce);
    assert_eq!(h.transmit(), Some((e, 0, false, 1)));
    h.handle(Event::BytesRead { epoch: e, len: 1 }); // reads don't save a stuck write
    assert_eq!(h.jump(), at(800));
    assert_eq!(
        h.closes(),
        vec![(e, DisconnectReason::WriteTimeout(ms(700)))]
    );
    assert_eq!(h.s.stats().write_timeouts, 1);
    assert_eq!(h.outcomes()[0].1, Outcome::InDoubt);
}

#[test]
fn peer_ping_is_answered_with_a_pong() {
    let (mut h, e) = connected(plain());
    h.advance_to(at(100));
    h.handle(Event::PeerPing { epoch: e });
    assert_eq!(h.transmit(), Some((e, 1, false, 0)));
    // Owed pongs are bounded and batch up while a write is in progress.
    for _ in 0..10 {
        h.handle(Event::PeerPing { epoch: e });
    }
    assert_eq!(h.transmit(), None);
    h.handle(Event::Written { epoch: e });
    let (_, pongs, _, _) = h.transmit().unwrap();
    assert!((1..=10).contains(&pongs));
}

// ----- epochs -----

#[test]
fn stale_epoch_events_change_nothing_and_are_counted() {
    let mut h = H::new(acked(plain()));
    let old = h.connect();
    h.drop_conn(Event::Eof { epoch: old });
    let new = h.connect();
    assert_ne!(old, new);
    let id = h.send(b"a", Delivery::AtMostOnce);
    assert_eq!(h.transmit(), Some((new, 0, false, 1)));
    let stale0 = h.s.stats().stale_inputs;
    let closes0 = h.closes().len();
    h.handle(Event::BytesRead {
        epoch: old,
        len: 10,
    });
    h.handle(Event::Written { epoch: old });
    h.handle(Event::Acked {
        epoch: old,
        count: 1,
    });
    h.handle(Event::Eof { epoch: old });
    h.handle(Event::IoError {
        epoch: old,
        error: NetError::Reset,
    });
    h.handle(Event::Pong { epoch: old });
    assert_eq!(h.s.stats().stale_inputs, stale0 + 6);
    assert_eq!(h.s.connection(), Some(new));
    assert_eq!(
        h.s.in_flight(),
        1,
        "the old Written did not finish our write"
    );
    assert!(h.outcomes().is_empty(), "the old Ack settled nothing");
    assert_eq!(h.closes().len(), closes0);
    assert_eq!(h.s.stats().bytes_read, 0);
    // Liveness still runs from the new connection's last read.
    h.handle(Event::Written { epoch: new });
    h.handle(Event::Acked {
        epoch: new,
        count: 1,
    });
    assert_eq!(h.outcomes(), vec![(id, Outcome::Delivered, None)]);
}

#[test]
fn next_dial_waits_for_the_old_socket_to_close() {
    let (mut h, e) = connected(never().with_close_timeout(Duration::from_secs(2)));
    h.handle(Event::Eof { epoch: e });
    assert_eq!(h.s.state(), State::Disconnecting);
    // The backoff (100 ms) passes, but the old socket is still closing.
    assert_eq!(h.jump(), at(2000), "close_timeout, not the backoff");
    assert_eq!(h.dial_times().len(), 1, "not before the jump");
    h.resolve(&ADDRS[..1]);
    assert_eq!(h.dial_times(), vec![at(0), at(2000)]);

    let (mut h, e) = connected(never().with_close_timeout(Duration::from_secs(2)));
    h.handle(Event::Eof { epoch: e });
    h.advance_to(at(500));
    assert_eq!(h.dial_times().len(), 1);
    h.handle(Event::Closed { epoch: e });
    h.resolve(&ADDRS[..1]);
    assert_eq!(
        h.dial_times(),
        vec![at(0), at(500)],
        "dial once Closed arrives"
    );
}

#[test]
fn a_dial_that_completes_after_its_timeout_gets_a_close() {
    let mut h = H::new(never());
    let (old, _) = h.resolve(&ADDRS[..1]);
    h.jump(); // connect timeout
    let (new, _) = h.resolve(&ADDRS[..1]);
    let stale0 = h.s.stats().stale_inputs;
    h.handle(Event::DialOk { epoch: old });
    assert_eq!(h.closes().last(), Some(&(old, DisconnectReason::Stale)));
    assert_eq!(h.s.state(), State::Connecting);
    assert_eq!(h.s.stats().stale_inputs, stale0 + 1);
    h.handle(Event::DialOk { epoch: new });
    assert_eq!(h.s.connection(), Some(new));
}

// ----- flap damping -----

#[test]
fn a_connection_lost_before_stable_after_grows_the_backoff() {
    let mut h = H::new(never());
    let mut delays = Vec::new();
    for _ in 0..4 {
        let e = h.connect();
        h.advance(Duration::from_secs(1));
        h.drop_conn(Event::Eof { epoch: e });
        delays.push(match h.notifications().last_disconnect() {
            Some(d) => d,
            None => unreachable!(),
        });
    }
    assert_eq!(delays, vec![ms(100), ms(200), ms(400), ms(800)]);
    assert_eq!(h.s.failures(), 4);
}

#[test]
fn a_connection_that_stayed_up_resets_the_backoff() {
    let mut h = H::new(never().with_heartbeat(None));
    for _ in 0..4 {
        h.attempt(Err(NetError::Refused));
    }
    let e = h.connect();
    assert_eq!(h.s.failures(), 4, "a successful dial alone does not reset");
    h.advance(Duration::from_secs(10));
    h.drop_conn(Event::Eof { epoch: e });
    assert_eq!(h.notifications().last_disconnect(), Some(ms(100)));
    assert_eq!(h.s.failures(), 0);
}

trait LastDisconnect {
    fn last_disconnect(self) -> Option<Duration>;
}

impl<'a, I: Iterator<Item = &'a Notification>> LastDisconnect for I {
    fn last_disconnect(self) -> Option<Duration> {
        self.filter_map(|n| match n {
            Notification::Disconnected { next_delay, .. } => Some(*next_delay),
            _ => None,
        })
        .last()
        .flatten()
    }
}

// ----- ledger -----

#[test]
fn without_acks_a_message_is_delivered_when_written() {
    let (mut h, e) = connected(plain());
    let id = h.send(b"hello", Delivery::AtMostOnce);
    let (epoch, bytes) = h.next_transmit().unwrap();
    assert_eq!(epoch, e);
    assert_eq!(parse_transmit(&bytes).2, vec![b"hello".to_vec()]);
    assert!(h.outcomes().is_empty());
    h.handle(Event::Written { epoch: e });
    assert_eq!(h.outcomes(), vec![(id, Outcome::Delivered, None)]);
    assert_eq!(h.s.queue_len(), 0);
}

#[test]
fn in_order_acks_doubt_written_messages_replay_idempotent_and_unwritten_ones() {
    let mut cfg = plain();
    cfg.batch_messages = 3;
    let (mut h, e) = connected(acked(cfg));
    let a = h.send(b"a", Delivery::AtMostOnce);
    let i = h.send(b"i", Delivery::Idempotent);
    let b = h.send(b"b", Delivery::AtMostOnce);
    let q1 = h.send(b"q1", Delivery::AtMostOnce);
    let q2 = h.send(b"q2", Delivery::AtMostOnce);
    assert_eq!(
        h.transmit(),
        Some((e, 0, false, 1)),
        "only a: sent on enqueue"
    );
    h.handle(Event::Written { epoch: e });
    let (_, _, _, n) = h.transmit().unwrap();
    assert_eq!(n, 3);
    h.handle(Event::Written { epoch: e });
    h.handle(Event::Acked { epoch: e, count: 1 }); // a delivered
    let (written, _) = h.write_all();
    assert_eq!(written, vec![b"q2".to_vec()]);
    h.drop_conn(Event::Eof { epoch: e });
    let outcomes = h.outcomes();
    assert_eq!(
        outcomes,
        vec![
            (a, Outcome::Delivered, None),
            (b, Outcome::InDoubt, Some(b"b".to_vec())),
            (q1, Outcome::InDoubt, Some(b"q1".to_vec())),
            (q2, Outcome::InDoubt, Some(b"q2".to_vec())),
        ]
    );
    let q3 = h.send(b"q3", Delivery::AtMostOnce);
    let e2 = h.connect();
    let (replayed, _) = h.write_all();
    assert_eq!(
        replayed,
        vec![b"i".to_vec(), b"q3".to_vec()],
        "once, in order"
    );
    h.handle(Event::Acked {
        epoch: e2,
        count: 2,
    });
    assert_eq!(
        h.outcomes()[4..],
        [
            (i, Outcome::Delivered, None),
            (q3, Outcome::Delivered, None)
        ]
    );
    assert_eq!(h.s.stats().replayed, 1);
}

#[test]
fn in_doubt_messages_are_never_written_again() {
    let (mut h, e) = connected(acked(plain()));
    h.send(b"once", Delivery::AtMostOnce);
    let mut written = h.write_all().0;
    h.drop_conn(Event::Eof { epoch: e });
    for _ in 0..3 {
        let e = h.connect();
        written.extend(h.write_all().0);
        h.drop_conn(Event::Eof { epoch: e });
    }
    assert_eq!(written, vec![b"once".to_vec()]);
    assert_eq!(h.s.stats().in_doubt, 1);
}

#[test]
fn never_written_messages_are_replayed_after_reconnect() {
    let mut h = H::new(plain());
    let id = h.send(b"early", Delivery::AtMostOnce);
    h.attempt(Err(NetError::Refused));
    h.attempt(Err(NetError::Refused));
    let e = h.connect();
    let (written, _) = h.write_all();
    assert_eq!(written, vec![b"early".to_vec()]);
    assert_eq!(h.outcomes(), vec![(id, Outcome::Delivered, None)]);
    assert_eq!(h.s.connection(), Some(e));
}

#[test]
fn acknowledging_more_than_was_written_is_a_protocol_error() {
    let (mut h, e) = connected(acked(plain()));
    h.send(b"a", Delivery::AtMostOnce);
    h.write_all();
    // Two replies: the first answers "a", the second answers nothing.
    h.handle(Event::Acked { epoch: e, count: 2 });
    assert_eq!(
        h.closes(),
        vec![(e, DisconnectReason::Protocol(FrameError::UnexpectedReply))]
    );
    assert_eq!(h.outcomes()[0].1, Outcome::Delivered, "its own reply came");
}

fn small_queue(overflow: Overflow) -> Config {
    plain().with_queue(QueueLimits {
        max_messages: 2,
        max_bytes: 10,
        max_message: 8,
        overflow,
    })
}

#[test]
fn a_full_queue_rejects_and_hands_the_message_back() {
    let mut h = H::new(small_queue(Overflow::Reject));
    h.send(b"1", Delivery::AtMostOnce);
    h.send(b"2", Delivery::AtMostOnce);
    let r = h.s.enqueue(h.now, b"3".to_vec(), Delivery::AtMostOnce);
    let r = r.unwrap_err();
    assert_eq!(
        (r.reason, r.payload),
        (RejectReason::QueueFull, b"3".to_vec())
    );
    let r = h.s.enqueue(h.now, vec![0; 9], Delivery::AtMostOnce);
    assert!(matches!(
        r.unwrap_err().reason,
        RejectReason::TooLarge { size: 9, max: 8 }
    ));
    assert_eq!(h.s.stats().rejected, 2);
    assert_eq!(h.s.queue_len(), 2);
}

#[test]
fn evict_oldest_abandons_the_oldest_queued_message_and_says_so() {
    let mut h = H::new(small_queue(Overflow::EvictOldest));
    let one = h.send(b"1", Delivery::AtMostOnce);
    h.send(b"2", Delivery::AtMostOnce);
    h.send(b"3", Delivery::AtMostOnce);
    assert_eq!(
        h.outcomes(),
        vec![(
            one,
            Outcome::Abandoned(AbandonReason::Evicted),
            Some(b"1".to_vec())
        )]
    );
    h.connect();
    assert_eq!(h.write_all().0, vec![b"2".to_vec(), b"3".to_vec()]);
}

#[test]
fn evict_oldest_evicts_nothing_for_a_message_that_cannot_fit_anyway() {
    // 8 bytes in flight + 4 queued of a 10-byte queue: a 3-byte message cannot fit even with
    // the queued ones gone, so they stay and the new one is rejected.
    let (mut h, e) = connected(small_queue(Overflow::EvictOldest).with_heartbeat(None));
    h.send(b"12345678", Delivery::AtMostOnce);
    assert_eq!(h.transmit(), Some((e, 0, false, 1)));
    let queued = h.send(b"q", Delivery::AtMostOnce);
    let r = h.s.enqueue(h.now, b"abc".to_vec(), Delivery::AtMostOnce);
    assert_eq!(r.unwrap_err().reason, RejectReason::QueueFull);
    h.poll();
    assert!(h.outcomes().is_empty(), "nothing evicted for nothing");
    // Once the write completes there is room, and nothing was lost.
    h.handle(Event::Written { epoch: e });
    let (written, _) = h.write_all();
    assert_eq!(written, vec![b"q".to_vec()]);
    assert_eq!(h.outcomes()[1], (queued, Outcome::Delivered, None));
}

// ----- close -----

#[test]
fn graceful_close_drains_the_queue_then_closes() {
    let (mut h, e) = connected(no_heartbeat());
    let a = h.send(b"a", Delivery::AtMostOnce);
    h.s.close(
        h.now,
        CloseMode::Graceful {
            drain: Duration::from_secs(5),
        },
    );
    assert_eq!(h.s.state(), State::Disconnecting);
    let b = h.s.enqueue(h.now, b"late".to_vec(), Delivery::AtMostOnce);
    assert_eq!(b.unwrap_err().reason, RejectReason::Closed);
    h.poll();
    assert_eq!(h.transmit(), Some((e, 0, false, 1)));
    assert_ne!(h.s.state(), State::Closed, "still writing");
    h.handle(Event::Written { epoch: e });
    assert_eq!(h.s.state(), State::Closed);
    assert_eq!(h.outcomes(), vec![(a, Outcome::Delivered, None)]);
    assert_eq!(h.closes(), vec![(e, DisconnectReason::UserClose)]);
    assert_eq!(h.wait, None);
}

#[test]
fn graceful_close_abandons_what_the_drain_deadline_leaves() {
    let mut h = H::new(never());
    let a = h.send(b"a", Delivery::AtMostOnce);
    h.attempt(Err(NetError::Refused));
    h.s.close(h.now, CloseMode::Graceful { drain: ms(1000) });
    let t0 = h.now;
    while h.s.state() != State::Closed {
        h.jump();
        if let Some(e) = h.pending(|a| match a {
            Action::Resolve { epoch } => Some(*epoch),
            _ => None,
        }) {
            h.handle(Event::ResolveFailed {
                epoch: e,
                error: NetError::ResolveFailed,
            });
        }
    }
    assert_eq!(h.now, t0 + ms(1000));
    assert_eq!(
        h.outcomes(),
        vec![(
            a,
            Outcome::Abandoned(AbandonReason::DrainTimeout),
            Some(b"a".to_vec())
        )]
    );
}

#[test]
fn immediate_close_abandons_queued_and_doubts_in_flight() {
    let (mut h, e) = connected(plain());
    let w = h.send(b"w", Delivery::Idempotent);
    let q = h.send(b"q", Delivery::AtMostOnce);
    assert_eq!(h.transmit(), Some((e, 0, false, 1)));
    h.s.close(h.now, CloseMode::Immediate);
    h.poll();
    assert_eq!(h.s.state(), State::Closed);
    assert_eq!(
        h.outcomes(),
        vec![
            (w, Outcome::InDoubt, Some(b"w".to_vec())),
            (
                q,
                Outcome::Abandoned(AbandonReason::Closed),
                Some(b"q".to_vec())
            ),
        ]
    );
    assert_eq!(h.closes(), vec![(e, DisconnectReason::UserClose)]);
    let r = h.s.enqueue(h.now, b"x".to_vec(), Delivery::AtMostOnce);
    assert_eq!(r.unwrap_err().reason, RejectReason::Closed);
    h.handle(Event::Written { epoch: e });
    assert_eq!(h.outcomes().len(), 2, "nothing settles twice");
}

#[test]
fn enqueue_after_close_is_rejected_with_the_payload() {
    let mut h = H::new(plain());
    h.s.close(h.now, CloseMode::Immediate);
    let r = h.s.enqueue(h.now, b"x".to_vec(), Delivery::Idempotent);
    let r = r.unwrap_err();
    assert_eq!((r.reason, r.payload), (RejectReason::Closed, b"x".to_vec()));
    h.poll();
    assert!(h.dial_times().is_empty());
}

#[test]
fn reconnect_now_skips_the_backoff_and_drops_a_live_connection() {
    let mut h = H::new(never());
    for _ in 0..5 {
        h.attempt(Err(NetError::Refused));
    }
    let t = h.now;
    h.s.reconnect_now(h.now);
    let (e, dialed) = h.resolve(&ADDRS[..1]);
    assert!(dialed.is_some());
    assert_eq!(h.now, t, "no wait");
    assert_eq!(h.s.failures(), 5, "the streak is kept");
    h.handle(Event::DialOk { epoch: e });
    h.s.reconnect_now(h.now);
    h.poll();
    assert_eq!(
        h.closes().last(),
        Some(&(e, DisconnectReason::ReconnectRequested))
    );
    h.handle(Event::Closed { epoch: e });
    let (e2, _) = h.resolve(&ADDRS[..1]);
    assert!(e2 > e);
    assert_eq!(h.now, t);
}

#[test]
fn a_clock_going_backwards_is_clamped() {
    let (mut h, e) = connected(plain());
    h.advance_to(at(4000));
    h.s.handle_read(at(1000), e, &[0], 1, &mut |_| {});
    assert_eq!(h.s.now(), at(4000));
    // The read counts at 4 s (clamped), not 1 s: the ping is due at 9 s.
    assert_eq!(h.s.next_deadline(), Some(at(9000)));
    assert!(matches!(h.s.poll(at(0)), Action::Wait { until: Some(t) } if t == at(9000)));
    // Far in the past: still no ping, no death.
    let a = h.s.poll(at(0));
    assert!(matches!(a, Action::Wait { .. }));
    assert_eq!(h.s.connection(), Some(e));
}

#[test]
fn a_clock_at_the_end_of_time_does_not_livelock() {
    // Deadlines computed from a `now` at the end of time used to saturate to `now` itself,
    // so every attempt timed out at once and `poll` never returned Wait.
    let mut s = Session::new(never(), Framed::new(LineCodec::plain()), Instant::ZERO).unwrap();
    for round in 0..3 {
        let mut actions = 0;
        while !matches!(s.poll(Instant::MAX), Action::Wait { .. }) {
            actions += 1;
            assert!(actions < 1000, "round {round}: poll never returned Wait");
        }
    }
    let deadline = s.next_deadline().expect("resolving: a deadline");
    assert!(deadline > s.now(), "deadlines stay in the future");
}

// ----- batches -----

fn batch(messages: &[&[u8]]) -> Batch {
    let mut b = Batch::new();
    for m in messages {
        b.push(m);
    }
    b
}

#[test]
fn a_batch_is_one_entry_written_as_its_messages_and_settled_by_their_acks() {
    let (mut h, e) = connected(acked(plain()));
    let id =
        h.s.enqueue_batch(h.now, batch(&[b"x1", b"x2", b"x3"]), Delivery::AtMostOnce)
            .unwrap();
    let single = h.send(b"after", Delivery::AtMostOnce);
    assert_eq!(h.s.queue_len(), 2, "a batch takes one queue entry");
    assert_eq!(h.s.queue_bytes(), 3 * (4 + 2) + 5);
    let (written, _) = h.write_all();
    assert_eq!(
        written,
        vec![
            b"x1".to_vec(),
            b"x2".to_vec(),
            b"x3".to_vec(),
            b"after".to_vec()
        ]
    );
    h.handle(Event::Acked { epoch: e, count: 2 });
    assert!(h.outcomes().is_empty(), "two of three messages confirmed");
    h.handle(Event::Acked { epoch: e, count: 1 });
    assert_eq!(h.outcomes(), vec![(id, Outcome::Delivered, None)]);
    // One more than is in flight is a lie: the first reply answers "after", the second
    // answers nothing.
    h.handle(Event::Acked { epoch: e, count: 2 });
    assert_eq!(
        h.disconnects(),
        vec![DisconnectReason::Protocol(FrameError::UnexpectedReply)]
    );
    assert_eq!(h.outcomes()[1], (single, Outcome::Delivered, None));
}

#[test]
fn a_partly_confirmed_batch_is_in_doubt_and_handed_back_whole() {
    let (mut h, e) = connected(acked(plain()));
    let id =
        h.s.enqueue_batch(h.now, batch(&[b"a", b"b"]), Delivery::AtMostOnce)
            .unwrap();
    h.write_all();
    h.handle(Event::Acked { epoch: e, count: 1 });
    h.drop_conn(Event::Eof { epoch: e });
    let outcomes = h.outcomes();
    assert_eq!(outcomes.len(), 1);
    assert_eq!((outcomes[0].0, outcomes[0].1), (id, Outcome::InDoubt));
    let back = Batch::from_vec(outcomes[0].2.clone().unwrap()).unwrap();
    assert_eq!(back.iter().collect::<Vec<_>>(), vec![&b"a"[..], &b"b"[..]]);
    let e2 = h.connect();
    assert!(h.write_all().0.is_empty(), "never written again");
    assert_eq!(h.s.connection(), Some(e2));
}

#[test]
fn an_idempotent_batch_is_replayed_whole_and_confirmed_again() {
    let (mut h, e) = connected(acked(plain()));
    let id =
        h.s.enqueue_batch(h.now, batch(&[b"a", b"b", b"c"]), Delivery::Idempotent)
            .unwrap();
    h.write_all();
    h.handle(Event::Acked { epoch: e, count: 2 });
    h.drop_conn(Event::Eof { epoch: e });
    assert!(h.outcomes().is_empty());
    let e2 = h.connect();
    assert_eq!(
        h.write_all().0,
        vec![b"a".to_vec(), b"b".to_vec(), b"c".to_vec()]
    );
    h.handle(Event::Acked {
        epoch: e2,
        count: 2,
    });
    assert!(h.outcomes().is_empty(), "the replay needs all three again");
    h.handle(Event::Acked {
        epoch: e2,
        count: 1,
    });
    assert_eq!(h.outcomes(), vec![(id, Outcome::Delivered, None)]);
}

#[test]
fn batches_are_refused_when_empty_or_too_large_and_handed_back() {
    let cfg = plain().with_queue(QueueLimits {
        max_messages: 8,
        max_bytes: 20,
        max_message: 6,
        overflow: Overflow::Reject,
    });
    let (mut h, _) = connected(cfg);
    let r = h.s.enqueue_batch(h.now, Batch::new(), Delivery::AtMostOnce);
    assert_eq!(r.unwrap_err().reason, RejectReason::EmptyBatch);
    let big = batch(&[b"ok", b"seven77"]);
    let r =
        h.s.enqueue_batch(h.now, big.clone(), Delivery::AtMostOnce)
            .unwrap_err();
    assert_eq!(r.reason, RejectReason::TooLarge { size: 7, max: 6 });
    assert_eq!(r.payload, big.into_vec());
    let fits = batch(&[b"123456", b"123456"]);
    assert_eq!(fits.byte_len(), 20);
    let wide = batch(&[b"1234", b"1234", b"1234"]);
    let r =
        h.s.enqueue_batch(h.now, wide, Delivery::AtMostOnce)
            .unwrap_err();
    assert_eq!(r.reason, RejectReason::TooLarge { size: 24, max: 20 });
    h.s.enqueue_batch(h.now, fits, Delivery::AtMostOnce)
        .unwrap();
    assert_eq!(h.s.stats().rejected, 3);
}

/// A consumer taking one message at a time must not flip reading on and off per message:
/// reading pauses at the inbound bound and resumes only once the user has taken back to half
/// of it (one pause, one resume, not one of each per message).
#[test]
fn reading_resumes_at_half_the_inbound_bound_not_per_message() {
    let cfg = no_heartbeat().with_inbound(InboundLimits {
        max_messages: 4,
        max_bytes: 1 << 20,
    });
    let mut h = H::new(cfg);
    let epoch = h.connect();
    let mut bytes = Vec::new();
    for i in 0..8 {
        bytes.extend(frame(Frame::Data(format!("m{i}").as_bytes())));
    }
    let mut handed = 0;
    let used =
        h.s.handle_read(h.now, epoch, &bytes, bytes.len(), &mut |_| handed += 1);
    assert_eq!(handed, 4, "handed out up to the bound");
    assert!(used < bytes.len(), "the rest waits");
    assert!(!h.s.wants_read(), "paused at the bound");
    let now = h.now;
    h.s.inbound_taken(now, 1, 2);
    assert!(!h.s.wants_read(), "one taken: still above half the bound");
    h.s.inbound_taken(now, 1, 2);
    assert!(h.s.wants_read(), "back to half the bound: reading resumes");
    h.poll();
    let flips = h
        .notifications()
        .filter(|n| {
            matches!(
                n,
                Notification::ReadPaused { .. } | Notification::ReadResumed { .. }
            )
        })
        .count();
    assert_eq!(flips, 2, "one pause and one resume");
}
