//! The conformance suite: every scenario written once, run against every adapter.
//!
//! An adapter plugs in through [`Adapter`] (how to build a session, run a future to
//! completion and sleep on that runtime); [`conformance_tests!`](crate::conformance_tests)
//! stamps out one `#[test]` per scenario. Servers and the fault proxy run on their own threads,
//! so the scenarios themselves contain no runtime-specific code.
//!
//! Timing assertions state their tolerance next to the bound they check. The machines are
//! 2-core and the whole workspace's tests run in parallel, so tolerances are generous; the
//! behaviour they guard (e.g. "detected at all within seconds" vs "never") is far apart.

use std::future::Future;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::future::BoxFuture;
use futures::{FutureExt, StreamExt};
use redial_core::{
    AbandonReason, AckMode, Backoff, Batch, CloseMode, Config, ConfigError, Delivery,
    DisconnectReason, FrameError, GiveUp, GiveUpWhen, Heartbeat, Jitter, LengthCodec, LineCodec,
    NetError, Notification, Outcome, QueueLimits, RejectReason, State,
};
use redial_driver::{
    Builder, Discover, Events, Handle, Inbound, Runtime, SessionEvent, Target, Undelivered,
};

use crate::proxy::{FaultProxy, Mode};
use crate::servers::{LenServer, LineServer};

/// What the suite needs from an adapter.
pub trait Adapter: 'static {
    /// The adapter's runtime.
    type Rt: Runtime;
    /// A name for messages.
    const NAME: &'static str;
    /// A session builder on this runtime.
    fn builder(target: Target) -> Builder<Self::Rt>;
    /// Runs a scenario to completion on this runtime (sessions spawned inside run there).
    fn block_on<F: Future<Output = ()> + Send + 'static>(f: F);
    /// Sleeps on this runtime's timer.
    fn sleep(d: Duration) -> BoxFuture<'static, ()>;
}

/// Generates one `#[test]` per conformance scenario for an [`Adapter`].
#[macro_export]
macro_rules! conformance_tests {
    ($adapter:ty) => {
        $crate::conformance_tests!(@each $adapter;
            exchange_and_heartbeat, down_at_start_follows_policy, restart_flushes_queue_in_order,
            give_up_abandons_everything, blackhole_detected_by_heartbeat,
            old_socket_never_disturbs_new, ledger_in_doubt_and_replay, queue_full_rejects,
            graceful_close_drains_immediate_abandons, bad_input_reconnects_bad_config_refused,
            rediscovers_every_cycle, batches_travel_and_end_as_one,
            handshake_replies_are_read_before_use);
    };
    (@each $adapter:ty; $($name:ident),*) => {
        $(
            #[test]
            fn $name() {
                <$adapter as $crate::conformance::Adapter>::block_on(
                    $crate::conformance::$name::<$adapter>(),
                );
            }
        )*
    };
}

/// A policy scaled down so scenarios take a second, not a minute.
pub fn fast_config() -> Config {
    Config::default()
        .with_backoff(
            Backoff::new()
                .with_initial(Duration::from_millis(20))
                .with_cap(Duration::from_millis(200)),
        )
        .with_give_up(GiveUp::NEVER)
        .with_connect_timeout(Duration::from_millis(500))
        .with_stable_after(Duration::from_millis(500))
        .with_heartbeat(Some(Heartbeat {
            interval: Duration::from_millis(200),
            timeout: Duration::from_millis(300),
            adaptive_floor: None,
        }))
}

/// An address with nothing listening on it (bound, then released).
pub fn dead_addr() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr")
}

/// A running session plus everything it reports.
pub struct Live {
    /// The handle.
    pub handle: Handle,
    /// Inbound data.
    pub inbound: Inbound,
    /// Lifecycle events.
    pub events: Events,
    /// Events seen so far.
    pub seen: Vec<SessionEvent>,
    /// Index in `seen` after the event the last `wait_event` matched.
    cursor: usize,
}

impl Live {
    /// Spawns a session on the adapter.
    pub fn spawn<A: Adapter>(b: Builder<A::Rt>) -> Live {
        let (handle, inbound, events) = b.spawn().expect("valid config");
        Live {
            handle,
            inbound,
            events,
            seen: Vec::new(),
            cursor: 0,
        }
    }

    /// Moves every event already delivered into `seen`.
    pub fn drain(&mut self) {
        while let Some(Some(e)) = self.events.next().now_or_never() {
            self.seen.push(e);
        }
    }

    /// Waits (bounded) for an event matching `f` that comes after the one the previous wait
    /// matched, and returns it. Every event stays in `seen`.
    pub async fn wait_event<A: Adapter>(
        &mut self,
        timeout: Duration,
        what: &str,
        mut f: impl FnMut(&SessionEvent) -> bool,
    ) -> SessionEvent {
        let deadline = Instant::now() + timeout;
        loop {
            self.drain();
            if let Some(i) = self.seen[self.cursor..].iter().position(&mut f) {
                self.cursor += i + 1;
                return self.seen[self.cursor - 1].clone();
            }
            assert!(
                Instant::now() < deadline,
                "[{}] timed out after {timeout:?} waiting for {what}; events: {:#?}",
                A::NAME,
                self.seen
            );
            A::sleep(Duration::from_millis(5)).await;
        }
    }

    /// How many events so far match `f`.
    pub fn count(&mut self, f: impl Fn(&Notification) -> bool) -> usize {
        self.drain();
        self.seen.iter().filter(|e| f(&e.notification)).count()
    }
}

/// Polls `cond` on the adapter's timer until it holds, bounded by `timeout`.
pub async fn eventually<A: Adapter>(timeout: Duration, what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !cond() {
        assert!(
            Instant::now() < deadline,
            "[{}] timed out after {timeout:?} waiting for {what}",
            A::NAME
        );
        A::sleep(Duration::from_millis(5)).await;
    }
}

/// Awaits `f`, failing the test if it takes longer than `timeout`.
pub async fn within<A: Adapter, T>(timeout: Duration, what: &str, f: impl Future<Output = T>) -> T {
    let sleep = A::sleep(timeout);
    futures::pin_mut!(f);
    match futures::future::select(f, sleep).await {
        futures::future::Either::Left((v, _)) => v,
        futures::future::Either::Right(_) => {
            panic!("[{}] {what} did not finish within {timeout:?}", A::NAME)
        }
    }
}

fn is_connected(n: &Notification) -> bool {
    matches!(n, Notification::Connected { .. })
}

fn line_session<A: Adapter>(addr: SocketAddr, config: Config) -> Builder<A::Rt> {
    A::builder(addr.into())
        .config(config)
        .codec(LineCodec::plain())
}

const LONG: Duration = Duration::from_secs(10);

/// Scenario 1: Messages flow both ways; PING/PONG keeps an idle connection alive.
pub async fn exchange_and_heartbeat<A: Adapter>() {
    let server = LineServer::start();
    let mut s = Live::spawn::<A>(line_session::<A>(server.addr(), fast_config()));
    within::<A, _>(
        LONG,
        "delivery",
        s.handle.send(b"hello".to_vec(), Delivery::AtMostOnce),
    )
    .await
    .expect("delivered");
    eventually::<A>(LONG, "server got hello", || server.received() == ["hello"]).await;
    server.send_to_all(b"world\r\n");
    let got = within::<A, _>(LONG, "inbound", s.inbound.next()).await;
    assert_eq!(got.as_deref(), Some(&b"world"[..]));
    // Idle for ten heartbeat intervals: pings are answered and the connection stays up.
    let pings_before = server.pings();
    A::sleep(Duration::from_millis(2000)).await;
    assert!(
        server.pings() >= pings_before + 4,
        "pings: {} -> {}",
        pings_before,
        server.pings()
    );
    assert_eq!(s.handle.state(), State::Connected);
    assert_eq!(
        s.handle.stats().connects,
        1,
        "an idle, answered connection was never dropped"
    );
    assert!(s.handle.stats().srtt.is_some(), "PONGs give RTT samples");
    assert_eq!(server.connections(), 1);
}

/// Scenario 2: Server down at start: attempts follow the policy (no jitter: exact delays; full jitter:
/// within `[0, base]`), never above the cap. Tolerance: +150 ms late per gap, 2 ms early.
pub async fn down_at_start_follows_policy<A: Adapter>() {
    for jitter in [Jitter::None, Jitter::Full] {
        let backoff = Backoff::new()
            .with_initial(Duration::from_millis(50))
            .with_cap(Duration::from_millis(200))
            .with_jitter(jitter);
        let cfg = fast_config().with_backoff(backoff);
        let mut s = Live::spawn::<A>(line_session::<A>(dead_addr(), cfg));
        let failed = |e: &SessionEvent| {
            matches!(
                e.notification,
                Notification::AttemptFailed { attempt: 6, .. }
            )
        };
        s.wait_event::<A>(LONG, "six failed attempts", failed).await;
        let fails: Vec<(Duration, u32, Option<SocketAddr>, Duration)> = s
            .seen
            .iter()
            .filter_map(|e| match e.notification {
                Notification::AttemptFailed {
                    attempt,
                    addr,
                    next_delay,
                    ..
                } => {
                    assert!(
                        e.detail.is_some(),
                        "attempt failures carry the OS error text"
                    );
                    Some((e.at, attempt, addr, next_delay.expect("never gives up")))
                }
                _ => None,
            })
            .collect();
        let starts: Vec<Duration> = s
            .seen
            .iter()
            .filter(|e| matches!(e.notification, Notification::AttemptStarted { .. }))
            .map(|e| e.at)
            .collect();
        for (i, (at, attempt, addr, delay)) in fails.iter().enumerate().take(5) {
            assert_eq!(*attempt as usize, i + 1);
            assert!(addr.is_some(), "the failure names its target address");
            let base = backoff.base(*attempt);
            assert!(
                *delay <= backoff.cap && *delay <= base,
                "{jitter:?}: delay {delay:?} > base {base:?}"
            );
            if jitter == Jitter::None {
                assert_eq!(*delay, base);
            }
            let gap = starts[i + 1].saturating_sub(*at);
            assert!(
                gap + Duration::from_millis(2) >= *delay
                    && gap <= *delay + Duration::from_millis(150),
                "[{}] {jitter:?}: attempt {} started {gap:?} after failure, policy said {delay:?}",
                A::NAME,
                attempt + 1
            );
        }
        s.handle.close(CloseMode::Immediate).await;
    }
}

/// Scenario 3: Server restart: reconnect, queued messages flushed, order kept.
pub async fn restart_flushes_queue_in_order<A: Adapter>() {
    let server = LineServer::start();
    let mut s = Live::spawn::<A>(line_session::<A>(server.addr(), fast_config()));
    for m in ["a", "b"] {
        s.handle
            .send(m.into(), Delivery::AtMostOnce)
            .await
            .expect("delivered");
    }
    // Without acks, "delivered" means written to the socket: let the server read them before
    // it goes down (the ledger scenario covers messages caught on the wire).
    eventually::<A>(LONG, "a and b read", || server.received().len() == 2).await;
    server.stop();
    s.wait_event::<A>(LONG, "disconnect", |e| {
        matches!(e.notification, Notification::Disconnected { .. })
    })
    .await;
    let receipts: Vec<_> = ["c", "d", "e"]
        .iter()
        .map(|m| s.handle.send(m.as_bytes().to_vec(), Delivery::AtMostOnce))
        .collect();
    A::sleep(Duration::from_millis(300)).await;
    assert_ne!(s.handle.state(), State::Connected);
    server.start_again();
    for r in receipts {
        within::<A, _>(LONG, "queued delivery", r)
            .await
            .expect("delivered after restart");
    }
    let deadline = Instant::now() + LONG;
    while server.received().len() < 5 && Instant::now() < deadline {
        A::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(server.received(), ["a", "b", "c", "d", "e"]);
    assert!(s.handle.stats().reconnects >= 1);
}

/// Scenario 4: Give-up: after the policy's limits the session closes and every queued message comes
/// back abandoned, with its payload.
pub async fn give_up_abandons_everything<A: Adapter>() {
    let cfg = fast_config().with_give_up(GiveUp {
        max_failures: Some(3),
        max_elapsed: None,
        when: GiveUpWhen::Either,
    });
    let mut s = Live::spawn::<A>(line_session::<A>(dead_addr(), cfg));
    let receipts: Vec<_> = (0..3u8)
        .map(|i| s.handle.send(vec![b'm', b'0' + i], Delivery::Idempotent))
        .collect();
    for (i, r) in receipts.into_iter().enumerate() {
        let u = within::<A, _>(LONG, "abandon", r)
            .await
            .expect_err("cannot be delivered");
        assert_eq!(u.outcome, Outcome::Abandoned(AbandonReason::GaveUp));
        assert_eq!(u.payload, vec![b'm', b'0' + i as u8]);
    }
    s.wait_event::<A>(LONG, "gave up", |e| {
        matches!(e.notification, Notification::GaveUp { failures: 3, .. })
    })
    .await;
    eventually::<A>(LONG, "closed", || s.handle.state() == State::Closed).await;
    assert_eq!(
        s.count(|n| matches!(n, Notification::AttemptFailed { .. })),
        3
    );
    let late = s.handle.send(b"late".to_vec(), Delivery::AtMostOnce).await;
    assert_eq!(
        late.expect_err("closed").outcome,
        Outcome::Rejected(RejectReason::Closed)
    );
    let end = within::<A, _>(LONG, "events end", async {
        while s.events.next().await.is_some() {}
    })
    .await;
    let _: () = end;
}

/// Scenario 5: Blackhole (half-open): found within interval + timeout (+400 ms tolerance); a plain
/// socket in the same cut notices nothing; after heal the session reconnects.
pub async fn blackhole_detected_by_heartbeat<A: Adapter>() {
    let server = LineServer::start();
    let proxy = FaultProxy::start(server.addr());
    let cfg = fast_config();
    let hb = cfg.heartbeat.expect("on");
    let mut s = Live::spawn::<A>(line_session::<A>(proxy.addr(), cfg));
    s.handle
        .send(b"x".to_vec(), Delivery::AtMostOnce)
        .await
        .expect("delivered");
    let mut plain = TcpStream::connect(proxy.addr()).expect("plain connect");
    let cut = Instant::now();
    proxy.set_mode(Mode::Blackhole);
    let ev = s
        .wait_event::<A>(LONG, "heartbeat timeout", |e| {
            matches!(
                e.notification,
                Notification::Disconnected {
                    reason: DisconnectReason::HeartbeatTimeout { .. },
                    ..
                }
            )
        })
        .await;
    let detected = cut.elapsed();
    let bound = hb.interval + hb.timeout + Duration::from_millis(400);
    assert!(
        detected <= bound,
        "[{}] detected after {detected:?}, bound {bound:?}",
        A::NAME
    );
    let _ = ev;
    // The plain socket, cut at the same moment, has noticed nothing by now.
    plain
        .set_read_timeout(Some(Duration::from_millis(50)))
        .expect("timeout");
    let mut buf = [0u8; 16];
    match std::io::Read::read(&mut plain, &mut buf) {
        Err(e)
            if matches!(
                e.kind(),
                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
            ) => {}
        other => panic!("the plain socket noticed the blackhole: {other:?}"),
    }
    // The session keeps redialing during the cut (the proxy accepts and holds those
    // connections); after heal the current one flows.
    proxy.set_mode(Mode::PassThrough);
    within::<A, _>(
        LONG,
        "delivery after heal",
        s.handle.send(b"y".to_vec(), Delivery::AtMostOnce),
    )
    .await
    .expect("delivered after heal");
    assert!(s.handle.stats().connects >= 2);
    eventually::<A>(LONG, "y received", || {
        server.received().iter().any(|l| l == "y")
    })
    .await;
}

/// Scenario 6: Epochs: the old socket (slow proxy: late bytes, delayed close) never disturbs the new
/// connection.
pub async fn old_socket_never_disturbs_new<A: Adapter>() {
    let server = LineServer::start();
    let proxy = FaultProxy::start(server.addr());
    let mut s = Live::spawn::<A>(line_session::<A>(
        proxy.addr(),
        fast_config().with_heartbeat(None),
    ));
    s.wait_event::<A>(LONG, "connected", |e| is_connected(&e.notification))
        .await;
    eventually::<A>(LONG, "server accepted", || server.live() == 1).await;
    // Bytes from the server are in flight on the old connection when it is replaced.
    proxy.set_latency_down(Duration::from_millis(300));
    server.send_to_all(b"late-from-old\r\n");
    s.handle.reconnect_now();
    s.wait_event::<A>(
        LONG,
        "second connection",
        |e| matches!(e.notification, Notification::Connected { epoch, .. } if epoch.get() >= 2),
    )
    .await;
    proxy.set_latency_down(Duration::ZERO);
    // Let the old socket's late bytes and close arrive.
    A::sleep(Duration::from_millis(600)).await;
    s.handle
        .send(b"after".to_vec(), Delivery::AtMostOnce)
        .await
        .expect("delivered");
    eventually::<A>(LONG, "after received", || {
        server.received().contains(&"after".to_string())
    })
    .await;
    let conns: Vec<u64> = server
        .received_with_conn()
        .iter()
        .map(|(c, _)| *c)
        .collect();
    assert_eq!(conns.len(), 1, "exactly one copy");
    assert_eq!(
        s.count(|n| matches!(n, Notification::Disconnected { .. })),
        1,
        "only the replaced one ended"
    );
    assert_eq!(s.handle.state(), State::Connected);
    eventually::<A>(LONG, "old server-side socket closed", || server.live() == 1).await;
    // Nothing from the old socket surfaced on the new connection's inbound stream.
    let mut inbound = Vec::new();
    while let Some(Some(m)) = s.inbound.next().now_or_never() {
        inbound.push(m);
    }
    assert!(
        !inbound.iter().any(|m| m == b"late-from-old"),
        "old bytes leaked: {inbound:?}"
    );
}

/// Scenario 7: Ledger: at-most-once messages written before a cut come back in doubt and are never
/// resent; idempotent ones are replayed exactly once, in order. The server log is the witness.
pub async fn ledger_in_doubt_and_replay<A: Adapter>() {
    let server = LineServer::start();
    server.set_reply(Some("+OK "));
    let cfg = fast_config()
        .with_heartbeat(None)
        .with_acks(AckMode::InOrder);
    let s = Live::spawn::<A>(line_session::<A>(server.addr(), cfg).acks(AckMode::InOrder));
    s.handle
        .send(b"warmup".to_vec(), Delivery::AtMostOnce)
        .await
        .expect("acked");
    server.set_silent(true);
    let r1 = s.handle.send(b"i1".to_vec(), Delivery::Idempotent);
    let r2 = s.handle.send(b"n1".to_vec(), Delivery::AtMostOnce);
    let r3 = s.handle.send(b"i2".to_vec(), Delivery::Idempotent);
    eventually::<A>(LONG, "written, unacked", || server.received().len() == 4).await;
    server.set_silent(false);
    server.kill_all();
    let n1 = within::<A, _>(LONG, "n1 outcome", r2)
        .await
        .expect_err("in doubt");
    assert_eq!(
        (n1.outcome, n1.payload.as_slice()),
        (Outcome::InDoubt, &b"n1"[..])
    );
    within::<A, _>(LONG, "i1 replay", r1)
        .await
        .expect("i1 replayed and acked");
    within::<A, _>(LONG, "i2 replay", r3)
        .await
        .expect("i2 replayed and acked");
    let log = server.received_with_conn();
    let count = |m: &str| log.iter().filter(|(_, l)| l == m).count();
    assert_eq!(count("n1"), 1, "in-doubt message resent: {log:?}");
    assert_eq!(
        (count("i1"), count("i2")),
        (2, 2),
        "idempotent replayed exactly once: {log:?}"
    );
    let second: Vec<&str> = log.iter().skip(4).map(|(_, l)| l.as_str()).collect();
    assert_eq!(
        second,
        ["i1", "i2"],
        "replayed in order on the new connection"
    );
    assert_eq!(s.handle.stats().in_doubt, 1);
}

/// Scenario 8: Queue full: rejected at once with the message handed back; memory stays bounded.
pub async fn queue_full_rejects<A: Adapter>() {
    let q = QueueLimits {
        max_messages: 4,
        max_bytes: 1 << 16,
        max_message: 1 << 10,
        overflow: redial_core::Overflow::Reject,
    };
    let s = Live::spawn::<A>(line_session::<A>(dead_addr(), fast_config().with_queue(q)));
    let held: Vec<_> = (0..4)
        .map(|i| s.handle.send(vec![b'a' + i], Delivery::AtMostOnce))
        .collect();
    let mut rejected = 0;
    for i in 0..10_000u32 {
        let payload = format!("r{i}").into_bytes();
        let u = s
            .handle
            .send(payload.clone(), Delivery::AtMostOnce)
            .await
            .expect_err("full");
        assert_eq!(
            (u.outcome, u.payload),
            (Outcome::Rejected(RejectReason::QueueFull), payload)
        );
        rejected += 1;
    }
    assert_eq!(rejected, 10_000);
    let big = s
        .handle
        .send(vec![0; 2048], Delivery::AtMostOnce)
        .await
        .expect_err("too large");
    assert!(matches!(
        big.outcome,
        Outcome::Rejected(RejectReason::TooLarge {
            size: 2048,
            max: 1024
        })
    ));
    eventually::<A>(LONG, "rejections counted", || {
        s.handle.stats().rejected == 10_001
    })
    .await;
    s.handle.close(CloseMode::Immediate).await;
    for r in held {
        assert_eq!(
            r.await.expect_err("abandoned").outcome,
            Outcome::Abandoned(AbandonReason::Closed)
        );
    }
}

/// Scenario 9: Graceful close drains within its deadline; immediate close abandons; a drain that
/// cannot finish abandons at its deadline.
pub async fn graceful_close_drains_immediate_abandons<A: Adapter>() {
    let server = LineServer::start();
    let s = Live::spawn::<A>(line_session::<A>(server.addr(), fast_config()));
    let receipts: Vec<_> = (0..100)
        .map(|i| {
            s.handle
                .send(format!("m{i}").into_bytes(), Delivery::AtMostOnce)
        })
        .collect();
    let t = Instant::now();
    within::<A, _>(
        LONG,
        "graceful close",
        s.handle.close(CloseMode::Graceful {
            drain: Duration::from_secs(5),
        }),
    )
    .await;
    assert!(t.elapsed() < Duration::from_secs(5));
    for r in receipts {
        r.await.expect("drained before close");
    }
    eventually::<A>(LONG, "all 100 received", || server.received().len() == 100).await;
    assert_eq!(s.handle.state(), State::Closed);

    let down = Live::spawn::<A>(line_session::<A>(dead_addr(), fast_config()));
    let r = down.handle.send(b"x".to_vec(), Delivery::AtMostOnce);
    let t = Instant::now();
    down.handle
        .close(CloseMode::Graceful {
            drain: Duration::from_millis(300),
        })
        .await;
    let took = t.elapsed();
    assert!(
        took >= Duration::from_millis(250) && took < Duration::from_secs(3),
        "drain took {took:?}"
    );
    assert_eq!(
        r.await.expect_err("undeliverable").outcome,
        Outcome::Abandoned(AbandonReason::DrainTimeout)
    );

    let down = Live::spawn::<A>(line_session::<A>(dead_addr(), fast_config()));
    let r = down.handle.send(b"y".to_vec(), Delivery::AtMostOnce);
    down.handle.close(CloseMode::Immediate).await;
    assert_eq!(
        r.await.expect_err("abandoned").outcome,
        Outcome::Abandoned(AbandonReason::Closed)
    );
}

/// Scenario 10: Bad input: oversized and malformed inbound frames close that connection with a typed
/// error and the session recovers; bad config is refused before anything is spawned.
pub async fn bad_input_reconnects_bad_config_refused<A: Adapter>() {
    let server = LineServer::start();
    let b = A::builder(server.addr().into())
        .config(fast_config())
        .codec(LineCodec::plain().with_max_line(64));
    let mut s = Live::spawn::<A>(b);
    s.wait_event::<A>(LONG, "connected", |e| is_connected(&e.notification))
        .await;
    eventually::<A>(LONG, "server accepted", || server.live() == 1).await;
    server.send_to_all(&[b'z'; 500]);
    s.wait_event::<A>(LONG, "oversized frame", |e| {
        matches!(
            e.notification,
            Notification::Disconnected {
                reason: DisconnectReason::Protocol(FrameError::TooLarge { max: 64, .. }),
                ..
            }
        )
    })
    .await;
    s.handle
        .send(b"recovered".to_vec(), Delivery::AtMostOnce)
        .await
        .expect("delivered after reconnect");
    eventually::<A>(LONG, "recovered", || {
        server.received().contains(&"recovered".to_string())
    })
    .await;

    let len_server = LenServer::start();
    let mut s = Live::spawn::<A>(
        A::builder(len_server.addr().into())
            .config(fast_config())
            .codec(LengthCodec::new(1024)),
    );
    s.wait_event::<A>(LONG, "connected", |e| is_connected(&e.notification))
        .await;
    eventually::<A>(LONG, "len server accepted", || len_server.live() == 1).await;
    len_server.send_raw_to_all(&[0, 0, 0, 2, 9, 9]);
    s.wait_event::<A>(LONG, "malformed frame", |e| {
        matches!(
            e.notification,
            Notification::Disconnected {
                reason: DisconnectReason::Protocol(FrameError::Malformed { .. }),
                ..
            }
        )
    })
    .await;
    s.handle
        .send(b"ok".to_vec(), Delivery::AtMostOnce)
        .await
        .expect("delivered after reconnect");
    eventually::<A>(LONG, "len recovered", || {
        len_server.received().contains(&b"ok".to_vec())
    })
    .await;

    let probe = LineServer::start();
    let bad = fast_config().with_heartbeat(Some(Heartbeat {
        interval: Duration::ZERO,
        ..Heartbeat::default()
    }));
    let err = A::builder(probe.addr().into())
        .config(bad)
        .spawn()
        .expect_err("refused");
    assert_eq!(err, ConfigError::ZeroDuration("heartbeat.interval"));
    assert_eq!(
        err.to_string(),
        "heartbeat.interval must be greater than zero"
    );
    A::sleep(Duration::from_millis(100)).await;
    assert_eq!(probe.connections(), 0, "nothing was spawned");
}

struct CountingDiscover {
    addr: SocketAddr,
    calls: Arc<AtomicUsize>,
}

impl Discover for CountingDiscover {
    fn discover(&self) -> BoxFuture<'static, std::io::Result<Vec<SocketAddr>>> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        let addr = self.addr;
        async move { Ok(vec![addr]) }.boxed()
    }
}

/// Scenario 12: Discovery is refreshed on every reconnect cycle; a `localhost` target works.
pub async fn rediscovers_every_cycle<A: Adapter>() {
    let server = LineServer::start();
    let calls = Arc::new(AtomicUsize::new(0));
    let d = CountingDiscover {
        addr: server.addr(),
        calls: calls.clone(),
    };
    let mut s = Live::spawn::<A>(
        A::builder(Target::discover(d))
            .config(fast_config())
            .codec(LineCodec::plain()),
    );
    for cycle in 1..=5u64 {
        eventually::<A>(LONG, "connected", || s.handle.stats().connects == cycle).await;
        s.handle.reconnect_now();
    }
    eventually::<A>(LONG, "sixth connect", || s.handle.stats().connects == 6).await;
    assert_eq!(
        calls.load(Ordering::SeqCst),
        6,
        "one discovery per attempt, none cached"
    );
    s.drain();

    let host = format!("localhost:{}", server.addr().port());
    let l = Live::spawn::<A>(
        A::builder(Target::from(host.as_str()))
            .config(fast_config())
            .codec(LineCodec::plain()),
    );
    l.handle
        .send(b"via-dns".to_vec(), Delivery::AtMostOnce)
        .await
        .expect("delivered via localhost");
    eventually::<A>(LONG, "dns message", || {
        server.received().contains(&"via-dns".to_string())
    })
    .await;
}

fn batch_of(messages: &[&str]) -> Batch {
    let mut b = Batch::new();
    for m in messages {
        b.push(m.as_bytes());
    }
    b
}

/// Scenario 12: Batches: many messages as one entry, framed one by one, each acknowledged; a
/// batch caught on a dying connection comes back whole in doubt (or is replayed whole if
/// idempotent); an unencodable or late batch is refused and handed back.
pub async fn batches_travel_and_end_as_one<A: Adapter>() {
    let server = LineServer::start();
    server.set_reply(Some("+OK "));
    let cfg = fast_config()
        .with_heartbeat(None)
        .with_acks(AckMode::InOrder);
    let s = Live::spawn::<A>(line_session::<A>(server.addr(), cfg).acks(AckMode::InOrder));
    let first = s
        .handle
        .send_batch(batch_of(&["b1", "b2", "b3"]), Delivery::AtMostOnce);
    let single = s.handle.send(b"s1".to_vec(), Delivery::AtMostOnce);
    within::<A, _>(LONG, "batch acked", first)
        .await
        .expect("every message of the batch acknowledged");
    within::<A, _>(LONG, "single acked", single)
        .await
        .expect("acknowledged");
    assert_eq!(server.received(), ["b1", "b2", "b3", "s1"]);
    assert_eq!(s.handle.stats().delivered, 2, "a batch is one message");

    let bad = s
        .handle
        .send_batch(batch_of(&["fine", "line\nbreak"]), Delivery::AtMostOnce)
        .await
        .expect_err("unencodable");
    assert!(matches!(
        bad.outcome,
        Outcome::Rejected(RejectReason::Unencodable(_))
    ));
    assert_eq!(bad.batch, Some(batch_of(&["fine", "line\nbreak"])));

    server.set_silent(true);
    let n = s
        .handle
        .send_batch(batch_of(&["n1", "n2"]), Delivery::AtMostOnce);
    let i = s
        .handle
        .send_batch(batch_of(&["i1", "i2"]), Delivery::Idempotent);
    eventually::<A>(LONG, "written, unacked", || server.received().len() == 8).await;
    server.set_silent(false);
    server.kill_all();
    let doubt = within::<A, _>(LONG, "batch n outcome", n)
        .await
        .expect_err("in doubt");
    assert_eq!(doubt.outcome, Outcome::InDoubt);
    assert_eq!(
        doubt.batch,
        Some(batch_of(&["n1", "n2"])),
        "handed back whole"
    );
    within::<A, _>(LONG, "batch i replay", i)
        .await
        .expect("replayed whole and acknowledged");
    let log = server.received_with_conn();
    let count = |m: &str| log.iter().filter(|(_, l)| l == m).count();
    assert_eq!(
        (count("n1"), count("n2")),
        (1, 1),
        "in doubt never resent: {log:?}"
    );
    assert_eq!((count("i1"), count("i2")), (2, 2), "replayed once: {log:?}");
    let second: Vec<&str> = log.iter().skip(8).map(|(_, l)| l.as_str()).collect();
    assert_eq!(
        second,
        ["i1", "i2"],
        "the replay, in order, on the new connection"
    );

    s.handle.close(CloseMode::Immediate).await;
    let late = s
        .handle
        .send_batch(batch_of(&["late"]), Delivery::AtMostOnce)
        .await
        .expect_err("closed");
    assert_eq!(late.outcome, Outcome::Rejected(RejectReason::Closed));
    assert_eq!(late.batch, Some(batch_of(&["late"])));
}

/// Waits for the session's first failed attempt and checks that it failed for good, as a
/// refused handshake does (`PermissionDenied`, no retry). Returns the error text behind it.
pub async fn refused_for_good<A: Adapter>(s: &mut Live) -> String {
    let failed = s
        .wait_event::<A>(LONG, "refused attempt", |e| {
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

/// The outcome of a message sent to a session that gave up without ever connecting:
/// abandoned if it was queued when the session gave up, refused if it gave up first.
pub fn assert_never_sent(u: &Undelivered) {
    assert!(
        matches!(
            u.outcome,
            Outcome::Abandoned(AbandonReason::GaveUp) | Outcome::Rejected(RejectReason::Closed)
        ),
        "{:?}",
        u.outcome
    );
}

/// Scenario 13: A handshake with replies: the peer's greeting is read before the connection
/// is used, so it is neither delivered as data nor taken for an acknowledgement; a refusing
/// greeting fails the attempt for good, with the peer's words in the event.
pub async fn handshake_replies_are_read_before_use<A: Adapter>() {
    let server = LineServer::start();
    server.set_greeting(Some("HELLO v1"));
    server.set_reply(Some("+OK "));
    // No heartbeat: the bytes read are exactly the two replies.
    let cfg = fast_config()
        .with_acks(AckMode::InOrder)
        .with_heartbeat(None);
    let codec = LineCodec::plain()
        .with_greeting_replies(1)
        .with_handshake_error(b"-", NetError::PermissionDenied);
    let mut s = Live::spawn::<A>(
        A::builder(server.addr().into())
            .config(cfg.clone())
            .codec(codec.clone())
            .acks(AckMode::InOrder),
    );
    // Sent before the connection exists: the greeting must not confirm it.
    let early = s.handle.send(b"a".to_vec(), Delivery::AtMostOnce);
    within::<A, _>(LONG, "a acked", early)
        .await
        .expect("acknowledged by its own reply");
    s.handle
        .send(b"b".to_vec(), Delivery::AtMostOnce)
        .await
        .expect("acknowledged");
    let got = within::<A, _>(LONG, "replies", async {
        let mut got = Vec::new();
        while got.len() < 2 {
            got.push(s.inbound.next().await.expect("inbound open"));
        }
        got
    })
    .await;
    assert_eq!(
        got,
        [b"+OK a".to_vec(), b"+OK b".to_vec()],
        "greeting not delivered"
    );
    assert_eq!(server.received(), ["a", "b"]);
    assert_eq!(s.handle.stats().delivered, 2);
    assert_eq!(
        s.handle.stats().bytes_read,
        2 * b"+OK a\r\n".len() as u64,
        "the handshake's bytes are not counted as traffic"
    );

    // Two replies in one read with nothing in flight: the first is a lie that ends the
    // connection; the second, read from the dead socket's buffer, is not delivered.
    server.send_to_all(b"bogus1\r\nbogus2\r\n");
    s.wait_event::<A>(LONG, "the lie ends the connection", |e| {
        matches!(e.notification, Notification::Disconnected { .. })
    })
    .await;
    s.wait_event::<A>(LONG, "reconnect", |e| is_connected(&e.notification))
        .await;
    within::<A, _>(
        LONG,
        "c acked",
        s.handle.send(b"c".to_vec(), Delivery::AtMostOnce),
    )
    .await
    .expect("acknowledged on the new connection");
    let mut after = Vec::new();
    while after.last().map(Vec::as_slice) != Some(&b"+OK c"[..]) {
        let line = within::<A, _>(LONG, "inbound", s.inbound.next()).await;
        after.push(line.expect("inbound open"));
    }
    assert_eq!(after, [b"bogus1".to_vec(), b"+OK c".to_vec()]);

    let refusing = LineServer::start();
    refusing.set_greeting(Some("-DENIED no entry"));
    let mut r = Live::spawn::<A>(
        A::builder(refusing.addr().into())
            .config(cfg)
            .codec(codec)
            .acks(AckMode::InOrder),
    );
    let never = r.handle.send(b"x".to_vec(), Delivery::AtMostOnce);
    let detail = refused_for_good::<A>(&mut r).await;
    assert!(detail.contains("-DENIED no entry"), "{detail}");
    let u = within::<A, _>(LONG, "abandoned", never)
        .await
        .expect_err("never connected");
    assert_never_sent(&u);
    assert!(refusing.received().is_empty());
}
