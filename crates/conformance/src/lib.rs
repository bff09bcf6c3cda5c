//! # redial-conformance
//!
//! The conformance suite of redial adapters: every scenario written once, run against every
//! adapter, in this repository's (tokio, smol, blocking, tokio's `LocalSet`, monoio) and in
//! yours. Port redial to an executor, implement [`Suite`] (a runtime that runs tasks on the
//! current thread) or [`Adapter`] (one that spawns `Send` tasks: it is a [`Suite`] through a
//! blanket impl), and stamp the scenarios out in a test file of your crate:
//!
//! ```ignore
//! // tests/conformance.rs of your adapter
//! redial_conformance::conformance_tests!(my_adapter_tests::MyAdapter);
//! ```
//!
//! A [`Suite`] says how to build a session, start it the way the runtime runs tasks, run a
//! built task on its own, block on a future and sleep on that runtime. The servers and the
//! fault proxy ([`redial_testkit`]) run on threads of their own (with a private tokio
//! runtime inside the testkit), so the scenarios contain no runtime-specific code and your
//! adapter's tests pull in no other executor's adapter.
//!
//! What only one runtime can do (tokio's virtual clock, tearing a runtime down under a live
//! session) belongs in that adapter's own tests; what measures the whole process (descriptors,
//! idle CPU) needs a test binary of its own, so no other test's work is counted (the
//! workspace's `tests/tests/hygiene.rs` shows how).
//!
//! | scenario | what it pins |
//! |---|---|
//! | [`exchange_and_heartbeat`] | data both ways, the peer's PING answered, our PING/PONG keeps an idle connection, unencodable messages, close ends the streams |
//! | [`down_at_start_follows_policy`] | attempt times follow the backoff (with and without jitter), errors carry OS text and address |
//! | [`restart_flushes_queue_in_order`] | a restart: queued messages flushed in order on the new connection |
//! | [`give_up_abandons_everything`] | give-up: every queued message handed back, streams end, later sends refused |
//! | [`blackhole_detected_by_heartbeat`] | a half-open peer found by interval + timeout; recovery after heal |
//! | [`old_socket_never_disturbs_new`] | epochs: the replaced socket's late bytes never reach the new connection |
//! | [`ledger_in_doubt_and_replay`] | in doubt vs replayed, the server's log as witness |
//! | [`queue_full_rejects`] | a bounded queue rejects at once, with the message |
//! | [`graceful_close_drains_immediate_abandons`] | both close modes, and a drain that cannot finish |
//! | [`bad_input_reconnects_bad_config_refused`] | oversized and malformed frames reconnect; bad configs never spawn |
//! | [`rediscovers_every_cycle`] | discovery afresh on every attempt; host names resolved and reported |
//! | [`batches_travel_and_end_as_one`] | batches: one entry, one outcome, replayed or in doubt whole |
//! | [`handshake_replies_are_read_before_use`] | a handshake with replies; requests get their own replies; a reply to nothing is a protocol error |
//! | [`events_are_bounded`] | an unread event stream keeps its capacity and counts what it lost |
//! | [`dropping_handles_ends_the_session`] | the last handle dropped: a graceful close that still delivers |
//! | [`custom_connector_and_build`] | a user connector and socket factory; a task built, not spawned, run on a thread of its own |
//! | [`blocked_write_keeps_reading_and_times_out`] | a peer that stops reading: reads go on, the write deadline kills it |
//! | [`streams_end_when_the_session_ends`] | a task polled by reference: its streams end with the session, not with the task |
//!
//! Timing assertions state their tolerance next to the bound they check. The machines are
//! 2-core and the whole workspace's tests run in parallel, so tolerances are generous; the
//! behaviour they guard (e.g. "detected at all within seconds" vs "never") is far apart.

use std::future::Future;
use std::io::Write as _;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::future::{BoxFuture, LocalBoxFuture};
use futures::{FutureExt, StreamExt};
use redial_core::{
    AbandonReason, AckMode, Backoff, Batch, CloseMode, Config, ConfigError, Delivery,
    DisconnectReason, FrameError, GiveUp, GiveUpWhen, Heartbeat, Jitter, LengthCodec, LineCodec,
    NetError, Notification, Outcome, Protocol, QueueLimits, RejectReason, State,
};
use redial_driver::socket2::{Domain, Socket, Type};
use redial_driver::{
    Builder, Connector, Dial, Discover, Endpoint, Ends, Events, Handle, Inbound, Runtime,
    SessionEvent, SessionTask, SocketFactory, Spawn, Target, Undelivered,
};

use redial_testkit::proxy::{FaultProxy, Mode};
use redial_testkit::servers::{LenServer, LineServer};

/// Locks `m`, ignoring poisoning: a scenario that panicked must not cascade into others.
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// What the conformance suite needs from any adapter: `Send` or local (thread-per-core).
///
/// Every [`Adapter`] (a runtime that spawns `Send` tasks) is a `Suite` already; a local
/// runtime (monoio, tokio's `LocalSet`) implements this directly, spawning with
/// [`Builder::spawn_local`].
pub trait Suite: 'static {
    /// The adapter's runtime.
    type Rt: Runtime;
    /// The adapter's TCP/Unix connector.
    type Conn: Connector;
    /// A name for messages.
    const NAME: &'static str;
    /// A session builder on this runtime, with the adapter's own connector.
    fn builder(target: Target) -> Builder<Self::Rt, Self::Conn>;
    /// The adapter's TCP connector, making every socket with `factory`.
    fn tcp_connector(factory: SocketFactory) -> Self::Conn;
    /// Starts a session the way this runtime runs tasks.
    fn spawn<P: Protocol + Send + 'static>(
        b: Builder<Self::Rt, Self::Conn, P>,
    ) -> Result<Ends, ConfigError>;
    /// Runs a session task built (not spawned) with a user's connector, on its own: a thread
    /// of its own for a `Send` runtime, a task of the current thread for a local one.
    fn run_task<P: Protocol + Send + 'static>(
        task: SessionTask<Self::Rt, CountingConnector<Self::Conn>, P>,
    ) -> TaskRun;
    /// Runs a scenario to completion on this runtime (sessions spawned inside run there).
    fn block_on<F: Future<Output = ()> + 'static>(f: F);
    /// Sleeps on this runtime's timer.
    fn sleep(d: Duration) -> LocalBoxFuture<'static, ()>;
}

/// A session task run by [`Suite::run_task`].
pub struct TaskRun {
    done: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl TaskRun {
    /// Runs `task` on a thread of its own with `block_on`.
    pub fn thread<F: Future<Output = ()> + Send + 'static>(
        task: F,
        block_on: fn(futures::future::BoxFuture<'static, ()>),
    ) -> Self {
        let done = Arc::new(AtomicBool::new(false));
        let d = Arc::clone(&done);
        let thread = std::thread::spawn(move || {
            block_on(Box::pin(task));
            d.store(true, Ordering::SeqCst);
        });
        TaskRun {
            done,
            thread: Some(thread),
        }
    }

    /// Wraps `task` so the returned [`TaskRun`] sees it end; spawn the returned future on
    /// the current thread's executor.
    pub fn local<F: Future<Output = ()> + 'static>(task: F) -> (Self, impl Future<Output = ()>) {
        let done = Arc::new(AtomicBool::new(false));
        let d = Arc::clone(&done);
        let run = async move {
            task.await;
            d.store(true, Ordering::SeqCst);
        };
        (TaskRun { done, thread: None }, run)
    }

    /// Whether the task has ended.
    pub fn is_finished(&self) -> bool {
        self.done.load(Ordering::SeqCst)
    }

    /// Waits for its thread, if it has one (a panic there fails the test).
    pub fn join(mut self) {
        if let Some(t) = self.thread.take() {
            t.join().expect("the task's thread did not panic");
        }
    }
}

impl<T: Adapter> Suite for T {
    type Rt = T::Rt;
    type Conn = T::Conn;
    const NAME: &'static str = T::NAME;

    fn builder(target: Target) -> Builder<Self::Rt, Self::Conn> {
        T::builder(target)
    }

    fn tcp_connector(factory: SocketFactory) -> Self::Conn {
        T::tcp_connector(factory)
    }

    fn spawn<P: Protocol + Send + 'static>(
        b: Builder<Self::Rt, Self::Conn, P>,
    ) -> Result<Ends, ConfigError> {
        b.spawn()
    }

    fn run_task<P: Protocol + Send + 'static>(
        task: SessionTask<Self::Rt, CountingConnector<Self::Conn>, P>,
    ) -> TaskRun {
        TaskRun::thread(task, |f| T::block_on(f))
    }

    fn block_on<F: Future<Output = ()> + 'static>(f: F) {
        T::block_on(f)
    }

    fn sleep(d: Duration) -> LocalBoxFuture<'static, ()> {
        T::sleep(d)
    }
}

/// An adapter whose runtime spawns `Send` tasks (tokio, smol, redial-blocking): what the
/// real-fault and TLS suites need, and, through the blanket [`Suite`] impl, the conformance
/// suite too.
///
/// The bounds on the associated types are what makes a session task `Send` (its timer, its
/// resolver, its connector's dial and stream), so scenarios can spawn sessions of any
/// protocol without naming the adapter.
pub trait Adapter: 'static {
    /// The adapter's runtime (it spawns sessions as `Send` tasks).
    type Rt: Spawn<Sleep: Send, Resolve: Send> + Send + Sync;
    /// The adapter's TCP/Unix connector.
    type Conn: Connector<Future: Send, Stream: Send> + Send + Sync;
    /// A name for messages.
    const NAME: &'static str;
    /// A session builder on this runtime, with the adapter's own connector.
    fn builder(target: Target) -> Builder<Self::Rt, Self::Conn>;
    /// The adapter's TCP connector, making every socket with `factory`.
    fn tcp_connector(factory: SocketFactory) -> Self::Conn;
    /// Runs a scenario to completion on this runtime (sessions spawned inside run there).
    fn block_on<F: Future<Output = ()> + 'static>(f: F);
    /// Sleeps on this runtime's timer.
    fn sleep(d: Duration) -> BoxFuture<'static, ()>;
}

/// Generates one `#[test]` per conformance scenario for a [`Suite`] (every [`Adapter`] is one).
#[macro_export]
macro_rules! conformance_tests {
    ($adapter:ty) => {
        $crate::conformance_tests!(@each $adapter;
            exchange_and_heartbeat, down_at_start_follows_policy, restart_flushes_queue_in_order,
            give_up_abandons_everything, blackhole_detected_by_heartbeat,
            old_socket_never_disturbs_new, ledger_in_doubt_and_replay, queue_full_rejects,
            graceful_close_drains_immediate_abandons, bad_input_reconnects_bad_config_refused,
            rediscovers_every_cycle, batches_travel_and_end_as_one,
            handshake_replies_are_read_before_use, events_are_bounded,
            dropping_handles_ends_the_session, custom_connector_and_build,
            blocked_write_keeps_reading_and_times_out, streams_end_when_the_session_ends,
            slow_consumer_holds_the_socket_not_memory);
    };
    (@each $adapter:ty; $($name:ident),*) => {
        $(
            #[test]
            fn $name() {
                <$adapter as $crate::Suite>::block_on(
                    $crate::bounded::<$adapter>($crate::$name::<$adapter>()),
                );
            }
        )*
    };
}

/// How long one whole scenario may take: a receipt or stream that never resolves fails the
/// test with a message instead of hanging the run.
pub const SCENARIO_LIMIT: Duration = Duration::from_secs(120);

/// Runs a scenario, failing it if it takes longer than [`SCENARIO_LIMIT`].
pub async fn bounded<A: Suite>(scenario: impl Future<Output = ()>) {
    within::<A, _>(SCENARIO_LIMIT, "the scenario", scenario).await;
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
    /// Spawns a session of any protocol on the adapter.
    pub fn spawn<A: Suite, P: Protocol + Send + 'static>(b: Builder<A::Rt, A::Conn, P>) -> Live {
        let (handle, inbound, events) = A::spawn(b).expect("valid config");
        Live::from_ends(handle, inbound, events)
    }

    /// Wraps the ends of a session built (or spawned) elsewhere.
    pub fn from_ends(handle: Handle, inbound: Inbound, events: Events) -> Live {
        Live {
            handle,
            inbound,
            events,
            seen: Vec::new(),
            cursor: 0,
        }
    }

    /// Wraps what [`Builder::spawn`] returned.
    pub fn from_ends_of((handle, inbound, events): Ends) -> Live {
        Live::from_ends(handle, inbound, events)
    }

    /// Moves every event already delivered into `seen`.
    pub fn drain(&mut self) {
        while let Some(Some(e)) = self.events.next().now_or_never() {
            self.seen.push(e);
        }
    }

    /// Waits (bounded) for an event matching `f` that comes after the one the previous wait
    /// matched, and returns it. Every event stays in `seen`.
    pub async fn wait_event<A: Suite>(
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
pub async fn eventually<A: Suite>(timeout: Duration, what: &str, mut cond: impl FnMut() -> bool) {
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
pub async fn within<A: Suite, T>(timeout: Duration, what: &str, f: impl Future<Output = T>) -> T {
    let sleep = A::sleep(timeout);
    futures::pin_mut!(f);
    match futures::future::select(f, sleep).await {
        futures::future::Either::Left((v, _)) => v,
        futures::future::Either::Right(_) => {
            panic!("[{}] {what} did not finish within {timeout:?}", A::NAME)
        }
    }
}

/// Reads a stream to its end (bounded) and returns what it yielded.
pub async fn until_end<A: Suite, S: futures::Stream + Unpin>(
    timeout: Duration,
    what: &str,
    s: &mut S,
) -> Vec<S::Item> {
    within::<A, _>(timeout, what, async {
        let mut all = Vec::new();
        while let Some(x) = s.next().await {
            all.push(x);
        }
        all
    })
    .await
}

fn is_connected(n: &Notification) -> bool {
    matches!(n, Notification::Connected { .. })
}

fn is_disconnected(n: &Notification) -> bool {
    matches!(n, Notification::Disconnected { .. })
}

/// A line session (the builder's default protocol: `Framed<LineCodec::plain()>`, PING/PONG).
fn line_session<A: Suite>(addr: SocketAddr, config: Config) -> Builder<A::Rt, A::Conn> {
    A::builder(addr.into()).config(config)
}

const LONG: Duration = Duration::from_secs(10);

/// Scenario 1: Messages flow both ways; the peer's PING is answered; our PING/PONG keeps an
/// idle connection alive and gives RTT samples; a message the codec cannot frame is handed
/// back at once; a close ends the inbound stream and refuses later messages.
pub async fn exchange_and_heartbeat<A: Suite>() {
    let server = LineServer::start();
    let mut s = Live::spawn::<A, _>(line_session::<A>(server.addr(), fast_config()));
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
    // The peer's own PING is answered with PONG (logged by the server as a line) and is not
    // data for the user.
    server.send_to_all(b"PING\r\n");
    eventually::<A>(LONG, "PONG to the server's PING", || {
        server.received().iter().any(|l| l == "PONG")
    })
    .await;
    // Idle for eight heartbeat intervals: every ping is answered and the connection stays up.
    let (pings_before, pongs_before) = (server.pings(), s.handle.stats().pongs);
    eventually::<A>(LONG, "eight more pings answered", || {
        server.pings() >= pings_before + 8 && s.handle.stats().pongs >= pongs_before + 8
    })
    .await;
    let stats = s.handle.stats();
    assert_eq!(s.handle.state(), State::Connected);
    assert_eq!(
        (stats.connects, stats.liveness_timeouts),
        (1, 0),
        "an idle, answered connection was never dropped"
    );
    assert!(stats.srtt.is_some(), "PONGs give RTT samples");
    assert_eq!(server.connections(), 1);
    assert_eq!(
        s.inbound.next().now_or_never(),
        None,
        "no PING or PONG surfaced as data"
    );

    // A line payload with a line break cannot be framed: handed back at once, never sent.
    let bad = s
        .handle
        .send(b"a\nb".to_vec(), Delivery::AtMostOnce)
        .await
        .expect_err("unencodable");
    assert!(
        matches!(bad.frame_error(), Some(FrameError::Malformed { .. })),
        "{bad:?}"
    );
    assert_eq!(bad.payload, b"a\nb");

    within::<A, _>(LONG, "close", s.handle.close(CloseMode::Immediate)).await;
    assert_eq!(s.handle.state(), State::Closed);
    assert!(s.handle.is_closed());
    assert_eq!(
        within::<A, _>(LONG, "inbound ends", s.inbound.next()).await,
        None
    );
    let late = s
        .handle
        .send(b"late".to_vec(), Delivery::AtMostOnce)
        .await
        .expect_err("closed");
    assert_eq!(
        (late.outcome, late.payload.as_slice()),
        (Outcome::Rejected(RejectReason::Closed), &b"late"[..])
    );
    assert!(!server.received().iter().any(|l| l == "a" || l == "late"));
}

/// Scenario 2: Server down at start: attempts follow the policy (no jitter: exact delays; full
/// jitter: within `[0, base]`), never above the cap. Tolerance: +150 ms late per gap, 2 ms
/// early.
pub async fn down_at_start_follows_policy<A: Suite>() {
    for jitter in [Jitter::None, Jitter::Full] {
        let backoff = Backoff::new()
            .with_initial(Duration::from_millis(50))
            .with_cap(Duration::from_millis(200))
            .with_jitter(jitter);
        let cfg = fast_config().with_backoff(backoff);
        let mut s = Live::spawn::<A, _>(line_session::<A>(dead_addr(), cfg));
        let failed = |e: &SessionEvent| {
            matches!(
                e.notification,
                Notification::AttemptFailed { attempt: 6, .. }
            )
        };
        s.wait_event::<A>(LONG, "six failed attempts", failed).await;
        let fails: Vec<_> = s
            .seen
            .iter()
            .filter_map(|e| match &e.notification {
                Notification::AttemptFailed {
                    attempt,
                    addr,
                    error,
                    next_delay,
                    ..
                } => {
                    assert!(
                        e.detail.is_some(),
                        "attempt failures carry the OS error text"
                    );
                    assert_eq!(*error, NetError::Refused);
                    Some((e.at, *attempt, *addr, next_delay.expect("never gives up")))
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
pub async fn restart_flushes_queue_in_order<A: Suite>() {
    let server = LineServer::start();
    let mut s = Live::spawn::<A, _>(line_session::<A>(server.addr(), fast_config()));
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
    s.wait_event::<A>(LONG, "disconnect", |e| is_disconnected(&e.notification))
        .await;
    let receipts: Vec<_> = ["c", "d", "e"]
        .iter()
        .map(|m| s.handle.send(m.as_bytes().to_vec(), Delivery::AtMostOnce))
        .collect();
    // A failed attempt proves the server is down and the messages wait in the queue.
    let failed = s
        .wait_event::<A>(LONG, "a refused attempt", |e| {
            matches!(e.notification, Notification::AttemptFailed { .. })
        })
        .await;
    assert!(failed.detail.is_some(), "{failed:?}");
    assert_ne!(s.handle.state(), State::Connected);
    server.start_again();
    for r in receipts {
        within::<A, _>(LONG, "queued delivery", r)
            .await
            .expect("delivered after restart");
    }
    eventually::<A>(LONG, "five lines", || server.received().len() >= 5).await;
    assert_eq!(server.received(), ["a", "b", "c", "d", "e"]);
    let log = server.received_with_conn();
    assert!(log[2..]
        .iter()
        .all(|(c, _)| *c == log[2].0 && *c > log[0].0));
    assert!(s.handle.stats().reconnects >= 1);
}

/// Scenario 4: Give-up: after the policy's limits the session closes and every queued message
/// comes back abandoned, with its payload; both streams end; later messages are refused.
pub async fn give_up_abandons_everything<A: Suite>() {
    let cfg = fast_config().with_give_up(GiveUp {
        max_failures: Some(3),
        max_elapsed: None,
        when: GiveUpWhen::Either,
    });
    let mut s = Live::spawn::<A, _>(line_session::<A>(dead_addr(), cfg));
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
    let fails: Vec<SessionEvent> = s
        .seen
        .iter()
        .filter(|e| matches!(e.notification, Notification::AttemptFailed { .. }))
        .cloned()
        .collect();
    assert_eq!(fails.len(), 3, "{:#?}", s.seen);
    let detail = fails[0]
        .detail
        .as_deref()
        .unwrap_or_default()
        .to_lowercase();
    assert!(detail.contains("refused"), "the OS error text: {detail:?}");
    assert!(
        matches!(
            fails[2].notification,
            Notification::AttemptFailed {
                next_delay: None,
                ..
            }
        ),
        "the last failure says there is no next attempt"
    );
    let late = s.handle.send(b"late".to_vec(), Delivery::AtMostOnce).await;
    assert_eq!(
        late.expect_err("closed").outcome,
        Outcome::Rejected(RejectReason::Closed)
    );
    until_end::<A, _>(LONG, "events end", &mut s.events).await;
    let inbound = until_end::<A, _>(LONG, "inbound ends", &mut s.inbound).await;
    assert!(inbound.is_empty());
}

/// Scenario 5: Blackhole (half-open): found within interval + timeout (+400 ms tolerance); a
/// plain socket in the same cut notices nothing; after heal the session reconnects.
pub async fn blackhole_detected_by_heartbeat<A: Suite>() {
    let server = LineServer::start();
    let proxy = FaultProxy::start(server.addr());
    let cfg = fast_config();
    let hb = cfg.heartbeat.expect("on");
    let mut s = Live::spawn::<A, _>(line_session::<A>(proxy.addr(), cfg));
    s.handle
        .send(b"x".to_vec(), Delivery::AtMostOnce)
        .await
        .expect("delivered");
    let mut plain = TcpStream::connect(proxy.addr()).expect("plain connect");
    let cut = Instant::now();
    proxy.set_mode(Mode::Blackhole);
    s.wait_event::<A>(LONG, "heartbeat timeout", |e| {
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
    assert!(s.handle.stats().liveness_timeouts >= 1);
    eventually::<A>(LONG, "y received", || {
        server.received().iter().any(|l| l == "y")
    })
    .await;
}

/// Scenario 6: Epochs: the old socket (slow proxy: late bytes, delayed close) never disturbs
/// the new connection.
pub async fn old_socket_never_disturbs_new<A: Suite>() {
    let server = LineServer::start();
    let proxy = FaultProxy::start(server.addr());
    let mut s = Live::spawn::<A, _>(line_session::<A>(
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
    // The server now echoes. The echo of "after" is read by the proxy after the old bytes, so
    // it is due after them: once it arrives, the old socket's late bytes have had their
    // chance to leak (the window is an event, not a sleep).
    server.set_reply(Some("re:"));
    s.handle
        .send(b"after".to_vec(), Delivery::AtMostOnce)
        .await
        .expect("delivered");
    let echo = within::<A, _>(LONG, "the echo on the new connection", s.inbound.next()).await;
    assert_eq!(
        echo.as_deref(),
        Some(&b"re:after"[..]),
        "the first inbound line is the new connection's"
    );
    proxy.set_latency_down(Duration::ZERO);
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
    assert_eq!(s.count(is_disconnected), 1, "only the replaced one ended");
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

/// Scenario 7: Ledger: at-most-once messages written before a cut come back in doubt and are
/// never resent; idempotent ones are replayed exactly once, in order. The server log is the
/// witness.
pub async fn ledger_in_doubt_and_replay<A: Suite>() {
    let server = LineServer::start();
    server.set_reply(Some("+OK "));
    let cfg = fast_config().with_heartbeat(None);
    let s = Live::spawn::<A, _>(line_session::<A>(server.addr(), cfg).acks(AckMode::InOrder));
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
    let stats = s.handle.stats();
    assert_eq!((stats.in_doubt, stats.replayed), (1, 2), "{stats:?}");
}

/// Scenario 8: Queue full: rejected at once with the message handed back; memory stays
/// bounded.
pub async fn queue_full_rejects<A: Suite>() {
    let q = QueueLimits {
        max_messages: 4,
        max_bytes: 1 << 16,
        max_message: 1 << 10,
        overflow: redial_core::Overflow::Reject,
    };
    let s = Live::spawn::<A, _>(line_session::<A>(dead_addr(), fast_config().with_queue(q)));
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

/// Scenario 9: Graceful close drains within its deadline; immediate close abandons; a drain
/// that cannot finish abandons at its deadline.
pub async fn graceful_close_drains_immediate_abandons<A: Suite>() {
    let server = LineServer::start();
    let s = Live::spawn::<A, _>(line_session::<A>(server.addr(), fast_config()));
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
    let expected: Vec<String> = (0..100).map(|i| format!("m{i}")).collect();
    assert_eq!(server.received(), expected, "in order");
    assert_eq!(s.handle.state(), State::Closed);

    let down = Live::spawn::<A, _>(line_session::<A>(dead_addr(), fast_config()));
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

    let down = Live::spawn::<A, _>(line_session::<A>(dead_addr(), fast_config()));
    let r = down.handle.send(b"y".to_vec(), Delivery::AtMostOnce);
    down.handle.close(CloseMode::Immediate).await;
    assert_eq!(
        r.await.expect_err("abandoned").outcome,
        Outcome::Abandoned(AbandonReason::Closed)
    );
}

/// Scenario 10: Bad input: oversized and malformed inbound frames close that connection with a
/// typed error and the session recovers; bad config is refused before anything is spawned.
pub async fn bad_input_reconnects_bad_config_refused<A: Suite>() {
    // Refused configs first: the probe server must see no connection by the end of the
    // scenario (which takes well over a second).
    let probe = LineServer::start();
    let bad = fast_config().with_heartbeat(Some(Heartbeat {
        interval: Duration::ZERO,
        ..Heartbeat::default()
    }));
    let err = A::spawn(A::builder(probe.addr().into()).config(bad)).expect_err("refused");
    assert_eq!(err, ConfigError::ZeroDuration("heartbeat.interval"));
    assert_eq!(
        err.to_string(),
        "heartbeat.interval must be greater than zero"
    );
    let err = A::spawn(
        A::builder(probe.addr().into())
            .config(Config::default().with_connect_timeout(Duration::ZERO)),
    )
    .expect_err("refused");
    assert_eq!(err, ConfigError::ZeroDuration("connect_timeout"));
    let err = A::spawn(A::builder(probe.addr().into()).codec(LineCodec::plain().with_max_line(0)))
        .expect_err("refused");
    assert!(matches!(err, ConfigError::Protocol(_)), "{err:?}");
    let err = A::spawn(A::builder(Target::from(Vec::<SocketAddr>::new()))).expect_err("refused");
    assert_eq!(err, ConfigError::NoAddresses);

    let server = LineServer::start();
    let b = A::builder(server.addr().into())
        .config(fast_config())
        .codec(LineCodec::plain().with_max_line(64));
    let mut s = Live::spawn::<A, _>(b);
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
    let mut s = Live::spawn::<A, _>(
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

    assert_eq!(
        probe.connections(),
        0,
        "nothing was spawned for a refused config"
    );
}

struct CountingDiscover {
    addr: SocketAddr,
    calls: Arc<AtomicUsize>,
}

impl Discover for CountingDiscover {
    fn discover(&self) -> BoxFuture<'static, std::io::Result<Vec<Endpoint>>> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        let addr = self.addr;
        async move { Ok(vec![Endpoint::ip(addr)]) }.boxed()
    }
}

/// Scenario 11: Discovery is refreshed on every reconnect cycle; a `localhost` target is
/// resolved (on every attempt) and its events name the host.
pub async fn rediscovers_every_cycle<A: Suite>() {
    let server = LineServer::start();
    let calls = Arc::new(AtomicUsize::new(0));
    let d = CountingDiscover {
        addr: server.addr(),
        calls: calls.clone(),
    };
    let mut s = Live::spawn::<A, _>(A::builder(Target::discover(d)).config(fast_config()));
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
    let mut l = Live::spawn::<A, _>(A::builder(Target::from(host.as_str())).config(fast_config()));
    l.handle
        .send(b"via-dns".to_vec(), Delivery::AtMostOnce)
        .await
        .expect("delivered via localhost");
    eventually::<A>(LONG, "dns message", || {
        server.received().contains(&"via-dns".to_string())
    })
    .await;
    // `localhost` may resolve to ::1 first (nothing listens there); the session rotates, so
    // some attempt connects, and its event names the host it was found under.
    let connected = l
        .wait_event::<A>(LONG, "connected", |e| is_connected(&e.notification))
        .await;
    let endpoint = connected.endpoint.expect("a connection names its endpoint");
    assert_eq!(endpoint.host.as_deref(), Some("localhost"), "{endpoint}");
    assert_eq!(
        endpoint.socket_addr().map(|a| a.port()),
        Some(server.addr().port())
    );
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
pub async fn batches_travel_and_end_as_one<A: Suite>() {
    let server = LineServer::start();
    server.set_reply(Some("+OK "));
    let cfg = fast_config().with_heartbeat(None);
    let s = Live::spawn::<A, _>(line_session::<A>(server.addr(), cfg).acks(AckMode::InOrder));
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
pub async fn refused_for_good<A: Suite>(s: &mut Live) -> String {
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

/// Scenario 13: A handshake with replies: the peer's greeting is read before the connection is
/// used, so it is neither data nor a reply; every request gets its own reply (with framed
/// acks, every data line answers the oldest request); a reply to nothing is a protocol error
/// (`UnexpectedReply`) and a clean reconnect; a refusing greeting fails the attempt for good,
/// with the peer's words in the event.
pub async fn handshake_replies_are_read_before_use<A: Suite>() {
    let server = LineServer::start();
    server.set_greeting(Some("HELLO v1"));
    server.set_reply(Some("+OK "));
    // No heartbeat: the bytes read are exactly the greeting and the replies.
    let cfg = fast_config().with_heartbeat(None);
    let codec = LineCodec::plain()
        .with_greeting_replies(1)
        .with_handshake_error(b"-", NetError::PermissionDenied);
    let mut s = Live::spawn::<A, _>(
        A::builder(server.addr().into())
            .config(cfg.clone())
            .codec(codec.clone())
            .acks(AckMode::InOrder),
    );
    // Sent before the connection exists: the greeting must not answer it.
    let early = s.handle.request(b"a".to_vec(), Delivery::AtMostOnce);
    let a = within::<A, _>(LONG, "a answered", early)
        .await
        .expect("answered by its own reply");
    assert_eq!(a.body, b"+OK a", "the greeting is not a's reply");
    assert!(!a.refused);
    let b = within::<A, _>(
        LONG,
        "b answered",
        s.handle.request(b"b".to_vec(), Delivery::AtMostOnce),
    )
    .await
    .expect("answered");
    assert_eq!(b.body, b"+OK b");
    assert_eq!(server.received(), ["a", "b"]);
    let stats = s.handle.stats();
    assert_eq!((stats.delivered, stats.replies), (2, 2), "{stats:?}");
    assert_eq!(stats.messages_received, 0, "the greeting is not data");
    assert_eq!(
        stats.bytes_read,
        (b"HELLO v1\r\n".len() + 2 * b"+OK a\r\n".len()) as u64,
        "every byte read is counted, the handshake's too"
    );
    assert_eq!(
        s.inbound.next().now_or_never(),
        None,
        "nothing on the inbound stream"
    );

    // Two replies in one read with nothing in flight: the first answers nothing, a protocol
    // error that ends the connection; the second, from the dead connection's buffer, is
    // delivered nowhere.
    server.send_to_all(b"bogus1\r\nbogus2\r\n");
    s.wait_event::<A>(LONG, "the reply to nothing ends the connection", |e| {
        matches!(
            e.notification,
            Notification::Disconnected {
                reason: DisconnectReason::Protocol(FrameError::UnexpectedReply),
                ..
            }
        )
    })
    .await;
    s.wait_event::<A>(LONG, "reconnect", |e| is_connected(&e.notification))
        .await;
    let c = within::<A, _>(
        LONG,
        "c answered",
        s.handle.request(b"c".to_vec(), Delivery::AtMostOnce),
    )
    .await
    .expect("answered on the new connection");
    assert_eq!(c.body, b"+OK c", "bogus2 did not answer c");
    assert_eq!(
        s.inbound.next().now_or_never(),
        None,
        "bogus lines are not data"
    );

    let refusing = LineServer::start();
    refusing.set_greeting(Some("-DENIED no entry"));
    let mut r = Live::spawn::<A, _>(
        A::builder(refusing.addr().into())
            .config(cfg)
            .codec(codec)
            .acks(AckMode::InOrder),
    );
    let never = r.handle.send(b"x".to_vec(), Delivery::AtMostOnce);
    let detail = refused_for_good::<A>(&mut r).await;
    assert!(detail.contains("-DENIED no entry"), "{detail}");
    assert_eq!(
        r.count(
            |n| matches!(n, Notification::PeerSaid { text, .. } if text.starts_with(b"-DENIED"))
        ),
        1,
        "the peer's words come as an event of their own too"
    );
    let u = within::<A, _>(LONG, "abandoned", never)
        .await
        .expect_err("never connected");
    assert_never_sent(&u);
    assert!(refusing.received().is_empty());
}

/// Scenario 14: An event stream kept but never read holds at most its capacity: the oldest
/// events are dropped, and the first event read then counts them in `missed`.
pub async fn events_are_bounded<A: Suite>() {
    // Nothing listens: every attempt fails at once, a few events each.
    let cfg = fast_config().with_backoff(
        Backoff::new()
            .with_initial(Duration::from_millis(1))
            .with_cap(Duration::from_millis(1))
            .with_jitter(Jitter::None),
    );
    let mut s = Live::from_ends_of(
        A::spawn(A::builder(dead_addr().into()).config(cfg).event_capacity(8))
            .expect("valid config"),
    );
    eventually::<A>(LONG, "20 failed attempts", || {
        s.handle.stats().failures >= 20
    })
    .await;
    within::<A, _>(LONG, "close", s.handle.close(CloseMode::Immediate)).await;
    let all = until_end::<A, _>(LONG, "the events end", &mut s.events).await;
    assert!(all.len() <= 8, "{} events kept: {all:#?}", all.len());
    // 20 attempts are far more than 8 events (attempt started and failed, each).
    assert!(all[0].missed >= 32, "{all:#?}");
    assert!(all[1..].iter().all(|e| e.missed == 0), "{all:#?}");
    assert!(
        matches!(
            all.last().map(|e| &e.notification),
            Some(Notification::StateChanged {
                to: State::Closed,
                ..
            })
        ),
        "the newest are kept: {all:#?}"
    );
}

/// Scenario 15: Dropping the last handle closes the session gracefully: what was queued is
/// still delivered, then both streams end.
pub async fn dropping_handles_ends_the_session<A: Suite>() {
    let server = LineServer::start();
    let s = Live::spawn::<A, _>(line_session::<A>(server.addr(), fast_config()));
    let clone = s.handle.clone();
    let r = s.handle.send(b"bye".to_vec(), Delivery::AtMostOnce);
    drop(clone);
    assert!(!s.handle.is_closed(), "a clone dropped closes nothing");
    let Live {
        handle,
        mut inbound,
        mut events,
        ..
    } = s;
    drop(handle);
    within::<A, _>(LONG, "bye delivered", r)
        .await
        .expect("delivered by the drain");
    let all = until_end::<A, _>(LONG, "events end after the last handle", &mut events).await;
    assert!(
        matches!(
            all.last().map(|e| &e.notification),
            Some(Notification::StateChanged {
                to: State::Closed,
                ..
            })
        ),
        "{all:#?}"
    );
    until_end::<A, _>(LONG, "inbound ends", &mut inbound).await;
    eventually::<A>(LONG, "bye", || server.received() == ["bye"]).await;
}

/// A connector that counts its dials and hands them to the adapter's.
pub struct CountingConnector<C> {
    inner: C,
    dials: Arc<AtomicUsize>,
}

impl<C: Connector> Connector for CountingConnector<C> {
    type Stream = C::Stream;
    type Future = C::Future;

    fn connect(&self, dial: &Dial) -> C::Future {
        self.dials.fetch_add(1, Ordering::SeqCst);
        self.inner.connect(dial)
    }
}

/// A socket factory that makes each socket on a fresh thread (as one in a network namespace
/// must), counting them; `send_buffer` shrinks `SO_SNDBUF` when set.
fn thread_socket_factory(made: Arc<AtomicUsize>, send_buffer: Option<usize>) -> SocketFactory {
    Arc::new(move |e: &Endpoint| {
        made.fetch_add(1, Ordering::SeqCst);
        let addr = e.socket_addr().ok_or_else(|| {
            std::io::Error::new(std::io::ErrorKind::Unsupported, "a TCP endpoint only")
        })?;
        std::thread::spawn(move || {
            let s = Socket::new(Domain::for_address(addr), Type::STREAM, None)?;
            if let Some(n) = send_buffer {
                s.set_send_buffer_size(n)?;
            }
            Ok(s)
        })
        .join()
        .map_err(|_| std::io::Error::other("socket thread panicked"))?
    })
}

/// Scenario 16: A user connector (wrapping the adapter's, whose sockets a factory makes on a
/// thread of its own) dials every connection; the session is built, not spawned, and its task
/// runs on a dedicated thread with its own runtime.
pub async fn custom_connector_and_build<A: Suite>() {
    let server = LineServer::start();
    server.set_reply(Some("echo:"));
    let (dials, made) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let connector = CountingConnector {
        inner: A::tcp_connector(thread_socket_factory(Arc::clone(&made), None)),
        dials: Arc::clone(&dials),
    };
    let (handle, inbound, events, task) = A::builder(server.addr().into())
        .config(fast_config())
        .connector(connector)
        .build()
        .expect("valid config");
    let runner = A::run_task(task);
    let mut s = Live::from_ends(handle, inbound, events);
    within::<A, _>(
        LONG,
        "delivery",
        s.handle.send(b"via".to_vec(), Delivery::AtMostOnce),
    )
    .await
    .expect("delivered");
    let echo = within::<A, _>(LONG, "echo", s.inbound.next()).await;
    assert_eq!(echo.as_deref(), Some(&b"echo:via"[..]));
    let connected = s
        .wait_event::<A>(LONG, "connected", |e| is_connected(&e.notification))
        .await;
    assert_eq!(
        connected.endpoint.and_then(|e| e.socket_addr()),
        Some(server.addr())
    );
    assert_eq!(
        (dials.load(Ordering::SeqCst), made.load(Ordering::SeqCst)),
        (1, 1),
        "one dial through the user's connector, one socket from the factory"
    );
    within::<A, _>(LONG, "close", s.handle.close(CloseMode::Immediate)).await;
    // The task ends with the session, so its thread does.
    eventually::<A>(LONG, "the task ends", || runner.is_finished()).await;
    runner.join();
}

/// A peer that accepts and never reads (its receive buffer is small), but can send: writes
/// to it stall once the buffers are full.
struct DeafServer {
    addr: SocketAddr,
    conns: Arc<Mutex<Vec<TcpStream>>>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl DeafServer {
    fn start() -> Self {
        let s = Socket::new(Domain::IPV4, Type::STREAM, None).expect("socket");
        // Inherited by accepted sockets: a few KiB, so the buffers fill at once.
        s.set_recv_buffer_size(4096).expect("SO_RCVBUF");
        let any: SocketAddr = "127.0.0.1:0".parse().expect("addr");
        s.bind(&any.into()).expect("bind");
        s.listen(16).expect("listen");
        let l: TcpListener = s.into();
        l.set_nonblocking(true).expect("nonblocking");
        let addr = l.local_addr().expect("addr");
        let conns: Arc<Mutex<Vec<TcpStream>>> = Arc::default();
        let stop = Arc::new(AtomicBool::new(false));
        let (c, st) = (Arc::clone(&conns), Arc::clone(&stop));
        let thread = std::thread::spawn(move || {
            while !st.load(Ordering::SeqCst) {
                match l.accept() {
                    Ok((conn, _)) => lock(&c).push(conn),
                    // Nothing to accept: poll the stop flag again shortly (a server thread,
                    // not a test waiting).
                    Err(_) => std::thread::sleep(Duration::from_millis(2)),
                }
            }
        });
        DeafServer {
            addr,
            conns,
            stop,
            thread: Some(thread),
        }
    }

    fn accepted(&self) -> usize {
        lock(&self.conns).len()
    }

    /// Writes `bytes` to every connection accepted so far.
    fn push(&self, bytes: &[u8]) {
        for c in lock(&self.conns).iter_mut() {
            let _ = c.write_all(bytes);
        }
    }
}

impl Drop for DeafServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        for c in lock(&self.conns).drain(..) {
            let _ = c.shutdown(std::net::Shutdown::Both);
        }
    }
}

/// Scenario 17: A write stuck on a peer that stopped reading never stops reads (a line the
/// peer sends still arrives) and is killed by the write deadline.
pub async fn blocked_write_keeps_reading_and_times_out<A: Suite>() {
    let server = DeafServer::start();
    let write_timeout = Duration::from_millis(1500);
    let cfg = fast_config()
        .with_heartbeat(None)
        .with_write_timeout(Some(write_timeout))
        .with_queue(QueueLimits {
            max_messages: 64,
            max_bytes: 8 << 20,
            max_message: 1 << 20,
            overflow: redial_core::Overflow::Reject,
        });
    // A small send buffer on our side too: one 256 KiB message can never be written whole
    // while the peer does not read, so the first write is stuck from the start.
    let made = Arc::new(AtomicUsize::new(0));
    let mut s = Live::spawn::<A, _>(
        A::builder(server.addr.into())
            .config(cfg)
            .codec(LineCodec::plain().with_max_line(1 << 20))
            .connector(A::tcp_connector(thread_socket_factory(made, Some(4096)))),
    );
    let receipts: Vec<_> = (0..4)
        .map(|_| s.handle.send(vec![b'x'; 256 << 10], Delivery::AtMostOnce))
        .collect();
    s.wait_event::<A>(LONG, "connected", |e| is_connected(&e.notification))
        .await;
    eventually::<A>(LONG, "accept", || server.accepted() == 1).await;
    server.push(b"still-reading\r\n");
    let got = within::<A, _>(
        write_timeout,
        "a read during the stuck write",
        s.inbound.next(),
    )
    .await;
    assert_eq!(got.as_deref(), Some(&b"still-reading"[..]));
    assert_eq!(
        s.count(is_disconnected),
        0,
        "read while the write was stuck, before its deadline"
    );
    let e = s
        .wait_event::<A>(LONG, "write timeout", |e| is_disconnected(&e.notification))
        .await;
    assert!(
        matches!(
            e.notification,
            Notification::Disconnected {
                reason: DisconnectReason::WriteTimeout(d),
                ..
            } if d == write_timeout
        ),
        "{e:?}"
    );
    assert_eq!(s.handle.stats().write_timeouts, 1);
    s.handle.close(CloseMode::Immediate).await;
    let mut outcomes = Vec::new();
    for r in receipts {
        outcomes.push(r.await.expect_err("never delivered").outcome);
    }
    assert_eq!(
        outcomes[0],
        Outcome::InDoubt,
        "the stuck message was partly written: {outcomes:?}"
    );
    assert!(
        outcomes[1..].iter().all(|o| matches!(
            o,
            Outcome::InDoubt | Outcome::Abandoned(AbandonReason::Closed)
        )),
        "{outcomes:?}"
    );
}

/// Scenario 18: A session task polled by reference (not dropped when it finishes): its
/// streams still end when the session does.
pub async fn streams_end_when_the_session_ends<A: Suite>() {
    let (handle, mut inbound, mut events, task) = A::builder(dead_addr().into())
        .config(fast_config())
        .build()
        .expect("valid config");
    let mut task = std::pin::pin!(task);
    let close = handle.close(CloseMode::Immediate);
    within::<A, _>(
        LONG,
        "task and close",
        futures::future::join(task.as_mut(), close),
    )
    .await;
    assert!(handle.is_closed());
    until_end::<A, _>(LONG, "events end", &mut events).await;
    assert_eq!(
        within::<A, _>(LONG, "inbound ends", inbound.next()).await,
        None,
        "both streams ended while the task still exists"
    );
    let late = handle
        .send(b"late".to_vec(), Delivery::AtMostOnce)
        .await
        .expect_err("closed");
    assert_eq!(late.outcome, Outcome::Rejected(RejectReason::Closed));
    // The task still exists, and polled again it stays finished.
    assert_eq!(task.as_mut().now_or_never(), Some(()));
}

/// A server that writes numbered 100-byte lines as fast as TCP lets it, counting what the
/// kernel took.
struct FloodServer {
    addr: SocketAddr,
    sent: Arc<std::sync::atomic::AtomicU64>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl FloodServer {
    fn start() -> Self {
        let l = TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = l.local_addr().expect("addr");
        let sent = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (n, st) = (Arc::clone(&sent), Arc::clone(&stop));
        let thread = std::thread::spawn(move || {
            let Ok((mut c, _)) = l.accept() else { return };
            // A short write timeout only so the stop flag is seen: a blocked write is TCP
            // pushing back, which is what is measured.
            let _ = c.set_write_timeout(Some(Duration::from_millis(50)));
            let mut i = 0u64;
            let mut pending: Vec<u8> = Vec::new();
            while !st.load(Ordering::SeqCst) {
                if pending.is_empty() {
                    for _ in 0..100 {
                        let mut line = format!("{i:08}").into_bytes();
                        line.resize(99, b'x');
                        line.push(b'\n');
                        pending.extend_from_slice(&line);
                        i += 1;
                    }
                }
                match c.write(&pending) {
                    Ok(0) => return,
                    Ok(k) => {
                        n.fetch_add(k as u64, Ordering::SeqCst);
                        pending.drain(..k);
                    }
                    Err(e)
                        if e.kind() == std::io::ErrorKind::WouldBlock
                            || e.kind() == std::io::ErrorKind::TimedOut => {}
                    Err(_) => return,
                }
            }
        });
        FloodServer {
            addr,
            sent,
            stop,
            thread: Some(thread),
        }
    }

    fn sent(&self) -> u64 {
        self.sent.load(Ordering::SeqCst)
    }
}

impl Drop for FloodServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Scenario 19: a consumer that stops taking what arrives. The session stops reading at its
/// inbound bound, so TCP holds the flooding server back (bounded memory, not a growing
/// stream); the peer's silence while we are the ones not reading is not its death (no
/// disconnect after many heartbeat deadlines); once the consumer takes again, every line
/// arrives, in order, by value.
pub async fn slow_consumer_holds_the_socket_not_memory<A: Suite>() {
    let server = FloodServer::start();
    let hb = Heartbeat {
        interval: Duration::from_millis(200),
        timeout: Duration::from_millis(200),
        adaptive_floor: None,
    };
    let cfg = fast_config().with_heartbeat(Some(hb));
    let mut s = Live::spawn::<A, _>(
        A::builder(server.addr.into())
            .config(cfg)
            .inbound_capacity(64, 64 << 10)
            .codec(LineCodec::plain()),
    );
    s.wait_event::<A>(LONG, "reading paused", |e| {
        matches!(e.notification, Notification::ReadPaused { .. })
    })
    .await;
    // Several heartbeat deadlines pass while we do not read: the window is the property.
    A::sleep(4 * (hb.interval + hb.timeout)).await;
    assert_eq!(
        s.count(is_disconnected),
        0,
        "declared dead while we were the ones not reading"
    );
    let held = server.sent();
    A::sleep(Duration::from_millis(300)).await;
    let later = server.sent();
    // Our bound (64 KiB) plus both kernels' buffers: far below an unhindered flood.
    assert!(held < 32 << 20, "the server got {held} bytes out");
    assert!(later - held < 1 << 20, "still flowing: {held} -> {later}");
    // Taking again: every line, in order, by value.
    for i in 0..5_000u64 {
        let got = within::<A, _>(LONG, "the next line", s.inbound.next())
            .await
            .expect("the stream goes on");
        let mut want = format!("{i:08}").into_bytes();
        want.resize(99, b'x');
        assert_eq!(&got[..], &want[..], "line {i}");
    }
    assert_eq!(s.count(is_disconnected), 0);
    s.handle.close(CloseMode::Immediate).await;
}
