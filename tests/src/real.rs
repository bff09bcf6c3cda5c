//! Real faults and real protocols, for every adapter: partitions between two network
//! namespaces (iptables DROP on ingress in both, or the client's link taken down), and real
//! `redis-server` / `nats-server` processes that nobody here wrote.
//!
//! Like the conformance suite, every scenario is written once against an adapter
//! ([`RealAdapter`]) and a macro stamps out one `#[test]` per scenario:
//! [`real_fault_tests!`](crate::real_fault_tests) for the faults,
//! [`real_protocol_tests!`](crate::real_protocol_tests) for the protocol grammar and reply
//! attribution against the real servers (issue #12: binary-safe values, aggregates in RESP2
//! and RESP3, a user's `PING` among heartbeats, subscriptions across kills and restarts,
//! pipelined commands checked reply by reply).
//!
//! Sessions of the partition scenarios make their sockets through the adapter's TCP connector
//! with a [`netns::socket_factory`]: each socket is created on a thread that entered the client
//! namespace, so the adapter's own threads (a multi-threaded tokio runtime, smol's global
//! executor) never matter.
//!
//! When namespaces or servers are unavailable, a scenario calls [`skip_or_fail`]: it is
//! reported as `SKIPPED` on stderr, or fails the test under `REDIAL_REQUIRE_REAL=1`. Measured
//! detection times are printed to stderr (`--nocapture`).
//!
//! Timing bounds state their tolerance next to them; they are generous (2-core machines, the
//! whole workspace's tests in parallel) but far from what a broken behaviour gives: without
//! the heartbeat a half-open connection is never found, without `TCP_USER_TIMEOUT` a blocked
//! writer waits for minutes.
//!
//! Each scenario starts its own server (about 8 ms for either), so scenarios run in parallel
//! without sharing keys, clients to kill, or restarts.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::thread;
use std::time::{Duration, Instant};

use futures::{FutureExt, StreamExt};
use redial_core::proto::nats::{self, Nats};
use redial_core::proto::resp::{self, cmd, Resp, Value};
use redial_core::{
    AckMode, Addr, Backoff, CloseMode, Config, Delivery, DisconnectReason, GiveUp, Heartbeat,
    InboundLimits, Jitter, LineCodec, NetError, Notification, Outcome, Protocol, QueueLimits,
    State,
};
use redial_driver::{
    Builder, Ends, Events, Handle, Inbound, Keepalive, Message, Reply, SessionEvent, SocketFactory,
    SocketOptions, Subscription, Undelivered,
};

use crate::adapters::{BlockingAdapter, SmolAdapter, TokioAdapter};
use crate::conformance::{eventually, within, Adapter};
use crate::netns::{self, netns_available, NetnsPair, Side};
use crate::servers::{skip_or_fail, which, LineServer, NatsServer, RedisServer};

/// What the real-fault scenarios need beyond [`Adapter`]: spawning a session of any protocol,
/// and giving the adapter's TCP connector a socket factory (for network namespaces).
pub trait RealAdapter: Adapter {
    /// Spawns the session `b` on the adapter's runtime.
    fn spawn<P: Protocol + Send + 'static>(b: Builder<Self::Rt, Self::Conn, P>) -> Ends;
    /// The builder `b`, its TCP connector making every socket with `factory`.
    fn with_socket_factory<P: Protocol>(
        b: Builder<Self::Rt, Self::Conn, P>,
        factory: SocketFactory,
    ) -> Builder<Self::Rt, Self::Conn, P>;
}

impl RealAdapter for TokioAdapter {
    fn spawn<P: Protocol + Send + 'static>(b: Builder<Self::Rt, Self::Conn, P>) -> Ends {
        b.spawn().expect("valid config")
    }
    fn with_socket_factory<P: Protocol>(
        mut b: Builder<Self::Rt, Self::Conn, P>,
        factory: SocketFactory,
    ) -> Builder<Self::Rt, Self::Conn, P> {
        let c = b.connector_mut();
        *c = std::mem::take(c).with_socket_factory(factory);
        b
    }
}

impl RealAdapter for SmolAdapter {
    fn spawn<P: Protocol + Send + 'static>(b: Builder<Self::Rt, Self::Conn, P>) -> Ends {
        b.spawn().expect("valid config")
    }
    fn with_socket_factory<P: Protocol>(
        mut b: Builder<Self::Rt, Self::Conn, P>,
        factory: SocketFactory,
    ) -> Builder<Self::Rt, Self::Conn, P> {
        let c = b.connector_mut();
        *c = std::mem::take(c).with_socket_factory(factory);
        b
    }
}

impl RealAdapter for BlockingAdapter {
    fn spawn<P: Protocol + Send + 'static>(b: Builder<Self::Rt, Self::Conn, P>) -> Ends {
        b.spawn().expect("valid config")
    }
    fn with_socket_factory<P: Protocol>(
        mut b: Builder<Self::Rt, Self::Conn, P>,
        factory: SocketFactory,
    ) -> Builder<Self::Rt, Self::Conn, P> {
        let c = b.connector_mut();
        *c = std::mem::take(c).with_socket_factory(factory);
        b
    }
}

/// Generates one `#[test]` per real-fault scenario for a [`RealAdapter`].
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

/// Generates one `#[test]` per real-protocol scenario (issue #12, section 7) for a
/// [`RealAdapter`].
#[macro_export]
macro_rules! real_protocol_tests {
    ($adapter:ty) => {
        $crate::real_fault_tests!(@each $adapter;
            redis_values_are_binary_safe, redis_aggregates_in_resp2_and_resp3,
            redis_user_ping_among_heartbeats, redis_pubsub_through_client_kill,
            redis_pipelined_kills_every_reply_checked_by_value,
            nats_payloads_framed_by_byte_count, nats_headers_and_request_reply,
            nats_subscriptions_restored_after_restart);
    };
}

pub(crate) const LONG: Duration = Duration::from_secs(10);

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

/// A running session of any protocol, plus every event it reported so far.
pub struct Sess {
    /// The handle.
    pub handle: Handle,
    /// Inbound data that answers nothing and belongs to no subscription.
    pub inbound: Inbound,
    /// Lifecycle events not yet moved into `seen`.
    pub events: Events,
    /// Events seen so far.
    pub seen: Vec<SessionEvent>,
}

impl Sess {
    /// Spawns `b` on adapter `A`.
    pub fn spawn<A: RealAdapter, P: Protocol + Send + 'static>(
        b: Builder<A::Rt, A::Conn, P>,
    ) -> Sess {
        let (handle, inbound, events) = A::spawn(b);
        Sess {
            handle,
            inbound,
            events,
            seen: Vec::new(),
        }
    }

    /// Moves every event already delivered into `seen`.
    pub fn drain(&mut self) {
        while let Some(Some(e)) = self.events.next().now_or_never() {
            self.seen.push(e);
        }
    }

    /// How many events so far match `f`.
    pub fn count(&mut self, f: impl Fn(&Notification) -> bool) -> usize {
        self.drain();
        self.seen.iter().filter(|e| f(&e.notification)).count()
    }

    /// Index just past the events seen so far: a mark for `wait_since`.
    pub fn mark(&mut self) -> usize {
        self.drain();
        self.seen.len()
    }
}

/// Waits (bounded by [`LONG`]) for the first event at or after index `from` of `s.seen`
/// that matches `f`, and returns its index and the event. An event drained together with an
/// earlier awaited one is still found.
pub(crate) async fn wait_since<A: Adapter>(
    s: &mut Sess,
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

/// Waits for the session's first failed attempt and checks that it failed for good, as a
/// refused handshake does (`PermissionDenied`, no retry). Returns the error text behind it.
async fn refused_for_good<A: Adapter>(s: &mut Sess) -> String {
    let (_, failed) = wait_since::<A>(s, 0, "refused attempt", |e| {
        matches!(e.notification, Notification::AttemptFailed { .. })
    })
    .await;
    assert!(
        matches!(
            failed.notification,
            Notification::AttemptFailed {
                error: NetError::PermissionDenied,
                next_delay: None,
                ..
            }
        ),
        "[{}] {failed:?}",
        A::NAME
    );
    failed.detail.unwrap_or_default()
}

/// The outcome of a message sent to a session that gave up without ever connecting.
fn assert_never_sent(u: &Undelivered) {
    assert!(
        matches!(
            u.outcome,
            Outcome::Abandoned(redial_core::AbandonReason::GaveUp)
                | Outcome::Rejected(redial_core::RejectReason::Closed)
        ),
        "{:?}",
        u.outcome
    );
}

pub(crate) fn is_disconnect(e: &SessionEvent) -> bool {
    matches!(e.notification, Notification::Disconnected { .. })
}

pub(crate) fn is_heartbeat_timeout(e: &SessionEvent) -> bool {
    matches!(
        e.notification,
        Notification::Disconnected {
            reason: DisconnectReason::HeartbeatTimeout { .. },
            ..
        }
    )
}

pub(crate) fn connected_after(e: &SessionEvent, epoch: u64) -> Option<u64> {
    match e.notification {
        Notification::Connected { epoch: ep, .. } if ep.get() > epoch => Some(ep.get()),
        _ => None,
    }
}

pub(crate) fn subscribed_after(e: &SessionEvent, epoch: u64) -> bool {
    matches!(e.notification, Notification::Subscribed { epoch: ep, .. } if ep.get() > epoch)
}

pub(crate) fn epoch_of(e: &SessionEvent) -> u64 {
    match e.notification {
        Notification::Connected { epoch, .. }
        | Notification::Disconnected { epoch, .. }
        | Notification::Subscribed { epoch, .. } => epoch.get(),
        _ => 0,
    }
}

fn count(log: &[(u64, String)], line: &str) -> usize {
    log.iter().filter(|(_, l)| l == line).count()
}

/// The peer's words of every `PeerSaid` so far.
fn peer_said(s: &mut Sess) -> Vec<String> {
    s.drain();
    s.seen
        .iter()
        .filter_map(|e| match &e.notification {
            Notification::PeerSaid { text, .. } => Some(String::from_utf8_lossy(text).into_owned()),
            _ => None,
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Network namespaces

/// Builds a namespace pair with a working ingress filter, or reports the skip.
pub(crate) fn pair_or_skip(what: &str, tag: &str) -> Option<NetnsPair> {
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

/// A line session whose sockets live in the pair's client namespace, dialing `addr` in the
/// server namespace.
fn ns_session<A: RealAdapter>(
    pair: &NetnsPair,
    addr: SocketAddr,
    cfg: Config,
) -> Builder<A::Rt, A::Conn, redial_core::Framed<LineCodec>> {
    let b = A::builder(addr.into())
        .config(cfg)
        .codec(LineCodec::plain());
    A::with_socket_factory(b, netns::socket_factory(pair.name(Side::Client)))
}

/// Scenario 1: Half-open: the cut (DROP on ingress in both namespaces) leaves both ends open and
/// silent. An idle session (heartbeat 500 ms + 1 s) finds it within interval + timeout +
/// [`TOLERANCE`], and no sooner than the timeout; a plain socket in the same cut notices
/// nothing; after the heal the session reconnects and delivers.
pub async fn netns_half_open_found_by_heartbeat<A: RealAdapter>() {
    let what = format!("[{}] netns_half_open_found_by_heartbeat", A::NAME);
    let Some(pair) = pair_or_skip(&what, "ho") else {
        return;
    };
    let server = netns_server(&pair);
    let cfg = real_config(Some((500, 1000)));
    let hb = cfg.heartbeat.expect("on");
    let mut s = Sess::spawn::<A, _>(ns_session::<A>(&pair, server.addr(), cfg));
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
    eventually::<A>(LONG, "two PONGs while idle", || s.handle.stats().pongs >= 2).await;
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
pub async fn netns_user_timeout_stops_blocked_writer<A: RealAdapter>() {
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
    let mut s =
        Sess::spawn::<A, _>(ns_session::<A>(&pair, server.addr(), cfg).socket_options(opts));
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
pub async fn netns_partition_queues_and_settles_exactly<A: RealAdapter>() {
    let what = format!("[{}] netns_partition_queues_and_settles_exactly", A::NAME);
    let Some(pair) = pair_or_skip(&what, "pq") else {
        return;
    };
    let server = netns_server(&pair);
    server.set_reply(Some("+OK "));
    let cfg = real_config(Some((300, 700)));
    let mut s =
        Sess::spawn::<A, _>(ns_session::<A>(&pair, server.addr(), cfg).acks(AckMode::InOrder));
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
    // Let the session dial into the cut (and time out) before looking at the server.
    let mark = s.mark();
    wait_since::<A>(&mut s, mark, "a dial into the cut fails", |e| {
        matches!(e.notification, Notification::AttemptFailed { .. })
    })
    .await;
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
pub async fn netns_twenty_cut_heal_cycles<A: RealAdapter>() {
    let what = format!("[{}] netns_twenty_cut_heal_cycles", A::NAME);
    let Some(pair) = pair_or_skip(&what, "cy") else {
        return;
    };
    let server = netns_server(&pair);
    server.set_reply(Some("+OK "));
    let cfg = real_config(Some((200, 400)))
        .with_connect_timeout(Duration::from_millis(300))
        .with_backoff(
            Backoff::new()
                .with_initial(Duration::from_millis(20))
                .with_cap(Duration::from_millis(100))
                .with_jitter(Jitter::None),
        );
    let hb = cfg.heartbeat.expect("on");
    let bound = hb.interval + hb.timeout + TOLERANCE;
    let mut s =
        Sess::spawn::<A, _>(ns_session::<A>(&pair, server.addr(), cfg).acks(AckMode::InOrder));
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
pub async fn netns_connect_in_drop_cut_times_out<A: RealAdapter>() {
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
    let mut s = Sess::spawn::<A, _>(ns_session::<A>(&pair, server.addr(), cfg));
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
            (
                i + 1,
                Some(Addr::Ip(server.addr())),
                NetError::ConnectTimeout
            ),
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

/// Queue bounds for megabyte values.
fn big_queue() -> QueueLimits {
    QueueLimits {
        max_messages: 4096,
        max_bytes: 64 << 20,
        max_message: 4 << 20,
        ..QueueLimits::default()
    }
}

fn redis_session<A: RealAdapter>(redis: &RedisServer, cfg: Config, resp: Resp) -> Sess {
    Sess::spawn::<A, _>(A::builder(redis.addr().into()).config(cfg).protocol(resp))
}

/// Integer value of `key` (`INCRBY key 0` answers `:N`), on a fresh connection.
fn redis_int(redis: &RedisServer, key: &str) -> i64 {
    let reply = redis.cli(&["INCRBY", key, "0"]);
    reply
        .strip_prefix(':')
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("INCRBY {key} 0 answered {reply:?}"))
}

/// The reply's value.
///
/// # Panics
/// If the reply is not one whole RESP value.
pub(crate) fn value(r: &Reply) -> Value<'_> {
    let (v, used) = Value::parse(&r.body).unwrap_or_else(|e| {
        panic!(
            "reply is not RESP: {e}: {:?}",
            String::from_utf8_lossy(&r.body)
        )
    });
    assert_eq!(used, r.body.len(), "a reply is exactly one value");
    v
}

/// The reply of a request that must be delivered, as a value (owned bytes).
pub(crate) async fn ask<A: Adapter>(h: &Handle, args: &[&[u8]]) -> Reply {
    let what = String::from_utf8_lossy(&args.join(&b' ')).into_owned();
    within::<A, _>(LONG, &what, h.request(cmd(args), Delivery::AtMostOnce))
        .await
        .unwrap_or_else(|u| panic!("[{}] {what}: {u:?}", A::NAME))
}

pub(crate) fn int_reply(r: &Reply) -> i64 {
    match value(r) {
        Value::Integer(n) => n,
        other => panic!("expected an integer, got {other:?}"),
    }
}

/// Sends one inline command on a fresh connection and returns the first reply line.
fn redis_inline(addr: SocketAddr, cmd: &str) -> io::Result<String> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    s.write_all(format!("{cmd}\r\n").as_bytes())?;
    let mut line = String::new();
    BufReader::new(s).read_line(&mut line)?;
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
/// and the session reconnects. Replies are matched to their requests (`INCR` answers `:1` to
/// `:10`, each its own), so outcomes are exact: `INCR`s written during the freeze come back
/// in doubt and are never resent (the counter holds at most one increment each), an
/// idempotent `SET` is replayed and confirmed, and confirmed `INCR`s are all counted.
pub async fn redis_debug_sleep_and_exact_outcomes<A: RealAdapter>() {
    let what = format!("[{}] redis_debug_sleep_and_exact_outcomes", A::NAME);
    let Some(redis) = redis_or_skip(&what) else {
        return;
    };
    let cfg = real_config(Some((300, 700)));
    let hb = cfg.heartbeat.expect("on");
    let mut s = redis_session::<A>(&redis, cfg, Resp::new());
    let first: Vec<_> = (0..10)
        .map(|_| s.handle.request(cmd(["INCR", "c"]), Delivery::AtMostOnce))
        .collect();
    let mut replies = Vec::new();
    for r in first {
        let r = within::<A, _>(LONG, "INCR answered", r)
            .await
            .expect("delivered");
        replies.push(int_reply(&r));
    }
    assert_eq!(
        replies,
        (1..=10).collect::<Vec<_>>(),
        "one reply per command, in order"
    );
    assert_eq!(redis_int(&redis, "c"), 10);
    eventually::<A>(LONG, "two PONGs while idle", || s.handle.stats().pongs >= 2).await;
    let stats = s.handle.stats();
    assert!(
        stats.connects == 1 && stats.srtt.is_some(),
        "[{}] idle heartbeat against redis: {stats:?}",
        A::NAME
    );

    let mark = s.mark();
    let freeze = Instant::now();
    let addr = redis.addr();
    let sleeper = thread::spawn(move || redis_inline(addr, "DEBUG SLEEP 1.6"));
    eventually::<A>(LONG, "redis frozen", || redis_frozen(addr)).await;
    let incr = cmd(["INCR", "c"]);
    let doubtful: Vec<_> = (0..3)
        .map(|_| s.handle.request(incr.clone(), Delivery::AtMostOnce))
        .collect();
    let set = s
        .handle
        .request(cmd(["SET", "k", "v1"]), Delivery::Idempotent);
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
            (Outcome::InDoubt, &incr[..])
        );
    }
    let ok = within::<A, _>(LONG, "SET replayed", set)
        .await
        .expect("idempotent SET replayed and confirmed");
    assert_eq!(value(&ok), Value::Simple(b"OK"));
    let slept = sleeper.join().expect("sleeper thread");
    assert_eq!(slept.expect("DEBUG SLEEP"), "+OK");
    let after = within::<A, _>(
        LONG,
        "INCR after reconnect",
        s.handle.request(incr.clone(), Delivery::AtMostOnce),
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
    assert_eq!(int_reply(&after), c, "the last INCR's reply is the counter");
    assert_eq!(redis.cli(&["EXISTS", "k"]), ":1");
    let stats = s.handle.stats();
    assert!(stats.connects >= 2 && stats.in_doubt == 3, "{stats:?}");
    s.handle.close(CloseMode::Immediate).await;
}

/// Redis: `CLIENT KILL TYPE normal` ends the session's connection; commands sent while it is
/// away (300 ms backoff) are queued and flushed on the new connection, each confirmed by its
/// own reply (`:2` to `:6`) and counted exactly once.
pub async fn redis_client_kill_flushes_queue<A: RealAdapter>() {
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
    let mut s = redis_session::<A>(&redis, cfg, Resp::new());
    assert_eq!(int_reply(&ask::<A>(&s.handle, &[b"INCR", b"q"]).await), 1);
    // Past stable_after (200 ms), so the kill is an ordinary disconnect.
    eventually::<A>(LONG, "a PONG", || s.handle.stats().pongs >= 1).await;
    let mark = s.mark();
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
        .map(|_| s.handle.request(cmd(["INCR", "q"]), Delivery::AtMostOnce))
        .collect();
    assert_ne!(s.handle.state(), State::Connected, "queued, not written");
    let mut got = Vec::new();
    for r in queued {
        let r = within::<A, _>(LONG, "queued INCR", r)
            .await
            .expect("flushed after reconnect");
        got.push(int_reply(&r));
    }
    assert_eq!(got, [2, 3, 4, 5, 6]);
    assert_eq!(redis_int(&redis, "q"), 6);
    assert_eq!(s.handle.stats().connects, 2);
    s.handle.close(CloseMode::Immediate).await;
}

/// Redis: a server restart (SIGKILL, start again on the same port, empty dataset) ends the
/// connection; the session reconnects and its next command reaches the new server once.
pub async fn redis_restart_reconnects<A: RealAdapter>() {
    let what = format!("[{}] redis_restart_reconnects", A::NAME);
    let Some(mut redis) = redis_or_skip(&what) else {
        return;
    };
    let mut s = redis_session::<A>(&redis, real_config(Some((300, 700))), Resp::new());
    assert_eq!(int_reply(&ask::<A>(&s.handle, &[b"INCR", b"r"]).await), 1);
    let mark = s.mark();
    redis.restart();
    let (at, down) = wait_since::<A>(&mut s, mark, "disconnect", is_disconnect).await;
    let epoch = epoch_of(&down);
    wait_since::<A>(&mut s, at + 1, "reconnect", |e| {
        connected_after(e, epoch).is_some()
    })
    .await;
    assert_eq!(
        int_reply(&ask::<A>(&s.handle, &[b"INCR", b"r"]).await),
        1,
        "the new server's first INCR"
    );
    assert_eq!(redis_int(&redis, "r"), 1, "the new server saw it once");
    s.handle.close(CloseMode::Immediate).await;
}

/// Redis with a password: `AUTH` is sent on every connection and its `+OK` checked before the
/// connection is used, so replies stay matched (`INCR` answers `:1` to `:3`, never `+OK`)
/// across a restart; a wrong password fails the first attempt for good, with Redis's words in
/// the event.
pub async fn redis_auth_is_a_handshake_with_a_reply<A: RealAdapter>() {
    let what = format!("[{}] redis_auth_is_a_handshake_with_a_reply", A::NAME);
    let mut redis = match RedisServer::start(&["--requirepass", "s3cret"]) {
        Ok(r) => r,
        Err(e) => return skip_or_fail(&what, e.reason()),
    };
    let addr = redis.addr();
    let session = |password: &[u8]| {
        Sess::spawn::<A, _>(
            A::builder(addr.into())
                .config(real_config(Some((300, 700))))
                .protocol(Resp::new().with_auth(None, password)),
        )
    };
    let mut s = session(b"s3cret");
    let mut replies = Vec::new();
    for _ in 0..3 {
        replies.push(int_reply(&ask::<A>(&s.handle, &[b"INCR", b"a"]).await));
    }
    assert_eq!(replies, [1, 2, 3], "{what}: AUTH's +OK taken for a reply");

    let mark = s.mark();
    redis.restart();
    let (at, down) = wait_since::<A>(&mut s, mark, "disconnect", is_disconnect).await;
    let epoch = epoch_of(&down);
    wait_since::<A>(&mut s, at + 1, "reconnect", |e| {
        connected_after(e, epoch).is_some()
    })
    .await;
    let r = ask::<A>(&s.handle, &[b"INCR", b"a"]).await;
    assert!(
        !r.refused,
        "{what}: AUTH again on the new connection (not -NOAUTH)"
    );
    assert_eq!(int_reply(&r), 1, "{what}");
    s.handle.close(CloseMode::Immediate).await;

    let mut wrong = session(b"wrong");
    let never = wrong
        .handle
        .request(cmd(["INCR", "a"]), Delivery::AtMostOnce);
    let detail = refused_for_good::<A>(&mut wrong).await;
    let said = peer_said(&mut wrong).join(" ");
    assert!(
        [&detail, &said]
            .iter()
            .any(|t| t.contains("WRONGPASS") || t.contains("invalid")),
        "{what}: {detail} / {said}"
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

fn nats_session<A: RealAdapter>(nats: &NatsServer, cfg: Config, proto: Nats) -> Sess {
    Sess::spawn::<A, _>(A::builder(nats.addr().into()).config(cfg).protocol(proto))
}

/// The next message of `sub`, bounded by [`LONG`].
pub(crate) async fn next_msg<A: Adapter>(sub: &mut Subscription, what: &str) -> Message {
    within::<A, _>(LONG, what, sub.next())
        .await
        .unwrap_or_else(|| panic!("[{}] {what}: subscription ended", A::NAME))
}

/// Subscribes and waits until the subscription is in place on the current connection.
pub(crate) async fn subscribed<A: Adapter>(s: &mut Sess, spec: Vec<u8>) -> Subscription {
    let mark = s.mark();
    let sub = s.handle.subscribe(spec);
    wait_since::<A>(s, mark, "subscribed", |e| {
        matches!(e.notification, Notification::Subscribed { .. })
    })
    .await;
    sub
}

/// NATS with `ping_interval: 300ms`, `ping_max: 2`: a raw client that never answers is
/// dropped as stale within ~1 s (the control), while a session with its own heartbeat off
/// answers the server's PINGs and stays on its first connection for 2.5 s. A second session's
/// own PINGs are answered with PONGs (RTT samples).
pub async fn nats_pings_answered_both_ways<A: RealAdapter>() {
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
    let mut s = nats_session::<A>(&nats, real_config(None), Nats::new());
    wait_since::<A>(&mut s, 0, "connected", |e| connected_after(e, 0).is_some()).await;
    let up = Instant::now();
    // The observation window: 2.5 s is over eight server PINGs, and the control (no
    // answers) is dropped after three.
    eventually::<A>(LONG, "2.5 s connected", || {
        up.elapsed() >= Duration::from_millis(2500) || s.handle.stats().connects != 1
    })
    .await;
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
    let said = peer_said(&mut s);
    assert!(said.is_empty(), "[{}] {said:?}", A::NAME);
    assert_eq!(
        (s.handle.state(), s.handle.stats().connects),
        (State::Connected, 1)
    );
    s.handle.close(CloseMode::Immediate).await;

    let p = nats_session::<A>(&nats, real_config(Some((200, 600))), Nats::new());
    eventually::<A>(LONG, "client PONGs", || p.handle.stats().pongs >= 3).await;
    let stats = p.handle.stats();
    assert!(stats.srtt.is_some() && stats.connects == 1, "{stats:?}");
    p.handle.close(CloseMode::Immediate).await;
}

/// Publishes `payloads[0]` on `subject`, restarts the server with `restart`, waits for the
/// disconnect and the resubscription on the new connection, publishes `payloads[1]`: each is
/// delivered and comes back on `sub` from `subject`. Returns the bodies received, in order.
pub(crate) async fn publish_around_a_restart<A: Adapter>(
    s: &mut Sess,
    sub: &mut Subscription,
    subject: &str,
    payloads: [&str; 2],
    restart: impl FnOnce(),
) -> Vec<String> {
    let mut restart = Some(restart);
    let mut got = Vec::new();
    for (round, payload) in payloads.into_iter().enumerate() {
        if round == 1 {
            let mark = s.mark();
            if let Some(r) = restart.take() {
                r();
            }
            let (at, down) = wait_since::<A>(s, mark, "disconnect", is_disconnect).await;
            let epoch = epoch_of(&down);
            wait_since::<A>(s, at + 1, "resubscribed", |e| subscribed_after(e, epoch)).await;
        }
        within::<A, _>(
            LONG,
            "published",
            s.handle.send(
                nats::publish(subject, payload.as_bytes()).expect("publish"),
                Delivery::AtMostOnce,
            ),
        )
        .await
        .expect("delivered");
        let m = next_msg::<A>(sub, "round trip").await;
        assert_eq!(m.topic, subject.as_bytes());
        got.push(String::from_utf8_lossy(&m.body).into_owned());
    }
    got
}

/// NATS restart: the session reconnects and `CONNECT` (verbose off) is sent again before
/// anything else, and its subscription is made again: a `SUB` + `PUB` round trip works on
/// both servers, `INFO` is never delivered as data, and no `+OK` or `-ERR` is ever seen.
pub async fn nats_restart_replays_handshake<A: RealAdapter>() {
    let what = format!("[{}] nats_restart_replays_handshake", A::NAME);
    let Some(mut nats) = nats_or_skip(&what, None, None) else {
        return;
    };
    let mut s = nats_session::<A>(&nats, real_config(Some((300, 700))), Nats::new());
    let mut sub = subscribed::<A>(&mut s, nats::subscription("foo", None)).await;
    let got = publish_around_a_restart::<A>(&mut s, &mut sub, "foo", ["hello0", "hello1"], || {
        nats.restart()
    })
    .await;
    assert_eq!(got, ["hello0", "hello1"], "[{}]", A::NAME);
    assert_eq!(
        s.handle.stats().connects,
        2,
        "[{}] two connections",
        A::NAME
    );
    assert!(
        s.inbound.next().now_or_never().is_none(),
        "[{}] INFO or +OK delivered as data",
        A::NAME
    );
    let said = peer_said(&mut s);
    assert!(
        said.is_empty(),
        "[{}] CONNECT missing on a connection: {said:?}",
        A::NAME
    );
    s.handle.close(CloseMode::Immediate).await;
}

/// NATS with a user and password: the handshake (`CONNECT`, `PING`; `INFO`, `PONG`) ends only
/// once the server accepted `CONNECT`, so a session without credentials fails its first
/// attempt for good with the server's `-ERR 'Authorization Violation'` instead of looping
/// through reconnects; with them, messages flow.
pub async fn nats_authorization_is_checked_in_the_handshake<A: RealAdapter>() {
    let what = format!(
        "[{}] nats_authorization_is_checked_in_the_handshake",
        A::NAME
    );
    let nats = match NatsServer::start_with_auth("redial", "s3cret") {
        Ok(n) => n,
        Err(e) => return skip_or_fail(&what, e.reason()),
    };
    let mut anonymous = nats_session::<A>(&nats, real_config(None), Nats::new());
    let detail = refused_for_good::<A>(&mut anonymous).await;
    let said = peer_said(&mut anonymous).join(" ");
    assert!(
        detail.contains("Authorization") || said.contains("Authorization"),
        "{what}: {detail} / {said}"
    );
    eventually::<A>(LONG, "closed", || anonymous.handle.state() == State::Closed).await;

    let proto = Nats::new().with_user_password("redial", "s3cret");
    let mut s = nats_session::<A>(&nats, real_config(None), proto);
    let mut sub = subscribed::<A>(&mut s, nats::subscription("auth", None)).await;
    within::<A, _>(
        LONG,
        "published",
        s.handle.send(
            nats::publish("auth", b"ok").expect("publish"),
            Delivery::AtMostOnce,
        ),
    )
    .await
    .expect("delivered");
    let m = next_msg::<A>(&mut sub, "MSG").await;
    assert_eq!(
        (m.topic.as_slice(), m.body.as_slice()),
        (&b"auth"[..], &b"ok"[..]),
        "{what}"
    );
    assert_eq!(s.handle.stats().connects, 1, "{what}");
    s.handle.close(CloseMode::Immediate).await;
}

// ---------------------------------------------------------------------------------------------
// Protocols framed by their grammar (issue #12, section 7)

/// A plain redis client on a std socket, independent of the code under test: one command,
/// one first reply line.
struct RawRedis {
    w: TcpStream,
    r: BufReader<TcpStream>,
}

impl RawRedis {
    fn connect(addr: SocketAddr) -> io::Result<Self> {
        let w = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
        w.set_read_timeout(Some(Duration::from_secs(10)))?;
        Ok(RawRedis {
            r: BufReader::new(w.try_clone()?),
            w,
        })
    }

    /// Sends `args` as a RESP array and returns the reply's first line (`:1`, `+OK`).
    fn call(&mut self, args: &[&[u8]]) -> String {
        let mut req = format!("*{}\r\n", args.len()).into_bytes();
        for a in args {
            req.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
            req.extend_from_slice(a);
            req.extend_from_slice(b"\r\n");
        }
        self.w.write_all(&req).expect("raw redis write");
        let mut line = String::new();
        self.r.read_line(&mut line).expect("raw redis read");
        line.trim_end().to_owned()
    }

    /// `PUBLISH news "N\r\n+PONG"`: `N` and how many subscribers the server gave it to.
    fn publish_numbered(&mut self, i: u32) -> (u32, String) {
        let payload = format!("{i}\r\n+PONG");
        (i, self.call(&[b"PUBLISH", b"news", payload.as_bytes()]))
    }
}

/// A pseudo-random value of `n` bytes, full of CR, LF, NUL and RESP type bytes.
fn nasty_bytes(n: usize, seed: u64) -> Vec<u8> {
    const SPICE: &[u8] = b"\r\n\0+-$*:_#,>%~|=(!";
    let mut x = seed | 1;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            if x % 4 == 0 {
                SPICE[(x >> 8) as usize % SPICE.len()]
            } else {
                (x >> 24) as u8
            }
        })
        .collect()
}

/// Redis values that look like protocol (CR LF inside, `+PONG`, `-ERR x`, `$5`, NUL bytes,
/// a RESP array, nothing at all, 1 MiB of bytes full of CR LF) are stored and read back byte
/// for byte, pipelined (every `SET` and `GET` in flight at once, heartbeats every 20 ms of
/// silence among them); the lengths are checked on a plain connection too. An application
/// error (`INCR` of a non-number) is a refused reply handed to its caller, not a network error:
/// the connection stays and the next reply is still the right one.
pub async fn redis_values_are_binary_safe<A: RealAdapter>() {
    let what = format!("[{}] redis_values_are_binary_safe", A::NAME);
    let Some(redis) = redis_or_skip(&what) else {
        return;
    };
    let cfg = real_config(Some((20, 2000))).with_queue(big_queue());
    let mut s = redis_session::<A>(&redis, cfg, Resp::new());
    let values: Vec<(&str, Vec<u8>)> = vec![
        ("crlf", b"line1\r\nline2\r\n".to_vec()),
        ("pong", b"+PONG".to_vec()),
        ("err", b"-ERR x".to_vec()),
        ("bulk", b"$5".to_vec()),
        ("nul", b"a\0b\0\0c\0".to_vec()),
        ("array", b"*2\r\n$4\r\nPING\r\n:1\r\n".to_vec()),
        ("empty", Vec::new()),
        ("mib", nasty_bytes(1 << 20, 12)),
    ];
    let sets: Vec<_> = values
        .iter()
        .map(|(k, v)| {
            let c = cmd([&b"SET"[..], k.as_bytes(), v]);
            s.handle.request(c, Delivery::AtMostOnce)
        })
        .collect();
    let gets: Vec<_> = values
        .iter()
        .map(|(k, _)| {
            let c = cmd([&b"GET"[..], k.as_bytes()]);
            s.handle.request(c, Delivery::AtMostOnce)
        })
        .collect();
    for ((k, _), r) in values.iter().zip(sets) {
        let r = within::<A, _>(LONG, "SET", r).await.expect("SET delivered");
        assert_eq!(value(&r), Value::Simple(b"OK"), "[{}] SET {k}", A::NAME);
    }
    for ((k, v), r) in values.iter().zip(gets) {
        let r = within::<A, _>(LONG, "GET", r).await.expect("GET delivered");
        assert!(!r.refused, "[{}] GET {k} refused", A::NAME);
        match value(&r) {
            Value::Bulk(got) => assert!(
                got == v.as_slice(),
                "[{}] GET {k}: {} bytes back, {} stored; first difference at {:?}",
                A::NAME,
                got.len(),
                v.len(),
                got.iter().zip(v).position(|(a, b)| a != b)
            ),
            other => panic!("[{}] GET {k}: {other:?}", A::NAME),
        }
        assert_eq!(
            redis.cli(&["STRLEN", k]),
            format!(":{}", v.len()),
            "[{}] {k}",
            A::NAME
        );
    }
    let err = ask::<A>(&s.handle, &[b"INCR", b"pong"]).await;
    assert!(err.refused, "[{}] an -ERR reply is a refusal", A::NAME);
    assert!(
        matches!(value(&err), Value::Error(e) if e.starts_with(b"ERR")),
        "[{}] {:?}",
        A::NAME,
        value(&err)
    );
    // Heartbeats answered with +PONG, then the stored +PONG read as data again.
    let pongs = s.handle.stats().pongs;
    eventually::<A>(LONG, "two heartbeats answered", || {
        s.handle.stats().pongs >= pongs + 2
    })
    .await;
    let again = ask::<A>(&s.handle, &[b"GET", b"pong"]).await;
    assert_eq!(value(&again), Value::Bulk(b"+PONG"), "[{}]", A::NAME);
    let stats = s.handle.stats();
    assert_eq!(
        (
            stats.connects,
            s.count(|n| matches!(n, Notification::Disconnected { .. }))
        ),
        (1, 0),
        "[{}] one connection throughout: {:#?}",
        A::NAME,
        s.seen
    );
    assert!(
        s.inbound.next().now_or_never().is_none(),
        "[{}] a reply leaked to the inbound stream",
        A::NAME
    );
    s.handle.close(CloseMode::Immediate).await;
}

/// Flattens a RESP3 map or a RESP2 flat array of pairs into sorted `(field, value)` pairs.
fn pairs_of(v: &Value<'_>) -> Vec<(Vec<u8>, Vec<u8>)> {
    let bytes = |v: &Value<'_>| {
        v.as_bytes()
            .unwrap_or_else(|| panic!("not a string: {v:?}"))
            .to_vec()
    };
    let mut out: Vec<(Vec<u8>, Vec<u8>)> = match v {
        Value::Map(m) => m.iter().map(|(k, v)| (bytes(k), bytes(v))).collect(),
        Value::Array(a) => {
            assert!(a.len() % 2 == 0, "odd flat pairs: {a:?}");
            a.chunks(2).map(|p| (bytes(&p[0]), bytes(&p[1]))).collect()
        }
        other => panic!("not a map: {other:?}"),
    };
    out.sort();
    out
}

/// Multi-line replies under RESP2 and RESP3 (`HELLO 3` on the connection): `LRANGE` (an
/// array of bulk strings holding CR LF, `+PONG` and nothing), `HGETALL` (a flat array in
/// RESP2, a map in RESP3), `ZRANGE .. WITHSCORES` (flat in RESP2, nested arrays with doubles
/// in RESP3), an empty array, all pipelined with `INCR`s whose replies must be consecutive:
/// a multi-line reply taken for several replies would shift them.
pub async fn redis_aggregates_in_resp2_and_resp3<A: RealAdapter>() {
    let what = format!("[{}] redis_aggregates_in_resp2_and_resp3", A::NAME);
    let Some(redis) = redis_or_skip(&what) else {
        return;
    };
    assert_eq!(redis.cli(&["RPUSH", "l", "a", "b\r\nc", "", "+PONG"]), ":4");
    assert_eq!(
        redis.cli(&["HSET", "h", "f1", "v1", "f2", "+OK\r\n:1"]),
        ":2"
    );
    assert_eq!(redis.cli(&["ZADD", "z", "1.5", "m\r\n1", "2", "m2"]), ":2");
    let want_list: [&[u8]; 4] = [b"a", b"b\r\nc", b"", b"+PONG"];
    let want_hash = vec![
        (b"f1".to_vec(), b"v1".to_vec()),
        (b"f2".to_vec(), b"+OK\r\n:1".to_vec()),
    ];
    for (name, resp, resp_no) in [("RESP2", Resp::new(), 2), ("RESP3", Resp::new().resp3(), 3)] {
        let mut s = redis_session::<A>(&redis, real_config(Some((20, 2000))), resp);
        let h = &s.handle;
        let req = |args: &[&[u8]]| h.request(cmd(args), Delivery::AtMostOnce);
        let info = req(&[b"CLIENT", b"INFO"]);
        let i1 = req(&[b"INCR", b"n"]);
        let lrange = req(&[b"LRANGE", b"l", b"0", b"-1"]);
        let i2 = req(&[b"INCR", b"n"]);
        let hgetall = req(&[b"HGETALL", b"h"]);
        let i3 = req(&[b"INCR", b"n"]);
        let zrange = req(&[b"ZRANGE", b"z", b"0", b"-1", b"WITHSCORES"]);
        let empty = req(&[b"LRANGE", b"nothing", b"0", b"-1"]);
        let i4 = req(&[b"INCR", b"n"]);
        let get = |r: redial_driver::Receipt<Reply>| async move {
            within::<A, _>(LONG, name, r)
                .await
                .unwrap_or_else(|u| panic!("[{}] {name}: {u:?}", A::NAME))
        };
        let info = get(info).await;
        let text = value(&info)
            .as_bytes()
            .map(<[u8]>::to_vec)
            .unwrap_or_default();
        assert!(
            String::from_utf8_lossy(&text).contains(&format!("resp={resp_no}")),
            "[{}] {name}: CLIENT INFO {:?}",
            A::NAME,
            value(&info)
        );
        let mut incrs = Vec::new();
        incrs.push(int_reply(&get(i1).await));
        let l = get(lrange).await;
        match value(&l) {
            Value::Array(items) => {
                let got: Vec<&[u8]> = items.iter().filter_map(Value::as_bytes).collect();
                assert_eq!(got, want_list, "[{}] {name} LRANGE", A::NAME);
                assert_eq!(items.len(), 4);
            }
            other => panic!("[{}] {name} LRANGE: {other:?}", A::NAME),
        }
        incrs.push(int_reply(&get(i2).await));
        let hv = get(hgetall).await;
        let hv = value(&hv);
        assert_eq!(
            matches!(hv, Value::Map(_)),
            resp_no == 3,
            "[{}] {name}: HGETALL shape {hv:?}",
            A::NAME
        );
        assert_eq!(pairs_of(&hv), want_hash, "[{}] {name} HGETALL", A::NAME);
        incrs.push(int_reply(&get(i3).await));
        let z = get(zrange).await;
        let flat: Vec<Vec<u8>> = match value(&z) {
            Value::Array(items) if resp_no == 2 => items
                .iter()
                .map(|v| v.as_bytes().expect("bulk").to_vec())
                .collect(),
            Value::Array(items) => items
                .iter()
                .flat_map(|p| match p {
                    Value::Array(pair) => match pair.as_slice() {
                        [Value::Bulk(m), Value::Double(d)] => [m.to_vec(), d.to_vec()],
                        other => panic!("[{}] {name} ZRANGE pair {other:?}", A::NAME),
                    },
                    other => panic!("[{}] {name} ZRANGE element {other:?}", A::NAME),
                })
                .collect(),
            other => panic!("[{}] {name} ZRANGE: {other:?}", A::NAME),
        };
        assert_eq!(
            flat,
            [&b"m\r\n1"[..], b"1.5", b"m2", b"2"],
            "[{}] {name} ZRANGE",
            A::NAME
        );
        assert_eq!(value(&get(empty).await), Value::Array(Vec::new()));
        incrs.push(int_reply(&get(i4).await));
        let first = incrs[0];
        assert_eq!(
            incrs,
            (first..first + 4).collect::<Vec<_>>(),
            "[{}] {name}: INCR replies shifted",
            A::NAME
        );
        assert_eq!(s.handle.stats().connects, 1);
        assert_eq!(
            s.count(|n| matches!(n, Notification::Disconnected { .. })),
            0
        );
        s.handle.close(CloseMode::Immediate).await;
    }
}

/// A user's own `PING` among our heartbeats (sent after 5 ms of read silence): 40 rounds of
/// `PING`, `PING <word>` and `ECHO +PONG` pipelined, a heartbeat going out between rounds
/// (and often while the user's pings are in flight). Each reply is its own request's: `+PONG`
/// to the plain `PING`, the word to `PING <word>`, the bulk `+PONG` to the `ECHO`; the
/// heartbeat's answers are all counted as heartbeats, and nothing is left over.
pub async fn redis_user_ping_among_heartbeats<A: RealAdapter>() {
    let what = format!("[{}] redis_user_ping_among_heartbeats", A::NAME);
    let Some(redis) = redis_or_skip(&what) else {
        return;
    };
    let mut s = redis_session::<A>(&redis, real_config(Some((5, 2000))), Resp::new());
    for round in 0..40u32 {
        let before = s.handle.stats().pings;
        let word = format!("PONG{round}");
        let plain = s.handle.request(cmd(["PING"]), Delivery::AtMostOnce);
        let worded = s
            .handle
            .request(cmd(["PING", word.as_str()]), Delivery::AtMostOnce);
        let echo = s
            .handle
            .request(cmd(["ECHO", "+PONG"]), Delivery::AtMostOnce);
        let plain = within::<A, _>(LONG, "PING", plain).await.expect("PING");
        let worded = within::<A, _>(LONG, "PING word", worded)
            .await
            .expect("PING word");
        let echo = within::<A, _>(LONG, "ECHO", echo).await.expect("ECHO");
        assert_eq!(
            value(&plain),
            Value::Simple(b"PONG"),
            "[{}] round {round}",
            A::NAME
        );
        assert_eq!(
            value(&worded),
            Value::Bulk(word.as_bytes()),
            "[{}] round {round}",
            A::NAME
        );
        assert_eq!(
            value(&echo),
            Value::Bulk(b"+PONG"),
            "[{}] round {round}",
            A::NAME
        );
        if round % 2 == 0 {
            eventually::<A>(LONG, "a heartbeat between rounds", || {
                s.handle.stats().pings > before
            })
            .await;
        }
    }
    // Every heartbeat is answered as a heartbeat (at most the last one still out).
    eventually::<A>(LONG, "heartbeats answered", || {
        let st = s.handle.stats();
        st.pings - st.pongs <= 1
    })
    .await;
    let st = s.handle.stats();
    eprintln!(
        "[{}] 120 user requests among {} heartbeats ({} answered)",
        A::NAME,
        st.pings,
        st.pongs
    );
    assert!(
        st.pings >= 20,
        "[{}] heartbeats did not interleave: {st:?}",
        A::NAME
    );
    assert_eq!(st.replies, 120, "[{}] {st:?}", A::NAME);
    assert_eq!(
        (
            st.connects,
            s.count(|n| matches!(n, Notification::Disconnected { .. }))
        ),
        (1, 0),
        "[{}] {:#?}",
        A::NAME,
        s.seen
    );
    s.handle.close(CloseMode::Immediate).await;
}

/// The number a pub/sub payload `N\r\n+PONG` carries.
fn numbered(body: &[u8]) -> Option<u32> {
    let n = body.strip_suffix(b"\r\n+PONG")?;
    std::str::from_utf8(n).ok()?.parse().ok()
}

/// Redis pub/sub through `CLIENT KILL`, in RESP2 and RESP3: numbered messages (`N\r\n+PONG`)
/// published from a plain connection, each `PUBLISH` answering how many subscribers got it.
/// 30 arrive; the subscriber is killed; 10 are published at once (nobody, or the restored
/// subscription, gets them); once resubscribed, 30 more. Received: exactly the messages the
/// server says it delivered, in order, none twice, and all of the last 30.
pub async fn redis_pubsub_through_client_kill<A: RealAdapter>() {
    let what = format!("[{}] redis_pubsub_through_client_kill", A::NAME);
    let Some(redis) = redis_or_skip(&what) else {
        return;
    };
    for (name, resp) in [("RESP2", Resp::new()), ("RESP3", Resp::new().resp3())] {
        let mut s = redis_session::<A>(&redis, real_config(Some((300, 2000))), resp);
        let mut sub = subscribed::<A>(&mut s, resp::channel("news")).await;
        let epoch = s
            .seen
            .iter()
            .rev()
            .find(|e| subscribed_after(e, 0))
            .map_or(0, epoch_of);
        let mut publisher = RawRedis::connect(redis.addr()).expect("publisher");
        let mut published: Vec<(u32, String)> =
            (0..30).map(|i| publisher.publish_numbered(i)).collect();
        let mut got = Vec::new();
        while got.len() < 30 {
            let m = next_msg::<A>(&mut sub, "message before the kill").await;
            assert_eq!(m.topic, b"news", "[{}] {name}", A::NAME);
            got.push(numbered(&m.body).unwrap_or_else(|| panic!("payload {:?}", m.body)));
        }
        let mark = s.mark();
        // A RESP2 subscriber is of type pubsub, a RESP3 one stays normal.
        let killed: u32 = ["pubsub", "normal"]
            .iter()
            .map(|t| {
                let r =
                    publisher.call(&[b"CLIENT", b"KILL", b"TYPE", t.as_bytes(), b"SKIPME", b"yes"]);
                r.trim_start_matches(':')
                    .parse::<u32>()
                    .expect("kill count")
            })
            .sum();
        assert_eq!(killed, 1, "[{}] {name}: the subscriber killed", A::NAME);
        published.extend((30..40).map(|i| publisher.publish_numbered(i)));
        wait_since::<A>(&mut s, mark, "resubscribed", |e| subscribed_after(e, epoch)).await;
        let after: Vec<(u32, String)> = (40..70).map(|i| publisher.publish_numbered(i)).collect();
        assert!(
            after.iter().all(|(_, n)| n == ":1"),
            "[{}] {name}: resubscribed, yet the server counts {after:?}",
            A::NAME
        );
        published.extend(after);
        let delivered: Vec<u32> = published
            .iter()
            .filter(|(_, n)| n == ":1")
            .map(|(i, _)| *i)
            .collect();
        while got.last() != Some(&69) {
            let m = next_msg::<A>(&mut sub, "message after the kill").await;
            got.push(numbered(&m.body).unwrap_or_else(|| panic!("payload {:?}", m.body)));
            assert!(
                got.len() <= delivered.len(),
                "[{}] {name}: {got:?}",
                A::NAME
            );
        }
        assert_eq!(
            got,
            delivered,
            "[{}] {name}: each delivered message once, in order",
            A::NAME
        );
        let st = s.handle.stats();
        assert_eq!(st.connects, 2, "[{}] {name}: {st:?}", A::NAME);
        drop(sub);
        s.handle.close(CloseMode::Immediate).await;
    }
}

/// One pipelined command of [`redis_pipelined_kills_every_reply_checked_by_value`].
enum Op {
    Set(usize),
    Get(usize),
    Incr,
}

fn set_value(i: usize) -> Vec<u8> {
    let mut v = format!("v{i}\r\n+OK\r\n:").into_bytes();
    v.extend(nasty_bytes(i % 13, i as u64));
    v
}

/// 1000 pipelined commands (`SET k_i v_i`, `GET k_i`, `INCR counter`, in turn) in ten
/// rounds of 100, with `CLIENT KILL` right after each round is handed over. Every reply is
/// checked against its own request by value: `SET` answers `+OK`, `GET k_i` answers `v_i` (or
/// nil when its `SET` may not have run), each delivered `INCR` a count above the previous one
/// and within [delivered so far, sent so far]; each undelivered message comes back with its
/// own payload. At the end the counter, read on a plain connection, is within
/// [delivered, delivered + in doubt].
pub async fn redis_pipelined_kills_every_reply_checked_by_value<A: RealAdapter>() {
    let what = format!(
        "[{}] redis_pipelined_kills_every_reply_checked_by_value",
        A::NAME
    );
    let Some(redis) = redis_or_skip(&what) else {
        return;
    };
    let started = Instant::now();
    let cfg = real_config(Some((300, 2000))).with_queue(big_queue());
    let s = redis_session::<A>(&redis, cfg, Resp::new());
    let mut ops = Vec::new();
    let mut receipts = Vec::new();
    let mut kills = 0;
    for round in 0..10 {
        // On the connection after the last kill (the state alone may still show the killed
        // one, until the session has read its EOF).
        eventually::<A>(LONG, "reconnected after the last kill", || {
            s.handle.state() == State::Connected
                && s.handle.stats().connects == u64::from(kills) + 1
        })
        .await;
        for j in 0..100 {
            let i = round * 100 + j;
            let (op, c, delivery) = match i % 3 {
                0 => (
                    Op::Set(i),
                    cmd([&b"SET"[..], format!("k{i}").as_bytes(), &set_value(i)]),
                    Delivery::Idempotent,
                ),
                1 => (
                    Op::Get(i - 1),
                    cmd(["GET".to_string(), format!("k{}", i - 1)]),
                    Delivery::Idempotent,
                ),
                _ => (Op::Incr, cmd(["INCR", "counter"]), Delivery::AtMostOnce),
            };
            receipts.push((c.clone(), s.handle.request(c, delivery)));
            ops.push(op);
        }
        let k = redis.cli(&["CLIENT", "KILL", "TYPE", "normal", "SKIPME", "yes"]);
        kills += u32::from(k == ":1");
    }
    // What each SET is known to have done: Some(true) ran, None may have run.
    let mut set_ran: Vec<Option<bool>> = vec![None; ops.len()];
    let (mut incr_sent, mut incr_delivered, mut incr_in_doubt) = (0i64, 0i64, 0i64);
    let mut last_count = 0i64;
    let (mut delivered, mut undelivered) = (0, 0);
    for (op, (payload, r)) in ops.iter().zip(receipts) {
        if matches!(op, Op::Incr) {
            incr_sent += 1;
        }
        let r = within::<A, _>(LONG, "outcome", r).await;
        let reply = match r {
            Ok(reply) => {
                delivered += 1;
                reply
            }
            Err(u) => {
                undelivered += 1;
                assert_eq!(
                    u.payload,
                    payload,
                    "[{}] an outcome handed back another message",
                    A::NAME
                );
                assert_eq!(u.outcome, Outcome::InDoubt, "[{}] {u:?}", A::NAME);
                if matches!(op, Op::Incr) {
                    incr_in_doubt += 1;
                }
                continue;
            }
        };
        let v = value(&reply);
        match *op {
            Op::Set(i) => {
                assert_eq!(v, Value::Simple(b"OK"), "[{}] SET k{i}", A::NAME);
                set_ran[i] = Some(true);
            }
            Op::Get(i) => {
                let want = set_value(i);
                let ok = match (&v, set_ran[i]) {
                    (Value::Bulk(b), _) => *b == want.as_slice(),
                    (Value::Null, None) => true,
                    _ => false,
                };
                assert!(
                    ok,
                    "[{}] GET k{i} answered {v:?} (SET ran: {:?})",
                    A::NAME,
                    set_ran[i]
                );
            }
            Op::Incr => {
                incr_delivered += 1;
                let Value::Integer(n) = v else {
                    panic!("[{}] INCR answered {v:?}", A::NAME);
                };
                assert!(
                    n > last_count && n >= incr_delivered && n <= incr_sent,
                    "[{}] INCR #{incr_sent} answered {n}: previous {last_count}, \
                     {incr_delivered} delivered so far",
                    A::NAME
                );
                last_count = n;
            }
        }
    }
    let executed = redis_int(&redis, "counter");
    // Every kill is followed by a reconnect, the last one too (it may come after every reply).
    eventually::<A>(LONG, "reconnected after the last kill", || {
        s.handle.stats().connects == u64::from(kills) + 1
    })
    .await;
    let st = s.handle.stats();
    eprintln!(
        "[{}] 1000 pipelined commands, {kills} kills, {} connections in {:?}: {delivered} \
         delivered, {undelivered} in doubt (INCR: {incr_delivered} delivered, {incr_in_doubt} \
         in doubt, {executed} executed), {} replayed",
        A::NAME,
        st.connects,
        started.elapsed(),
        st.replayed
    );
    assert!(
        (incr_delivered..=incr_delivered + incr_in_doubt).contains(&executed),
        "[{}] counter {executed} outside [{incr_delivered}, {}]",
        A::NAME,
        incr_delivered + incr_in_doubt
    );
    assert_eq!(
        kills,
        10,
        "[{}] every kill finds the session's connection",
        A::NAME
    );
    assert_eq!(st.connects, u64::from(kills) + 1, "[{}] {st:?}", A::NAME);
    s.handle.close(CloseMode::Immediate).await;
}

/// A plain NATS client on a std socket, independent of the code under test.
struct RawNats {
    w: TcpStream,
    r: BufReader<TcpStream>,
}

/// One server operation read by [`RawNats`].
enum NatsOp {
    Msg {
        subject: String,
        reply: Option<String>,
        payload: Vec<u8>,
    },
    Pong,
}

impl RawNats {
    fn connect(addr: SocketAddr) -> io::Result<Self> {
        let w = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
        w.set_read_timeout(Some(Duration::from_secs(10)))?;
        let mut c = RawNats {
            r: BufReader::new(w.try_clone()?),
            w,
        };
        let mut info = String::new();
        c.r.read_line(&mut info)?;
        if !info.starts_with("INFO ") {
            return Err(io::Error::other(format!("expected INFO, got {info:?}")));
        }
        c.w.write_all(b"CONNECT {\"verbose\":false,\"pedantic\":false,\"headers\":true}\r\n")?;
        c.sync()?;
        Ok(c)
    }

    fn write(&mut self, head: &str, payload: &[u8]) -> io::Result<()> {
        let mut out = head.as_bytes().to_vec();
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(payload);
        out.extend_from_slice(b"\r\n");
        self.w.write_all(&out)
    }

    fn publish(&mut self, subject: &str, payload: &[u8]) -> io::Result<()> {
        self.write(&format!("PUB {subject} {}", payload.len()), payload)
    }

    /// The next `MSG` or `PONG`; answers the server's `PING`s on the way.
    fn next_op(&mut self) -> io::Result<NatsOp> {
        loop {
            let mut line = String::new();
            if self.r.read_line(&mut line)? == 0 {
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
            let line = line.trim_end();
            let words: Vec<&str> = line.split(' ').collect();
            match words[0] {
                "PING" => self.w.write_all(b"PONG\r\n")?,
                "PONG" => return Ok(NatsOp::Pong),
                "MSG" => {
                    let (reply, len) = match words.len() {
                        4 => (None, words[3]),
                        5 => (Some(words[3].to_owned()), words[4]),
                        _ => return Err(io::Error::other(format!("bad MSG {line:?}"))),
                    };
                    let len: usize = len.parse().map_err(io::Error::other)?;
                    let mut payload = vec![0; len + 2];
                    self.r.read_exact(&mut payload)?;
                    payload.truncate(len);
                    return Ok(NatsOp::Msg {
                        subject: words[1].to_owned(),
                        reply,
                        payload,
                    });
                }
                "+OK" | "INFO" => {}
                _ => return Err(io::Error::other(format!("unexpected {line:?}"))),
            }
        }
    }

    /// `PING` and wait for its `PONG`: the server has processed everything sent before.
    fn sync(&mut self) -> io::Result<()> {
        self.w.write_all(b"PING\r\n")?;
        loop {
            if let NatsOp::Pong = self.next_op()? {
                return Ok(());
            }
        }
    }
}

fn big_nats_or_skip(what: &str) -> Option<NatsServer> {
    match NatsServer::start_with_config("max_payload: 8388608\n") {
        Ok(n) => Some(n),
        Err(e) => {
            skip_or_fail(what, e.reason());
            None
        }
    }
}

/// NATS payloads that look like protocol (`PING`, `PONG`, `+OK`, `-ERR`, CR LF inside, a
/// whole `MSG` line, `INFO {}`, nothing, 1 MiB of bytes full of CR LF) are taken by byte
/// count: each is published once by the session and once by a plain client, and both copies
/// reach the session's subscription byte for byte. Nothing is answered, swallowed or sent to
/// the inbound stream, and the connection never drops.
pub async fn nats_payloads_framed_by_byte_count<A: RealAdapter>() {
    let what = format!("[{}] nats_payloads_framed_by_byte_count", A::NAME);
    let Some(nats) = big_nats_or_skip(&what) else {
        return;
    };
    let cfg = real_config(Some((20, 2000)))
        .with_queue(big_queue())
        .with_inbound(InboundLimits {
            max_messages: 1024,
            max_bytes: 16 << 20,
        });
    let mut s = nats_session::<A>(&nats, cfg, Nats::new());
    let mut sub = subscribed::<A>(&mut s, nats::subscription("t.payloads", None)).await;
    let mut raw = RawNats::connect(nats.addr()).expect("raw client");
    let payloads: Vec<Vec<u8>> = vec![
        b"PING".to_vec(),
        b"PONG".to_vec(),
        b"+OK".to_vec(),
        b"-ERR".to_vec(),
        b"-ERR 'Stale Connection'\r\nPING\r\n".to_vec(),
        b"line1\r\nline2".to_vec(),
        b"MSG t.payloads 1 3\r\nabc".to_vec(),
        b"INFO {}\r\n".to_vec(),
        Vec::new(),
        nasty_bytes(1 << 20, 7),
    ];
    for p in &payloads {
        let msg = nats::publish("t.payloads", p).expect("publish");
        within::<A, _>(LONG, "published", s.handle.send(msg, Delivery::AtMostOnce))
            .await
            .unwrap_or_else(|u| panic!("[{}] {} bytes: {u:?}", A::NAME, p.len()));
        raw.publish("t.payloads", p).expect("raw publish");
        raw.sync().expect("raw sync");
        for from in ["session", "plain client"] {
            let m = next_msg::<A>(&mut sub, from).await;
            assert_eq!(m.topic, b"t.payloads");
            assert!(
                m.body == *p,
                "[{}] payload of {} bytes came back as {} bytes ({:?}...)",
                A::NAME,
                p.len(),
                m.body.len(),
                String::from_utf8_lossy(&m.body[..m.body.len().min(40)])
            );
        }
    }
    assert!(
        sub.next().now_or_never().is_none(),
        "[{}] an extra message",
        A::NAME
    );
    assert!(
        s.inbound.next().now_or_never().is_none(),
        "[{}] inbound data",
        A::NAME
    );
    let said = peer_said(&mut s);
    assert!(said.is_empty(), "[{}] {said:?}", A::NAME);
    assert_eq!(
        (
            s.handle.stats().connects,
            s.count(|n| matches!(n, Notification::Disconnected { .. }))
        ),
        (1, 0)
    );
    s.handle.close(CloseMode::Immediate).await;
}

/// NATS headers and request/reply. `HPUB` from the session and from a plain client arrive as
/// `HMSG` with the header block and the payload apart, byte for byte. Sixteen pipelined
/// requests (payloads `PING`, CR LF, nothing, words) to a plain responder that answers them
/// all in reverse order: each reply is its own request's (`re:` + its payload), matched by
/// the inbox token. A request nobody serves is answered by the server's 503 status: a refusal.
pub async fn nats_headers_and_request_reply<A: RealAdapter>() {
    let what = format!("[{}] nats_headers_and_request_reply", A::NAME);
    let Some(nats) = nats_or_skip(&what, None, None) else {
        return;
    };
    let inbox = format!("_INBOX.redial{}", std::process::id());
    let proto = Nats::new().with_inbox(&inbox);
    let mut s = nats_session::<A>(&nats, real_config(Some((300, 2000))), proto.clone());
    let mut sub = subscribed::<A>(&mut s, nats::subscription("t.h", None)).await;
    let headers = [("X-Seq", "1"), ("Note", "PING +OK")];
    let head = b"NATS/1.0\r\nX-Seq: 1\r\nNote: PING +OK\r\n\r\n".to_vec();
    let body = b"-ERR\r\nbody".to_vec();
    let hpub = nats::publish_with_headers("t.h", &headers, &body).expect("hpub");
    within::<A, _>(LONG, "HPUB", s.handle.send(hpub, Delivery::AtMostOnce))
        .await
        .expect("delivered");
    let mut raw = RawNats::connect(nats.addr()).expect("raw client");
    let mut block = head.clone();
    block.extend_from_slice(&body);
    raw.write(&format!("HPUB t.h {} {}", head.len(), block.len()), &block)
        .expect("raw HPUB");
    raw.sync().expect("sync");
    for from in ["session", "plain client"] {
        let m = next_msg::<A>(&mut sub, from).await;
        assert_eq!(
            (m.headers.as_slice(), m.body.as_slice()),
            (head.as_slice(), body.as_slice()),
            "[{}] HMSG from the {from}",
            A::NAME
        );
    }

    // The responder: subscribes, says so, collects 16 requests, answers them in reverse.
    let addr = nats.addr();
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let responder = thread::spawn(move || -> io::Result<usize> {
        let mut c = RawNats::connect(addr)?;
        c.w.write_all(b"SUB svc.echo 1\r\n")?;
        c.sync()?;
        let _ = ready_tx.send(());
        let mut asks = Vec::new();
        while asks.len() < 16 {
            if let NatsOp::Msg {
                subject,
                reply: Some(to),
                payload,
            } = c.next_op()?
            {
                assert_eq!(subject, "svc.echo", "a request on another subject");
                asks.push((to, payload));
            }
        }
        for (to, payload) in asks.iter().rev() {
            c.publish(to, &[b"re:", payload.as_slice()].concat())?;
        }
        c.sync()?;
        Ok(asks.len())
    });
    ready_rx.recv_timeout(LONG).expect("responder subscribed");
    let bodies: Vec<Vec<u8>> = (0..16u64)
        .map(|i| match i % 4 {
            0 => b"PING".to_vec(),
            1 => format!("a\r\nb{i}").into_bytes(),
            2 => Vec::new(),
            _ => format!("word{i}").into_bytes(),
        })
        .collect();
    let asks: Vec<_> = bodies
        .iter()
        .zip(1u64..)
        .map(|(b, token)| {
            let m = proto.request(token, "svc.echo", b).expect("request");
            s.handle.request(m, Delivery::AtMostOnce)
        })
        .collect();
    for (b, r) in bodies.iter().zip(asks) {
        let r = within::<A, _>(LONG, "reply", r).await.expect("answered");
        assert!(!r.refused);
        assert_eq!(
            r.body,
            [b"re:", b.as_slice()].concat(),
            "[{}] a reply crossed to another request",
            A::NAME
        );
    }
    assert_eq!(
        responder.join().expect("responder").expect("responder io"),
        16
    );
    let nobody = proto.request(99, "svc.nobody", b"hello").expect("request");
    let r = within::<A, _>(
        LONG,
        "no responders",
        s.handle.request(nobody, Delivery::AtMostOnce),
    )
    .await
    .expect("answered by the server");
    assert!(
        r.refused,
        "[{}] a 503 no-responders status is a refusal",
        A::NAME
    );
    assert_eq!(s.handle.stats().connects, 1);
    s.handle.close(CloseMode::Immediate).await;
}

/// Subscriptions restored after a nats-server restart: numbered messages (`nN\r\nPING`) from
/// a plain publisher; 20 arrive; the server is killed and started again; once the session has
/// resubscribed (its own message round trip after the `Subscribed` event proves the server
/// has the `SUB`), 20 more and an end marker are published. Received: exactly 0..40, in
/// order, none twice.
pub async fn nats_subscriptions_restored_after_restart<A: RealAdapter>() {
    let what = format!("[{}] nats_subscriptions_restored_after_restart", A::NAME);
    let Some(mut nats) = nats_or_skip(&what, None, None) else {
        return;
    };
    let mut s = nats_session::<A>(&nats, real_config(Some((300, 1000))), Nats::new());
    let mut sub = subscribed::<A>(&mut s, nats::subscription("t.r", None)).await;
    let epoch = s
        .seen
        .iter()
        .rev()
        .find(|e| subscribed_after(e, 0))
        .map_or(0, epoch_of);
    let number = |body: &[u8]| -> Option<u32> {
        let n = body.strip_prefix(b"n")?.strip_suffix(b"\r\nPING")?;
        std::str::from_utf8(n).ok()?.parse().ok()
    };
    let mut raw = RawNats::connect(nats.addr()).expect("publisher");
    for i in 0..20 {
        raw.publish("t.r", format!("n{i}\r\nPING").as_bytes())
            .expect("publish");
    }
    raw.sync().expect("sync");
    let mut got = Vec::new();
    while got.len() < 20 {
        let m = next_msg::<A>(&mut sub, "before the restart").await;
        got.push(number(&m.body).unwrap_or_else(|| panic!("payload {:?}", m.body)));
    }
    drop(raw);
    let mark = s.mark();
    nats.restart();
    wait_since::<A>(&mut s, mark, "resubscribed", |e| subscribed_after(e, epoch)).await;
    within::<A, _>(
        LONG,
        "sync publish",
        s.handle.send(
            nats::publish("t.r", b"sync").expect("publish"),
            Delivery::AtMostOnce,
        ),
    )
    .await
    .expect("delivered");
    let m = next_msg::<A>(&mut sub, "own sync message").await;
    assert_eq!(
        m.body,
        b"sync",
        "[{}] nothing else came in between",
        A::NAME
    );
    let mut raw = RawNats::connect(nats.addr()).expect("publisher after the restart");
    for i in 20..40 {
        raw.publish("t.r", format!("n{i}\r\nPING").as_bytes())
            .expect("publish");
    }
    raw.publish("t.r", b"end").expect("publish");
    raw.sync().expect("sync");
    loop {
        let m = next_msg::<A>(&mut sub, "after the restart").await;
        if m.body == b"end" {
            break;
        }
        got.push(number(&m.body).unwrap_or_else(|| panic!("payload {:?}", m.body)));
    }
    assert_eq!(
        got,
        (0..40).collect::<Vec<_>>(),
        "[{}] each message once, in order",
        A::NAME
    );
    assert_eq!(s.handle.stats().connects, 2);
    s.handle.close(CloseMode::Immediate).await;
}
