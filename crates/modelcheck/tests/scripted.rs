//! Scripted paths through the model: the host drives the real core as a healthy network
//! would, finds nothing wrong, and its recorded trace replays identically.

use redial_core::{Delivery, Outcome};
use redial_modelcheck::host::{Act, Feed};
use redial_modelcheck::{trace_text, Host, Limits, Proto, SessionModel};

/// Takes the first enabled step in `prefer` order until nothing in it is enabled.
fn healthy(h: &mut Host, prefer: &[Act], steps: &mut Vec<Act>) {
    for _ in 0..200 {
        let en = h.enabled();
        let Some(a) = prefer.iter().find(|a| en.contains(a)) else {
            return;
        };
        h.apply(*a);
        steps.push(*a);
        assert!(
            h.violations.is_empty(),
            "{:?} after {steps:?}",
            h.violations
        );
    }
    panic!("the healthy network never settled: {steps:?}");
}

const HEALTHY: [Act; 5] = [
    Act::DialOk,
    Act::Written,
    Act::Reply,
    Act::Answer(0),
    Act::Feed(Feed::All),
];

fn deliver_all(proto: Proto) -> (Host, Vec<Act>) {
    let mut h = Host::new(proto, Limits::DEEP, true);
    let mut steps = Vec::new();
    let mut user = vec![
        Act::Enqueue(Delivery::AtMostOnce),
        Act::Enqueue(Delivery::Idempotent),
    ];
    if proto == Proto::Nats {
        user.push(Act::Request);
    }
    for a in user {
        h.apply(a);
        steps.push(a);
    }
    healthy(&mut h, &HEALTHY, &mut steps);
    (h, steps)
}

#[test]
fn a_healthy_network_delivers_everything() {
    for proto in [Proto::Redis, Proto::Nats] {
        let (h, steps) = deliver_all(proto);
        assert!(
            h.settled(),
            "{proto:?}: not settled after {steps:?}: {:?}",
            h.m.sent
        );
        for (id, s) in &h.m.sent {
            assert_eq!(s.outcome, Some(Outcome::Delivered), "{proto:?} {id:?}");
            assert_eq!(s.executed, 1, "{proto:?} {id:?}");
        }
    }
}

#[test]
fn recorded_traces_replay_identically() {
    for proto in [Proto::Redis, Proto::Nats] {
        let (_, steps) = deliver_all(proto);
        let model = SessionModel::new(proto, Limits::DEEP);
        let text = trace_text(&model, &steps).expect("recorded");
        let replayed = redial_driver::trace::replay(text.as_bytes()).expect("a valid trace");
        assert!(
            replayed.identical(),
            "{proto:?}: replay diverges at {:?}",
            replayed.first_mismatch()
        );
        assert!(replayed.reads > 0);
    }
}

#[test]
fn a_lost_reply_leaves_a_non_idempotent_message_in_doubt() {
    // The handshake runs by itself here: the only steps are the dial and the write.
    let mut h = Host::new(Proto::Redis, Limits::CI, false);
    let mut steps = vec![Act::Enqueue(Delivery::AtMostOnce)];
    h.apply(steps[0]);
    healthy(&mut h, &[Act::DialOk, Act::Written], &mut steps);
    // The request executed; its reply is lost with the connection.
    let (_, s) = h.m.sent.iter().next().expect("one message");
    assert_eq!(s.executed, 1);
    h.apply(Act::Reset);
    assert!(h.violations.is_empty(), "{:?}", h.violations);
    let (_, s) = h.m.sent.iter().next().expect("one message");
    assert_eq!(s.outcome, Some(Outcome::InDoubt));
}

#[test]
fn pushes_reach_the_subscription_and_replies_their_requests() {
    for proto in [Proto::Redis, Proto::Nats] {
        let mut h = Host::new(proto, Limits::DEEP, false);
        let mut steps = vec![Act::Subscribe, Act::Enqueue(Delivery::AtMostOnce)];
        for a in &steps {
            h.apply(*a);
        }
        healthy(&mut h, &HEALTHY, &mut steps);
        assert!(
            h.enabled().contains(&Act::Push),
            "{proto:?}: no push possible after {steps:?}"
        );
        h.apply(Act::Push);
        steps.push(Act::Push);
        healthy(&mut h, &HEALTHY, &mut steps);
        assert!(h.violations.is_empty(), "{proto:?}: {:?}", h.violations);
        assert_eq!(
            h.session().stats().messages_received,
            1,
            "{proto:?}: {steps:?}"
        );
        assert!(h.settled());
    }
}

#[test]
fn a_silent_peer_is_declared_dead_by_its_deadline() {
    for proto in [Proto::Redis, Proto::Nats] {
        let mut h = Host::new(proto, Limits::DEEP, false);
        let mut steps = Vec::new();
        healthy(&mut h, &HEALTHY, &mut steps);
        let epoch = h.session().connection().expect("connected");
        h.apply(Act::Silence);
        // Only time passes; the peer answers nothing.
        for _ in 0..10 {
            if h.session().connection() != Some(epoch) {
                break;
            }
            assert!(h.enabled().contains(&Act::Jump));
            h.apply(Act::Jump);
            if h.enabled().contains(&Act::Written) {
                h.apply(Act::Written);
            }
        }
        assert!(h.violations.is_empty(), "{proto:?}: {:?}", h.violations);
        assert_ne!(
            h.session().connection(),
            Some(epoch),
            "{proto:?}: still connected"
        );
        assert_eq!(h.session().stats().liveness_timeouts, 1);
        // 1 s interval + 500 ms timeout after the last byte read, and no later.
        assert!(h.now() <= redial_core::Instant::ZERO + std::time::Duration::from_millis(1500));
    }
}

#[test]
fn a_stale_eof_changes_nothing() {
    let mut h = Host::new(Proto::Redis, Limits::DEEP, false);
    let mut steps = Vec::new();
    healthy(&mut h, &HEALTHY, &mut steps);
    h.apply(Act::Reset);
    for a in [Act::Closed, Act::Jump] {
        h.apply(a);
    }
    healthy(&mut h, &HEALTHY, &mut steps);
    assert!(h.enabled().contains(&Act::Stale), "{:?}", h.enabled());
    h.apply(Act::Stale);
    assert!(h.violations.is_empty(), "{:?}", h.violations);
    assert_eq!(h.session().stats().stale_inputs, 1);
}

/// Planted bug 3 of docs/TESTING.md as a regression: a reply whose value is `+PONG`, written before
/// our heartbeat, is the request's reply, not the heartbeat's answer (and the reverse).
#[test]
fn a_pong_valued_reply_is_not_our_heartbeat_answer() {
    let steps = [
        Act::DialOk,
        Act::Enqueue(Delivery::Idempotent), // GET k1, answered `+PONG`
        Act::Written,
        Act::Reply,
        Act::Jump, // the heartbeat interval: our PING goes out behind the GET
        Act::Feed(Feed::All),
    ];
    let model = SessionModel::new(Proto::Redis, Limits::CI);
    let host = model.run(&steps, false).expect("no panic");
    assert!(host.violations.is_empty(), "{:?}", host.violations);
    let s = host.m.sent.values().next().expect("one message");
    assert_eq!(s.outcome, Some(Outcome::Delivered));
    assert!(s.replied);
    assert_eq!(host.session().stats().pings, 1, "the heartbeat went out");
}
