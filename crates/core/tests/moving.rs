//! Leaving an endpoint on purpose (`Session::move_off`) and retries a shared budget refused
//! (`Session::defer_attempt`).

mod common;

use common::*;
use redial_core::*;

fn acked_plain() -> TestCfg {
    acked(plain())
}

#[test]
fn a_move_drains_in_flight_then_reconnects_with_the_rest_queued() {
    let mut h = H::new(acked_plain());
    let e1 = h.connect();
    let a = h.send(b"a", Delivery::AtMostOnce);
    let (written, _) = h.write_all();
    assert_eq!(written, vec![b"a".to_vec()]);
    assert_eq!(h.s.in_flight(), 1);

    assert!(h.s.move_off(h.now, ms(5_000)));
    assert!(!h.s.move_off(h.now, ms(5_000)), "one move at a time");
    assert!(h.s.moving());
    // Sent while moving: held for the next connection, not written to the departing one.
    let b = h.send(b"b", Delivery::AtMostOnce);
    assert_eq!(h.write_all().0, Vec::<Vec<u8>>::new());
    assert_eq!(h.s.state(), State::Connected);

    // The reply to `a` drains the connection: `a` is delivered, then the session moves.
    h.advance(ms(10));
    h.handle(Event::Acked {
        epoch: e1,
        count: 1,
    });
    assert!(h.outcomes().contains(&(a, Outcome::Delivered, None)));
    assert_eq!(h.closes(), vec![(e1, DisconnectReason::Moved)]);
    let moved = h.notifications().find_map(|n| match n {
        Notification::Disconnected {
            reason: DisconnectReason::Moved,
            next_delay,
            ..
        } => Some(*next_delay),
        _ => None,
    });
    assert_eq!(moved, Some(Some(std::time::Duration::ZERO)), "no backoff");
    h.handle(Event::Closed { epoch: e1 });
    assert_eq!(h.s.failures(), 0, "a move is not a failure");

    // The next connection (to whatever the host resolves now) carries `b`.
    let (e2, dialed) = h.resolve(&ADDRS[1..]);
    assert_eq!(dialed, Some(ADDRS[1]));
    h.handle(Event::DialOk { epoch: e2 });
    assert_eq!(h.write_all().0, vec![b"b".to_vec()]);
    h.handle(Event::Acked {
        epoch: e2,
        count: 1,
    });
    assert!(h.outcomes().contains(&(b, Outcome::Delivered, None)));
    assert_eq!(h.s.stats().moves, 1);
    assert!(!h.s.moving());
}

#[test]
fn a_move_that_cannot_drain_ends_at_its_bound_with_the_usual_outcomes() {
    let mut h = H::new(acked_plain());
    let e1 = h.connect();
    let a = h.send(b"a", Delivery::AtMostOnce);
    let i = h.send(b"i", Delivery::Idempotent);
    h.write_all();
    let start = h.now;
    assert!(h.s.move_off(h.now, ms(2_000)));
    let q = h.send(b"q", Delivery::AtMostOnce);
    // No reply ever comes: at the bound the connection ends.
    while h.closes().is_empty() {
        h.jump();
    }
    assert_eq!(h.now, start + ms(2_000));
    assert_eq!(h.closes(), vec![(e1, DisconnectReason::Moved)]);
    let outcomes = h.outcomes();
    // Written, not confirmed, not idempotent: in doubt, with its payload back.
    assert!(outcomes.contains(&(a, Outcome::InDoubt, Some(b"a".to_vec()))));
    // Nothing else is settled: `i` is replayed, `q` was never written.
    assert_eq!(outcomes.len(), 1, "{outcomes:?}");
    h.handle(Event::Closed { epoch: e1 });
    let (e2, _) = h.resolve(&ADDRS[1..]);
    h.handle(Event::DialOk { epoch: e2 });
    assert_eq!(h.write_all().0, vec![b"i".to_vec(), b"q".to_vec()]);
    h.handle(Event::Acked {
        epoch: e2,
        count: 2,
    });
    let outcomes = h.outcomes();
    assert!(outcomes.contains(&(i, Outcome::Delivered, None)));
    assert!(outcomes.contains(&(q, Outcome::Delivered, None)));
}

#[test]
fn move_off_is_refused_unless_connected() {
    let mut h = H::new(acked_plain());
    assert!(!h.s.move_off(h.now, ms(1_000)), "not connected yet");
    h.connect();
    h.s.close(h.now, CloseMode::Graceful { drain: ms(1_000) });
    assert!(!h.s.move_off(h.now, ms(1_000)), "closing");
}

#[test]
fn a_deferred_retry_waits_without_counting_a_failure() {
    let mut h = H::new(plain());
    h.attempt(Err(NetError::Refused));
    assert_eq!(h.s.failures(), 1);
    // The second attempt: the host's budget refuses it.
    let epoch = loop {
        if let Some(e) = h.pending(|a| match a {
            Action::Resolve { epoch } => Some(*epoch),
            _ => None,
        }) {
            break e;
        }
        h.jump();
    };
    let t = h.now;
    assert!(h.s.defer_attempt(h.now, epoch, ms(3_000)));
    assert!(!h.s.defer_attempt(h.now, epoch, ms(3_000)), "once");
    h.poll();
    assert_eq!(h.s.state(), State::Disconnected);
    assert_eq!(h.s.failures(), 1, "a refusal is not a failure");
    assert_eq!(h.s.stats().deferred, 1);
    assert_eq!(h.wait, Some(t + ms(3_000)), "at least the budget's advice");
    // Stale: the resolution of the deferred attempt is ignored.
    let _ = h.s.handle_input(
        h.now,
        Input::Resolved {
            epoch,
            addrs: &ADDRS[..1],
        },
    );
    assert!(
        h.dial_times().len() == 1,
        "no dial for the deferred attempt"
    );
    // The next attempt starts when the advice has passed, and dials.
    let e = h.attempt(Ok(()));
    assert!(h.now >= t + ms(3_000));
    assert_eq!(h.s.connection(), Some(e));
}

#[test]
fn a_short_advice_still_waits_a_backoff_delay() {
    let mut h = H::new(plain());
    h.attempt(Err(NetError::Refused));
    let epoch = loop {
        if let Some(e) = h.pending(|a| match a {
            Action::Resolve { epoch } => Some(*epoch),
            _ => None,
        }) {
            break e;
        }
        h.jump();
    };
    let t = h.now;
    assert!(h.s.defer_attempt(h.now, epoch, ms(1)));
    h.poll();
    // Plain backoff: 100 ms × 2^(failures − 1) with one failure is 100 ms; the last wait was
    // 100 ms too, so between 100 and 200 ms.
    let wait = h.wait.unwrap() - t;
    assert!((ms(100)..=ms(200)).contains(&wait), "{wait:?}");
}

#[test]
fn refusals_in_a_row_back_off_to_the_cap() {
    let cfg = plain().with_backoff(
        Backoff::new()
            .with_jitter(Jitter::None)
            .with_cap(ms(10_000)),
    );
    let mut h = H::new(cfg);
    h.attempt(Err(NetError::Refused));
    let mut waits = Vec::new();
    for _ in 0..20 {
        let epoch = loop {
            if let Some(e) = h.pending(|a| match a {
                Action::Resolve { epoch } => Some(*epoch),
                _ => None,
            }) {
                break e;
            }
            h.jump();
        };
        let t = h.now;
        assert!(h.s.defer_attempt(h.now, epoch, ms(1)));
        h.poll();
        waits.push(h.wait.unwrap() - t);
    }
    assert_eq!(h.s.failures(), 1);
    assert!(waits.iter().all(|w| *w <= ms(10_000)), "{waits:?}");
    assert!(waits[19] >= ms(5_000), "grew to the cap: {waits:?}");
    assert!(
        waits.windows(2).filter(|w| w[1] > w[0]).count() >= 5,
        "{waits:?}"
    );
}
