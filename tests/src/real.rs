//! Real faults, for every adapter: partitions between two network namespaces (iptables DROP
//! on ingress in both, or the client's link taken down), and real `redis-server` /
//! `nats-server` processes that nobody here wrote.
//!
//! Like the conformance suite, every scenario is written once against [`Adapter`] and
//! [`real_fault_tests!`](crate::real_fault_tests) stamps out one `#[test]` per scenario.
//!
//! Sessions of the partition scenarios create their sockets through a builder `connector`
//! that dials from a fresh thread which entered the client namespace, so the adapter's own
//! threads (a multi-threaded tokio runtime, smol's global executor) never matter.
//!
//! When namespaces or servers are unavailable, a scenario calls
//! [`skip_or_fail`]: it is reported as `SKIPPED` on stderr, or fails the test under
//! `REDIAL_REQUIRE_REAL=1`. Measured detection times are printed to stderr (`--nocapture`).
//!
//! Timing bounds state their tolerance next to them; they are generous (2-core machines, the
//! whole workspace's tests in parallel) but far from what a broken behaviour gives: without
//! the heartbeat a half-open connection is never found, without `TCP_USER_TIMEOUT` a blocked
//! writer waits for minutes.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::thread;
use std::time::{Duration, Instant};

use futures::channel::oneshot;
use futures::future::BoxFuture;
use futures::{FutureExt, StreamExt};
use redial_core::{
    AckMode, Backoff, CloseMode, Config, Delivery, DisconnectReason, GiveUp, Heartbeat, Jitter,
    LineCodec, NetError, Notification, Outcome, State,
};
use redial_driver::{Builder, Keepalive, SessionEvent, SocketOptions};

use crate::conformance::{assert_never_sent, eventually, refused_for_good, within, Adapter, Live};
use crate::netns::{self, netns_available, NetnsPair, Side};
use crate::servers::{skip_or_fail, which, LineServer, NatsServer, RedisServer};

/// Generates one `#[test]` per real-fault scenario for an [`Adapter`].
#[macro_export]
macro_rules! real_fault_tests {
    ($adapter:ty) => {
        $crate::real_fault_tests!(@each $adapter;
            netns_half_open_found_by_heartbeat, netns_user_timeout_stops_blocked_writer,
            netns_partition_queues_and_settles_exactly, netns_twenty_cut_heal_cycles,
            netns_connect_in_drop_cut_times_out, redis_debug_sleep_and_exact_outcomes,
            redis_client_kill_flushes_queue, redis_restart_reconnects,
            redis_auth_is_a_handshake_with_a_reply,
            nats_pings_answered_both_ways, nats_restart_replays_handshake,
            nats_authorization_is_checked_in_the_handshake);
    };
    (@each $adapter:ty; $($name:ident),*) => {
        $(
            #[test]
            fn $name() {
                <$adapter as $crate::conformance::Adapter>::block_on(
                    $crate::real::$name::<$adapter>(),
                );
            }
        )*
    };
}

const LONG: Duration = Duration::from_secs(10);

/// Slack added to every detection bound: scheduling on a loaded 2-core machine, the `ip
/// netns exec iptables` calls that make the cut, and the 5 ms event polling.
pub const TOLERANCE: Duration = Duration::from_millis(700);

/// A fast policy for real faults: quick retries, never give up.
pub fn real_config(hb: Option<(u64, u64)>) -> Config {
    Config::default()
        .with_backoff(
            Backoff::new()
                .with_initial(Duration::from_millis(20))
                .with_cap(Duration::from_millis(200)),
        )
        .with_give_up(GiveUp::NEVER)
        .with_connect_timeout(Duration::from_millis(800))
        .with_stable_after(Duration::from_millis(200))
        .with_heartbeat(hb.map(|(interval, timeout)| Heartbeat {
            interval: Duration::from_millis(interval),
            timeout: Duration::from_millis(timeout),
            adaptive_floor: None,
        }))
}

/// A builder `connector` that dials `addr` from a fresh thread inside namespace `ns`, so
/// the socket lives there whatever thread runs the session. The thread's own connect limit
/// (`limit`) must exceed the session's connect timeout: the session's deadline is the one
/// under test, and a dial it abandons just finishes on its thread.
pub fn ns_connector(
    ns: String,
    limit: Duration,
) -> impl Fn(SocketAddr) -> BoxFuture<'static, io::Result<TcpStream>> + Send + Sync + 'static {
    move |addr| {
        let (tx, rx) = oneshot::channel();
        let ns = ns.clone();
        let spawned = thread::Builder::new()
            .name("netns-connect".into())
            .spawn(move || {
                let r = netns::enter(&ns).and_then(|()| TcpStream::connect_timeout(&addr, limit));
                let _ = tx.send(r);
            });
        async move {
            spawned?;
            rx.await
                .unwrap_or_else(|_| Err(io::Error::other("connector thread died")))
        }
        .boxed()
    }
}

/// Builds a namespace pair with a working ingress filter, or reports the skip.
fn pair_or_skip(what: &str, tag: &str) -> Option<NetnsPair> {
    if let Err(e) = netns_available() {
        skip_or_fail(what, &format!("network namespaces unavailable: {e}"));
        return None;
    }
    if which("iptables").is_none() && which("nft").is_none() {
        skip_or_fail(what, "neither iptables nor nft is installed");
        return None;
    }
    match NetnsPair::new(tag) {
        Ok(p) => Some(p),
        Err(e) => {
            skip_or_fail(what, &e);
            None
        }
    }
}

/// A line server inside the pair's server namespace.
fn netns_server(pair: &NetnsPair) -> LineServer {
    LineServer::start_in_netns(pair.name(Side::Server), pair.server_ip(), 0)
        .expect("line server inside the server namespace")
}

/// A session in the pair's client namespace, dialing `addr` in the server namespace.
fn ns_session<A: Adapter>(pair: &NetnsPair, addr: SocketAddr, cfg: Config) -> Builder<A::Rt> {
    let limit = cfg.connect_timeout + Duration::from_secs(5);
    A::builder(addr.into())
        .config(cfg)
        .codec(LineCodec::plain())
        .connector(ns_connector(pair.name(Side::Client).to_owned(), limit))
}

/// Waits (bounded by [`LONG`]) for the first event at or after index `from` of `s.seen`
/// that matches `f`, and returns its index and the event. Unlike [`Live::wait_event`], an
/// event drained together with an earlier awaited one is still found.
async fn wait_since<A: Adapter>(
    s: &mut Live,
    from: usize,
    what: &str,
    f: impl Fn(&SessionEvent) -> bool,
) -> (usize, SessionEvent) {
    let deadline = Instant::now() + LONG;
    loop {
        s.drain();
        if let Some(i) = s.seen.get(from..).and_then(|t| t.iter().position(&f)) {
            return (from + i, s.seen[from + i].clone());
        }
        assert!(
            Instant::now() < deadline,
            "[{}] timed out after {LONG:?} waiting for {what}; events: {:#?}",
            A::NAME,
            s.seen
        );
        A::sleep(Duration::from_millis(5)).await;
    }
}

fn is_disconnect(e: &SessionEvent) -> bool {
    matches!(e.notification, Notification::Disconnected { .. })
}

fn is_heartbeat_timeout(e: &SessionEvent) -> bool {
    matches!(
        e.notification,
        Notification::Disconnected {
            reason: DisconnectReason::HeartbeatTimeout { .. },
            ..
        }
    )
}

fn connected_after(e: &SessionEvent, epoch: u64) -> Option<u64> {
    match e.notification {
        Notification::Connected { epoch: ep, .. } if ep.get() > epoch => Some(ep.get()),
        _ => None,
    }
}

fn epoch_of(e: &SessionEvent) -> u64 {
    match e.notification {
        Notification::Connected { epoch, .. } | Notification::Disconnected { epoch, .. } => {
            epoch.get()
        }
        _ => 0,
    }
}

fn count(log: &[(u64, String)], line: &str) -> usize {
    log.iter().filter(|(_, l)| l == line).count()
}

/// Every inbound line received so far.
fn drain_inbound(live: &mut Live) -> Vec<String> {
    let mut lines = Vec::new();
    while let Some(Some(m)) = live.inbound.next().now_or_never() {
        lines.push(String::from_utf8_lossy(&m).into_owned());
    }
    lines
}

/// Scenario 1: Half-open: the cut (DROP on ingress in both namespaces) leaves both ends open and
/// silent. An idle session (heartbeat 500 ms + 1 s) finds it within interval + timeout +
/// [`TOLERANCE`], and no sooner than the timeout; a plain socket in the same cut notices
/// nothing; after the heal the session reconnects and delivers.
pub async fn netns_half_open_found_by_heartbeat<A: Adapter>() {
    let what = format!("[{}] netns_half_open_found_by_heartbeat", A::NAME);
    let Some(pair) = pair_or_skip(&what, "ho") else {
        return;
    };
    let server = netns_server(&pair);
    let cfg = real_config(Some((500, 1000)));
    let hb = cfg.heartbeat.expect("on");
    let mut s = Live::spawn::<A>(ns_session::<A>(&pair, server.addr(), cfg));
    within::<A, _>(
        LONG,
        "first delivery",
        s.handle.send(b"before".to_vec(), Delivery::AtMostOnce),
    )
    .await
    .expect("delivered");
    let addr = server.addr();
    let mut plain = pair
        .run_in(Side::Client, || {
            TcpStream::connect_timeout(&addr, Duration::from_secs(2))
        })
        .expect("plain socket in the client namespace");
    plain.write_all(b"plain\n").expect("plain write");
    eventually::<A>(LONG, "both lines received", || server.received().len() == 2).await;
    // Idle across several heartbeats: answered, never dropped.
    A::sleep(Duration::from_millis(1200)).await;
    assert_eq!(
        s.handle.stats().connects,
        1,
        "[{}] idle session dropped",
        A::NAME
    );
    assert!(
        s.handle.stats().pongs >= 1,
        "[{}] no PONG while idle",
        A::NAME
    );

    s.drain();
    let mark = s.seen.len();
    let cut = Instant::now();
    pair.drop_ingress().expect("drop ingress");
    wait_since::<A>(&mut s, mark, "heartbeat timeout", is_heartbeat_timeout).await;
    let detected = cut.elapsed();
    let bound = hb.interval + hb.timeout + TOLERANCE;
    eprintln!(
        "[{}] half-open (DROP): found by heartbeat after {detected:?} (bound {bound:?})",
        A::NAME
    );
    assert!(
        detected <= bound && detected + Duration::from_millis(100) >= hb.timeout,
        "[{}] half-open found after {detected:?}, expected within [{:?}, {bound:?}]",
        A::NAME,
        hb.timeout
    );
    // The plain socket, cut at the same moment, has noticed nothing.
    plain
        .set_read_timeout(Some(Duration::from_millis(50)))
        .expect("read timeout");
    match plain.read(&mut [0; 16]) {
        Err(e)
            if matches!(
                e.kind(),
                io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
            ) => {}
        other => panic!("[{}] the plain socket noticed the cut: {other:?}", A::NAME),
    }
    assert_ne!(s.handle.state(), State::Connected);

    pair.heal_drop().expect("heal");
    within::<A, _>(
        LONG,
        "delivery after heal",
        s.handle.send(b"after".to_vec(), Delivery::AtMostOnce),
    )
    .await
    .expect("delivered after heal");
    eventually::<A>(LONG, "after received", || {
        server.received().iter().any(|l| l == "after")
    })
    .await;
    assert!(s.handle.stats().connects >= 2);
    s.handle.close(CloseMode::Immediate).await;
}

/// Scenario 2: A writer with unacknowledged data (heartbeat and write deadline off, user timeout
/// 2 s) is stopped by `TCP_USER_TIMEOUT`: an I/O timeout no sooner than 2 s and no later
/// than 2 s + 1 s after the cut (the kernel checks at retransmission timer ticks).
pub async fn netns_user_timeout_stops_blocked_writer<A: Adapter>() {
    let what = format!("[{}] netns_user_timeout_stops_blocked_writer", A::NAME);
    let Some(pair) = pair_or_skip(&what, "ut") else {
        return;
    };
    let server = netns_server(&pair);
    let user_timeout = Duration::from_secs(2);
    let opts = SocketOptions {
        nodelay: true,
        keepalive: Some(Keepalive::default()),
        user_timeout: Some(user_timeout),
    };
    let cfg = real_config(None).with_write_timeout(None);
    let mut s = Live::spawn::<A>(ns_session::<A>(&pair, server.addr(), cfg).socket_options(opts));
    within::<A, _>(
        LONG,
        "first delivery",
        s.handle.send(b"w0".to_vec(), Delivery::AtMostOnce),
    )
    .await
    .expect("delivered");
    eventually::<A>(LONG, "w0 received", || server.received().len() == 1).await;

    let cut = Instant::now();
    pair.drop_ingress().expect("drop ingress");
    let mut receipts = Vec::new();
    let ev = loop {
        receipts.push(s.handle.send(
            format!("w{}", receipts.len() + 1).into_bytes(),
            Delivery::AtMostOnce,
        ));
        A::sleep(Duration::from_millis(100)).await;
        s.drain();
        if let Some(e) = s.seen.iter().find(|e| is_disconnect(e)) {
            break e.clone();
        }
        assert!(
            cut.elapsed() < LONG,
            "[{}] a writer with unacked data was not stopped within {LONG:?}",
            A::NAME
        );
    };
    let detected = cut.elapsed();
    let bound = user_timeout + Duration::from_secs(1);
    eprintln!(
        "[{}] TCP_USER_TIMEOUT {user_timeout:?}: writer stopped after {detected:?} ({:?}, {:?})",
        A::NAME,
        ev.notification,
        ev.detail
    );
    assert!(
        matches!(
            ev.notification,
            Notification::Disconnected {
                reason: DisconnectReason::Io(NetError::TimedOut),
                ..
            }
        ),
        "[{}] expected an I/O timeout, got {:?}",
        A::NAME,
        ev
    );
    assert!(
        detected + Duration::from_millis(50) >= user_timeout && detected <= bound,
        "[{}] stopped after {detected:?}, expected within [{user_timeout:?}, {bound:?}]",
        A::NAME
    );
    pair.heal_drop().expect("heal");
    within::<A, _>(
        LONG,
        "delivery after heal",
        s.handle.send(b"after".to_vec(), Delivery::AtMostOnce),
    )
    .await
    .expect("delivered after heal");
    eventually::<A>(LONG, "after received", || {
        server.received().iter().any(|l| l == "after")
    })
    .await;
    drop(receipts);
    s.handle.close(CloseMode::Immediate).await;
}

/// Scenario 3: One reply per line (acks in order), the server log as the witness. Three messages
/// reach the server but their replies are caught by the cut: the at-most-once one comes back
/// in doubt and is never resent; the idempotent ones are replayed, in order, exactly once.
/// Messages sent during the partition are queued and delivered once after the heal.
pub async fn netns_partition_queues_and_settles_exactly<A: Adapter>() {
    let what = format!("[{}] netns_partition_queues_and_settles_exactly", A::NAME);
    let Some(pair) = pair_or_skip(&what, "pq") else {
        return;
    };
    let server = netns_server(&pair);
    server.set_reply(Some("+OK "));
    let cfg = real_config(Some((300, 700))).with_acks(AckMode::InOrder);
    let mut s = Live::spawn::<A>(ns_session::<A>(&pair, server.addr(), cfg).acks(AckMode::InOrder));
    within::<A, _>(
        LONG,
        "warmup",
        s.handle.send(b"warmup".to_vec(), Delivery::AtMostOnce),
    )
    .await
    .expect("acked");
    // Replies (and the pongs queued behind them) leave 800 ms after the lines arrive: the
    // cut lands in between.
    server.set_reply_delay(Duration::from_millis(800));
    let i1 = s.handle.send(b"i1".to_vec(), Delivery::Idempotent);
    let n1 = s.handle.send(b"n1".to_vec(), Delivery::AtMostOnce);
    let i2 = s.handle.send(b"i2".to_vec(), Delivery::Idempotent);
    eventually::<A>(LONG, "i1 n1 i2 on the server", || {
        server.received().len() == 4
    })
    .await;
    s.drain();
    let mark = s.seen.len();
    pair.drop_ingress().expect("drop ingress");
    server.set_reply_delay(Duration::ZERO);
    let (_, lost) = wait_since::<A>(&mut s, mark, "heartbeat timeout", is_heartbeat_timeout).await;
    let n1 = within::<A, _>(LONG, "n1 outcome", n1)
        .await
        .expect_err("in doubt");
    assert_eq!(
        (n1.outcome, n1.payload.as_slice()),
        (Outcome::InDoubt, &b"n1"[..])
    );
    // Sent during the partition, while the session is redialing into the cut.
    assert_ne!(s.handle.state(), State::Connected);
    let q1 = s.handle.send(b"q1".to_vec(), Delivery::AtMostOnce);
    let q2 = s.handle.send(b"q2".to_vec(), Delivery::Idempotent);
    A::sleep(Duration::from_millis(600)).await;
    assert_eq!(server.received().len(), 4, "nothing crossed the partition");

    pair.heal_drop().expect("heal");
    for (name, r) in [("i1", i1), ("i2", i2), ("q1", q1), ("q2", q2)] {
        within::<A, _>(LONG, name, r)
            .await
            .unwrap_or_else(|u| panic!("[{}] {name} not delivered: {u:?}", A::NAME));
    }
    let log = server.received_with_conn();
    assert_eq!(count(&log, "n1"), 1, "in-doubt message resent: {log:?}");
    assert_eq!(
        (count(&log, "i1"), count(&log, "i2")),
        (2, 2),
        "idempotent ones replayed exactly once: {log:?}"
    );
    assert_eq!(
        (count(&log, "q1"), count(&log, "q2")),
        (1, 1),
        "queued ones delivered once: {log:?}"
    );
    let last_conn = log.last().expect("lines").0;
    let on_new: Vec<&str> = log
        .iter()
        .filter(|(c, _)| *c == last_conn)
        .map(|(_, l)| l.as_str())
        .collect();
    assert_eq!(
        on_new,
        ["i1", "i2", "q1", "q2"],
        "replayed then queued, in order, on the new connection"
    );
    let stats = s.handle.stats();
    assert_eq!(stats.in_doubt, 1);
    assert!(stats.replayed >= 2, "{stats:?}");
    assert!(epoch_of(&lost) >= 1);
    s.handle.close(CloseMode::Immediate).await;
}

/// Scenario 4: Twenty cuts in a row, alternating DROP on ingress and the client link going down:
/// every cut found within interval + timeout + [`TOLERANCE`], every heal reconnected, every
/// message (one acked before each cut, one queued during it) on the server exactly once, in
/// order.
pub async fn netns_twenty_cut_heal_cycles<A: Adapter>() {
    let what = format!("[{}] netns_twenty_cut_heal_cycles", A::NAME);
    let Some(pair) = pair_or_skip(&what, "cy") else {
        return;
    };
    let server = netns_server(&pair);
    server.set_reply(Some("+OK "));
    let cfg = real_config(Some((200, 400)))
        .with_acks(AckMode::InOrder)
        .with_connect_timeout(Duration::from_millis(300))
        .with_backoff(
            Backoff::new()
                .with_initial(Duration::from_millis(20))
                .with_cap(Duration::from_millis(100))
                .with_jitter(Jitter::None),
        );
    let hb = cfg.heartbeat.expect("on");
    let bound = hb.interval + hb.timeout + TOLERANCE;
    let mut s = Live::spawn::<A>(ns_session::<A>(&pair, server.addr(), cfg).acks(AckMode::InOrder));
    let mut expected = Vec::new();
    let mut detections = Vec::new();
    let mut epoch = 0;
    let mut mark = 0;
    let started = Instant::now();
    for cycle in 0..20 {
        let link = cycle % 2 == 1;
        let a = format!("c{cycle}a");
        within::<A, _>(
            LONG,
            "acked before the cut",
            s.handle.send(a.clone().into_bytes(), Delivery::AtMostOnce),
        )
        .await
        .unwrap_or_else(|u| panic!("[{}] cycle {cycle}: {a} {u:?}", A::NAME));
        expected.push(a);
        let cut = Instant::now();
        if link {
            pair.cut_link().expect("link down");
        } else {
            pair.drop_ingress().expect("drop ingress");
        }
        let (at, ev) = wait_since::<A>(&mut s, mark, "cut detected", |e| {
            is_disconnect(e) && epoch_of(e) >= epoch
        })
        .await;
        mark = at + 1;
        let detected = cut.elapsed();
        epoch = epoch_of(&ev);
        assert!(
            detected <= bound,
            "[{}] cycle {cycle} ({}) found after {detected:?} > {bound:?}: {ev:?}",
            A::NAME,
            if link { "link" } else { "drop" }
        );
        detections.push(detected);
        let b = format!("c{cycle}b");
        let queued = s.handle.send(b.clone().into_bytes(), Delivery::AtMostOnce);
        expected.push(b.clone());
        if link {
            pair.heal_link().expect("link up");
        } else {
            pair.heal_drop().expect("heal");
        }
        let (at, up) = wait_since::<A>(&mut s, mark, "reconnected", |e| {
            connected_after(e, epoch).is_some()
        })
        .await;
        mark = at + 1;
        epoch = epoch_of(&up);
        within::<A, _>(LONG, "queued delivery", queued)
            .await
            .unwrap_or_else(|u| panic!("[{}] cycle {cycle}: {b} {u:?}", A::NAME));
    }
    let took = started.elapsed();
    eventually::<A>(LONG, "every line logged", || {
        server.received().len() == expected.len()
    })
    .await;
    assert_eq!(server.received(), expected, "every message once, in order");
    let stats = s.handle.stats();
    assert_eq!(stats.connects, 21, "{stats:?}");
    assert_eq!(
        s.count(|n| matches!(n, Notification::Disconnected { .. })),
        20
    );
    assert_eq!((stats.in_doubt, stats.abandoned), (0, 0), "{stats:?}");
    detections.sort();
    eprintln!(
        "[{}] 20 cut/heal cycles in {took:?}: detection min {:?} median {:?} max {:?} (bound {bound:?}); \
         {} heartbeat timeouts",
        A::NAME,
        detections[0],
        detections[10],
        detections[19],
        s.count(|n| matches!(
            n,
            Notification::Disconnected {
                reason: DisconnectReason::HeartbeatTimeout { .. },
                ..
            }
        ))
    );
    s.handle.close(CloseMode::Immediate).await;
}

/// Scenario 5: A dial into a DROP cut hangs in the kernel (~127 s); the session's connect timeout
/// (700 ms) bounds it: `AttemptFailed { ConnectTimeout }` naming the address, 700 ms
/// (+ 400 ms tolerance) after the attempt started, counted as a failure. Heal: connects.
pub async fn netns_connect_in_drop_cut_times_out<A: Adapter>() {
    let what = format!("[{}] netns_connect_in_drop_cut_times_out", A::NAME);
    let Some(pair) = pair_or_skip(&what, "ct") else {
        return;
    };
    let server = netns_server(&pair);
    let connect_timeout = Duration::from_millis(700);
    let cfg = real_config(Some((300, 700)))
        .with_connect_timeout(connect_timeout)
        .with_backoff(
            Backoff::new()
                .with_initial(Duration::from_millis(50))
                .with_cap(Duration::from_millis(200))
                .with_jitter(Jitter::None),
        );
    pair.drop_ingress().expect("drop ingress");
    let mut s = Live::spawn::<A>(ns_session::<A>(&pair, server.addr(), cfg));
    wait_since::<A>(&mut s, 0, "second failed attempt", |e| {
        matches!(
            e.notification,
            Notification::AttemptFailed { attempt: 2, .. }
        )
    })
    .await;
    let starts: Vec<Duration> = s
        .seen
        .iter()
        .filter(|e| matches!(e.notification, Notification::AttemptStarted { .. }))
        .map(|e| e.at)
        .collect();
    let fails: Vec<(Duration, SessionEvent)> = s
        .seen
        .iter()
        .filter(|e| matches!(e.notification, Notification::AttemptFailed { .. }))
        .map(|e| (e.at, e.clone()))
        .collect();
    for (i, (at, ev)) in fails.iter().enumerate() {
        let Notification::AttemptFailed {
            attempt,
            addr,
            error,
            ..
        } = ev.notification
        else {
            unreachable!()
        };
        assert_eq!(
            (attempt as usize, addr, error),
            (i + 1, Some(server.addr()), NetError::ConnectTimeout),
            "[{}] {ev:?}",
            A::NAME
        );
        let took = at.saturating_sub(starts[i]);
        eprintln!(
            "[{}] connect into DROP cut: attempt {attempt} failed after {took:?} (timeout {connect_timeout:?})",
            A::NAME
        );
        assert!(
            took + Duration::from_millis(5) >= connect_timeout
                && took <= connect_timeout + Duration::from_millis(400),
            "[{}] attempt {attempt} took {took:?}, connect timeout {connect_timeout:?}",
            A::NAME
        );
    }
    let stats = s.handle.stats();
    assert!(stats.failures >= 2 && stats.connects == 0, "{stats:?}");
    assert_ne!(s.handle.state(), State::Connected);
    pair.heal_drop().expect("heal");
    within::<A, _>(
        LONG,
        "delivery after heal",
        s.handle.send(b"hello".to_vec(), Delivery::AtMostOnce),
    )
    .await
    .expect("delivered after heal");
    eventually::<A>(LONG, "hello received", || server.received() == ["hello"]).await;
    s.handle.close(CloseMode::Immediate).await;
}

// ---------------------------------------------------------------------------------------------
// Redis

fn redis_or_skip(what: &str) -> Option<RedisServer> {
    match RedisServer::start(&[]) {
        Ok(r) => Some(r),
        Err(e) => {
            skip_or_fail(what, e.reason());
            None
        }
    }
}

fn redis_session<A: Adapter>(redis: &RedisServer, cfg: Config) -> Live {
    Live::spawn::<A>(
        A::builder(redis.addr().into())
            .config(cfg.with_acks(AckMode::InOrder))
            .codec(LineCodec::redis())
            .acks(AckMode::InOrder),
    )
}

/// Integer value of `key` (`INCRBY key 0` answers `:N`).
fn redis_int(redis: &RedisServer, key: &str) -> i64 {
    let reply = redis.cli(&["INCRBY", key, "0"]);
    reply
        .strip_prefix(':')
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("INCRBY {key} 0 answered {reply:?}"))
}

/// Sends one inline command on a fresh connection and returns the first reply line.
fn redis_inline(addr: SocketAddr, cmd: &str) -> io::Result<String> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    s.write_all(format!("{cmd}\r\n").as_bytes())?;
    let mut line = String::new();
    io::BufRead::read_line(&mut io::BufReader::new(s), &mut line)?;
    Ok(line.trim_end().to_owned())
}

/// True once a fresh connection's `PING` goes unanswered for 150 ms (the server is frozen).
fn redis_frozen(addr: SocketAddr) -> bool {
    let Ok(mut s) = TcpStream::connect_timeout(&addr, Duration::from_millis(200)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_millis(150)));
    if s.write_all(b"PING\r\n").is_err() {
        return false;
    }
    matches!(s.read(&mut [0; 16]), Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut))
}

/// Redis: `PING`/`+PONG` heartbeat keeps an idle session up; `DEBUG SLEEP` (1.6 s, longer
/// than the 300 ms + 700 ms heartbeat) is found within interval + timeout + [`TOLERANCE`]
/// and the session reconnects. With one reply per command as the ack, outcomes are exact:
/// `INCR`s written during the freeze come back in doubt and are never resent (the counter
/// holds at most one increment each), an idempotent `SET` is replayed and confirmed, and
/// confirmed `INCR`s are all counted.
pub async fn redis_debug_sleep_and_exact_outcomes<A: Adapter>() {
    let what = format!("[{}] redis_debug_sleep_and_exact_outcomes", A::NAME);
    let Some(redis) = redis_or_skip(&what) else {
        return;
    };
    let cfg = real_config(Some((300, 700)));
    let hb = cfg.heartbeat.expect("on");
    let mut s = redis_session::<A>(&redis, cfg);
    let first: Vec<_> = (0..10)
        .map(|_| s.handle.send(b"INCR c".to_vec(), Delivery::AtMostOnce))
        .collect();
    for r in first {
        within::<A, _>(LONG, "INCR acked", r)
            .await
            .expect("delivered");
    }
    let replies = drain_inbound(&mut s);
    let want: Vec<String> = (1..=10).map(|i| format!(":{i}")).collect();
    assert_eq!(replies, want, "one reply per command, in order");
    assert_eq!(redis_int(&redis, "c"), 10);
    A::sleep(Duration::from_millis(1500)).await;
    let stats = s.handle.stats();
    assert!(
        stats.connects == 1 && stats.pongs >= 2 && stats.srtt.is_some(),
        "[{}] idle heartbeat against redis: {stats:?}",
        A::NAME
    );

    s.drain();
    let mark = s.seen.len();
    let freeze = Instant::now();
    let addr = redis.addr();
    let sleeper = thread::spawn(move || redis_inline(addr, "DEBUG SLEEP 1.6"));
    eventually::<A>(LONG, "redis frozen", || redis_frozen(addr)).await;
    let doubtful: Vec<_> = (0..3)
        .map(|_| s.handle.send(b"INCR c".to_vec(), Delivery::AtMostOnce))
        .collect();
    let set = s.handle.send(b"SET k v1".to_vec(), Delivery::Idempotent);
    wait_since::<A>(&mut s, mark, "heartbeat timeout", is_heartbeat_timeout).await;
    let detected = freeze.elapsed();
    let bound = hb.interval + hb.timeout + TOLERANCE;
    eprintln!(
        "[{}] redis DEBUG SLEEP 1.6: found by heartbeat after {detected:?} (bound {bound:?})",
        A::NAME
    );
    assert!(detected <= bound, "[{}] found after {detected:?}", A::NAME);
    for r in doubtful {
        let u = within::<A, _>(LONG, "INCR outcome", r)
            .await
            .expect_err("in doubt");
        assert_eq!(
            (u.outcome, u.payload.as_slice()),
            (Outcome::InDoubt, &b"INCR c"[..])
        );
    }
    within::<A, _>(LONG, "SET replayed", set)
        .await
        .expect("idempotent SET replayed and confirmed");
    let slept = sleeper.join().expect("sleeper thread");
    assert_eq!(slept.expect("DEBUG SLEEP"), "+OK");
    within::<A, _>(
        LONG,
        "INCR after reconnect",
        s.handle.send(b"INCR c".to_vec(), Delivery::AtMostOnce),
    )
    .await
    .expect("delivered after reconnect");
    let c = redis_int(&redis, "c");
    eprintln!(
        "[{}] redis counter after 10 confirmed + 3 in doubt + 1 confirmed: {c}",
        A::NAME
    );
    assert!(
        (11..=14).contains(&c),
        "[{}] counter {c}: confirmed ones lost or in-doubt ones resent",
        A::NAME
    );
    assert_eq!(redis.cli(&["EXISTS", "k"]), ":1");
    let stats = s.handle.stats();
    assert!(stats.connects >= 2 && stats.in_doubt == 3, "{stats:?}");
    s.handle.close(CloseMode::Immediate).await;
}

/// Redis: `CLIENT KILL TYPE normal` ends the session's connection; commands sent while it is
/// away (300 ms backoff) are queued and flushed on the new connection, each confirmed and
/// counted exactly once.
pub async fn redis_client_kill_flushes_queue<A: Adapter>() {
    let what = format!("[{}] redis_client_kill_flushes_queue", A::NAME);
    let Some(redis) = redis_or_skip(&what) else {
        return;
    };
    let cfg = real_config(Some((300, 700))).with_backoff(
        Backoff::new()
            .with_initial(Duration::from_millis(300))
            .with_cap(Duration::from_millis(300))
            .with_jitter(Jitter::None),
    );
    let mut s = redis_session::<A>(&redis, cfg);
    within::<A, _>(
        LONG,
        "first INCR",
        s.handle.send(b"INCR q".to_vec(), Delivery::AtMostOnce),
    )
    .await
    .expect("delivered");
    A::sleep(Duration::from_millis(300)).await; // past stable_after
    s.drain();
    let mark = s.seen.len();
    assert_eq!(redis.cli(&["CLIENT", "KILL", "TYPE", "normal"]), ":1");
    let (_, ev) = wait_since::<A>(&mut s, mark, "killed", is_disconnect).await;
    assert!(
        matches!(
            ev.notification,
            Notification::Disconnected {
                reason: DisconnectReason::Eof | DisconnectReason::Io(NetError::Reset),
                ..
            }
        ),
        "[{}] {ev:?}",
        A::NAME
    );
    let queued: Vec<_> = (0..5)
        .map(|_| s.handle.send(b"INCR q".to_vec(), Delivery::AtMostOnce))
        .collect();
    assert_ne!(s.handle.state(), State::Connected, "queued, not written");
    for r in queued {
        within::<A, _>(LONG, "queued INCR", r)
            .await
            .expect("flushed after reconnect");
    }
    assert_eq!(redis_int(&redis, "q"), 6);
    assert_eq!(s.handle.stats().connects, 2);
    s.handle.close(CloseMode::Immediate).await;
}

/// Redis: a server restart (SIGKILL, start again on the same port, empty dataset) ends the
/// connection; the session reconnects and its next command reaches the new server once.
pub async fn redis_restart_reconnects<A: Adapter>() {
    let what = format!("[{}] redis_restart_reconnects", A::NAME);
    let Some(mut redis) = redis_or_skip(&what) else {
        return;
    };
    let mut s = redis_session::<A>(&redis, real_config(Some((300, 700))));
    within::<A, _>(
        LONG,
        "before restart",
        s.handle.send(b"INCR r".to_vec(), Delivery::AtMostOnce),
    )
    .await
    .expect("delivered");
    s.drain();
    let mark = s.seen.len();
    redis.restart();
    let (at, down) = wait_since::<A>(&mut s, mark, "disconnect", is_disconnect).await;
    let epoch = epoch_of(&down);
    wait_since::<A>(&mut s, at + 1, "reconnect", |e| {
        connected_after(e, epoch).is_some()
    })
    .await;
    within::<A, _>(
        LONG,
        "after restart",
        s.handle.send(b"INCR r".to_vec(), Delivery::AtMostOnce),
    )
    .await
    .expect("delivered after restart");
    assert_eq!(redis_int(&redis, "r"), 1, "the new server saw it once");
    s.handle.close(CloseMode::Immediate).await;
}

/// Redis with a password: `AUTH` is sent on every connection and its `+OK` read before the
/// connection is used, so acknowledgements stay exact (`INCR` replies only) across a restart;
/// a wrong password fails the first attempt for good, with Redis's words in the event.
pub async fn redis_auth_is_a_handshake_with_a_reply<A: Adapter>() {
    let what = format!("[{}] redis_auth_is_a_handshake_with_a_reply", A::NAME);
    let mut redis = match RedisServer::start(&["--requirepass", "s3cret"]) {
        Ok(r) => r,
        Err(e) => return skip_or_fail(&what, e.reason()),
    };
    let addr = redis.addr();
    let session = |password: &[u8]| {
        Live::spawn::<A>(
            A::builder(addr.into())
                .config(real_config(Some((300, 700))).with_acks(AckMode::InOrder))
                .codec(LineCodec::redis().with_auth(password))
                .acks(AckMode::InOrder),
        )
    };
    let mut s = session(b"s3cret");
    let mut replies = Vec::new();
    for _ in 0..3 {
        within::<A, _>(
            LONG,
            "INCR acked",
            s.handle.send(b"INCR a".to_vec(), Delivery::AtMostOnce),
        )
        .await
        .expect("acknowledged by its own reply");
    }
    while replies.len() < 3 {
        let line = within::<A, _>(LONG, "reply", s.inbound.next()).await;
        replies.push(String::from_utf8_lossy(&line.expect("inbound open")).into_owned());
    }
    assert_eq!(
        replies,
        [":1", ":2", ":3"],
        "{what}: +OK of AUTH never delivered"
    );

    s.drain();
    let mark = s.seen.len();
    redis.restart();
    let (at, down) = wait_since::<A>(&mut s, mark, "disconnect", is_disconnect).await;
    let epoch = epoch_of(&down);
    wait_since::<A>(&mut s, at + 1, "reconnect", |e| {
        connected_after(e, epoch).is_some()
    })
    .await;
    within::<A, _>(
        LONG,
        "INCR after restart",
        s.handle.send(b"INCR a".to_vec(), Delivery::AtMostOnce),
    )
    .await
    .expect("acknowledged");
    let line = within::<A, _>(LONG, "reply", s.inbound.next()).await;
    assert_eq!(
        line.as_deref(),
        Some(&b":1"[..]),
        "{what}: AUTH again on the new connection (not -NOAUTH)"
    );
    s.handle.close(CloseMode::Immediate).await;

    let mut wrong = session(b"wrong");
    let never = wrong.handle.send(b"INCR a".to_vec(), Delivery::AtMostOnce);
    let detail = refused_for_good::<A>(&mut wrong).await;
    assert!(
        detail.contains("WRONGPASS") || detail.contains("invalid"),
        "{what}: {detail}"
    );
    let u = within::<A, _>(LONG, "abandoned", never)
        .await
        .expect_err("never connected");
    assert_never_sent(&u);
}

// ---------------------------------------------------------------------------------------------
// NATS

fn nats_or_skip(
    what: &str,
    ping_interval: Option<&str>,
    ping_max: Option<u32>,
) -> Option<NatsServer> {
    match NatsServer::start(ping_interval, ping_max) {
        Ok(n) => Some(n),
        Err(e) => {
            skip_or_fail(what, e.reason());
            None
        }
    }
}

fn nats_session<A: Adapter>(nats: &NatsServer, cfg: Config) -> Live {
    Live::spawn::<A>(
        A::builder(nats.addr().into())
            .config(cfg)
            .codec(LineCodec::nats()),
    )
}

/// NATS with `ping_interval: 300ms`, `ping_max: 2`: a raw client that never answers is
/// dropped as stale within ~1 s (the control), while a session with its own heartbeat off
/// answers the server's PINGs and stays on its first connection for 2.5 s. A second session's
/// own PINGs are answered with PONGs (RTT samples).
pub async fn nats_pings_answered_both_ways<A: Adapter>() {
    let what = format!("[{}] nats_pings_answered_both_ways", A::NAME);
    let Some(nats) = nats_or_skip(&what, Some("300ms"), Some(2)) else {
        return;
    };
    let addr = nats.addr();
    // The control: a client that never answers PING is dropped as stale.
    let control = thread::spawn(move || -> io::Result<String> {
        let mut c = TcpStream::connect(addr)?;
        c.set_read_timeout(Some(Duration::from_secs(5)))?;
        c.write_all(b"CONNECT {\"verbose\":false}\r\n")?;
        let mut all = String::new();
        let mut buf = [0; 4096];
        loop {
            match c.read(&mut buf)? {
                0 => return Ok(all),
                n => all.push_str(&String::from_utf8_lossy(&buf[..n])),
            }
        }
    });
    let mut s = nats_session::<A>(&nats, real_config(None));
    wait_since::<A>(&mut s, 0, "connected", |e| connected_after(e, 0).is_some()).await;
    A::sleep(Duration::from_millis(2500)).await;
    let stale = control
        .join()
        .expect("control thread")
        .expect("control read");
    assert!(
        stale.contains("Stale Connection"),
        "the control was not dropped as stale: {stale:?}"
    );
    assert_eq!(
        s.count(|n| matches!(n, Notification::Disconnected { .. })),
        0,
        "[{}] the server dropped the session: {:#?}",
        A::NAME,
        s.seen
    );
    let lines = drain_inbound(&mut s);
    assert!(
        !lines.iter().any(|l| l.starts_with("-ERR")),
        "[{}] {lines:?}",
        A::NAME
    );
    assert_eq!(
        (s.handle.state(), s.handle.stats().connects),
        (State::Connected, 1)
    );
    s.handle.close(CloseMode::Immediate).await;

    let p = nats_session::<A>(&nats, real_config(Some((200, 600))));
    eventually::<A>(LONG, "client PONGs", || p.handle.stats().pongs >= 3).await;
    let stats = p.handle.stats();
    assert!(stats.srtt.is_some() && stats.connects == 1, "{stats:?}");
    p.handle.close(CloseMode::Immediate).await;
}

/// NATS restart: the session reconnects and `CONNECT` (verbose off) is sent again before
/// anything else: a `SUB` + `PUB` round trip works on both servers and no `+OK` (what a
/// client without `CONNECT` gets, verbose being the default) is ever seen.
pub async fn nats_restart_replays_handshake<A: Adapter>() {
    let what = format!("[{}] nats_restart_replays_handshake", A::NAME);
    let Some(mut nats) = nats_or_skip(&what, None, None) else {
        return;
    };
    let mut s = nats_session::<A>(&nats, real_config(Some((300, 700))));
    let mut lines = Vec::new();
    for round in 0..2 {
        if round == 1 {
            s.drain();
            let mark = s.seen.len();
            nats.restart();
            let (at, down) = wait_since::<A>(&mut s, mark, "disconnect", is_disconnect).await;
            let epoch = epoch_of(&down);
            wait_since::<A>(&mut s, at + 1, "reconnect", |e| {
                connected_after(e, epoch).is_some()
            })
            .await;
        }
        let payload = format!("hello{round}");
        for m in [
            "SUB foo 1".to_string(),
            format!("PUB foo {}", payload.len()),
            payload.clone(),
        ] {
            within::<A, _>(
                LONG,
                "written",
                s.handle.send(m.into_bytes(), Delivery::AtMostOnce),
            )
            .await
            .expect("delivered");
        }
        let deadline = Instant::now() + LONG;
        while !lines.contains(&payload) {
            match within::<A, _>(LONG, "inbound", s.inbound.next()).await {
                Some(m) => lines.push(String::from_utf8_lossy(&m).into_owned()),
                None => panic!("inbound ended"),
            }
            assert!(Instant::now() < deadline, "no round trip: {lines:?}");
        }
    }
    // INFO is read as the handshake reply on each connection, never delivered as data.
    let infos = lines.iter().filter(|l| l.starts_with("INFO ")).count();
    let msgs = lines.iter().filter(|l| l.starts_with("MSG foo 1 ")).count();
    assert_eq!((infos, msgs), (0, 2), "[{}] {lines:?}", A::NAME);
    assert_eq!(
        s.handle.stats().connects,
        2,
        "[{}] two connections",
        A::NAME
    );
    assert!(
        !lines.iter().any(|l| l == "+OK" || l.starts_with("-ERR")),
        "[{}] CONNECT missing on a connection: {lines:?}",
        A::NAME
    );
    s.handle.close(CloseMode::Immediate).await;
}

/// NATS with a user and password: the handshake (`CONNECT`, `PING`; `INFO`, `PONG`) ends only
/// once the server accepted `CONNECT`, so a session without credentials fails its first
/// attempt for good with the server's `-ERR 'Authorization Violation'` instead of looping
/// through reconnects; with them, messages flow.
pub async fn nats_authorization_is_checked_in_the_handshake<A: Adapter>() {
    let what = format!(
        "[{}] nats_authorization_is_checked_in_the_handshake",
        A::NAME
    );
    let nats = match NatsServer::start_with_auth("redial", "s3cret") {
        Ok(n) => n,
        Err(e) => return skip_or_fail(&what, e.reason()),
    };
    let mut anonymous = nats_session::<A>(&nats, real_config(None));
    let detail = refused_for_good::<A>(&mut anonymous).await;
    assert!(detail.contains("Authorization"), "{what}: {detail}");
    eventually::<A>(LONG, "closed", || anonymous.handle.state() == State::Closed).await;

    let connect = br#"CONNECT {"verbose":false,"pedantic":false,"user":"redial","pass":"s3cret"}"#;
    let codec = LineCodec::nats().with_greeting(Some(&[&connect[..], b"\r\nPING"].concat()));
    let mut s = Live::spawn::<A>(
        A::builder(nats.addr().into())
            .config(real_config(None))
            .codec(codec),
    );
    for m in ["SUB auth 1", "PUB auth 2", "ok"] {
        within::<A, _>(
            LONG,
            "written",
            s.handle.send(m.into(), Delivery::AtMostOnce),
        )
        .await
        .expect("delivered");
    }
    let got = within::<A, _>(LONG, "MSG", async {
        loop {
            let line = s.inbound.next().await.expect("inbound open");
            if line.starts_with(b"MSG auth 1") {
                return line;
            }
        }
    })
    .await;
    assert!(got.starts_with(b"MSG auth 1 2"), "{what}: {got:?}");
    assert_eq!(s.handle.stats().connects, 1, "{what}");
    s.handle.close(CloseMode::Immediate).await;
}
