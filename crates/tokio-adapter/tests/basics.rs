//! What only tokio can do. Every runtime-neutral scenario (exchange, heartbeat, restarts,
//! give-up, epochs, the ledger, bounds, close, connectors, `build()`, write deadlines, ...) is
//! in the one conformance suite that both adapters run: `cargo test -p redial-tests --test
//! conformance_tokio`. Here: a runtime torn down under a live session, and sessions on a
//! `LocalSet` (`spawn_local`).

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener};
use std::sync::mpsc;
use std::time::Duration;

use futures::StreamExt;
use redial_tokio::{
    AbandonReason, Backoff, CloseMode, Config, Delivery, Jitter, Outcome, RejectReason, State,
};

/// A fast policy without heartbeat (the line peer below does not answer PINGs).
fn quick() -> Config {
    Config::default()
        .with_backoff(
            Backoff::new()
                .with_initial(Duration::from_millis(20))
                .with_cap(Duration::from_millis(100))
                .with_jitter(Jitter::None),
        )
        .with_heartbeat(None)
        .with_connect_timeout(Duration::from_secs(2))
}

/// An address nothing listens on.
fn dead_addr() -> SocketAddr {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("bind")
}

/// A peer on its own thread: accepts one connection and answers every line with `echo:<line>`.
fn echo_once() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = l.local_addr().expect("addr");
    std::thread::spawn(move || {
        let Ok((conn, _)) = l.accept() else { return };
        let Ok(mut w) = conn.try_clone() else { return };
        for line in BufReader::new(conn).lines() {
            let Ok(line) = line else { return };
            if w.write_all(format!("echo:{line}\r\n").as_bytes()).is_err() {
                return;
            }
        }
    });
    addr
}

/// Waits for `rx` on another thread, bounded: a receipt nobody resolves would hang forever.
fn bounded<T: Send + 'static>(f: impl std::future::Future<Output = T> + Send + 'static) -> T {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || tx.send(futures::executor::block_on(f)));
    rx.recv_timeout(Duration::from_secs(5))
        .expect("resolved within 5 s")
}

/// A runtime shut down under a live session: every receipt still resolves (abandoned, with
/// its message), and the handle refuses new messages.
#[test]
fn receipts_resolve_when_the_runtime_is_torn_down() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let (handle, receipt) = rt.block_on(async {
        // Nothing listens there: the message waits in the queue.
        let (h, _i, _e) = redial_tokio::builder(dead_addr())
            .config(quick())
            .spawn()
            .expect("valid config");
        let r = h.send(b"stranded".to_vec(), Delivery::AtMostOnce);
        // Let the session run (and fail an attempt) before the runtime goes.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        while h.stats().failures == 0 {
            assert!(tokio::time::Instant::now() < deadline, "no attempt failed");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        (h, r)
    });
    drop(rt);
    let outcome = bounded(receipt).expect_err("never delivered");
    assert_eq!(
        (outcome.outcome, outcome.payload.as_slice()),
        (Outcome::Abandoned(AbandonReason::Closed), &b"stranded"[..]),
        "the real outcome, with the message handed back"
    );
    assert!(handle.is_closed());
    assert_eq!(handle.state(), State::Closed);
    let late = bounded(handle.send(b"late".to_vec(), Delivery::AtMostOnce));
    assert_eq!(
        late.expect_err("closed").outcome,
        Outcome::Rejected(RejectReason::Closed)
    );
}

/// `spawn_local` runs the session on a `LocalSet`: it connects, sends and receives like a
/// spawned one, and closes.
#[test]
fn spawn_local_runs_on_a_local_set() {
    let addr = echo_once();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let local = tokio::task::LocalSet::new();
    local.block_on(&rt, async move {
        let (h, mut inbound, _e) = redial_tokio::builder(addr)
            .config(quick())
            .spawn_local()
            .expect("valid config");
        let sent = tokio::time::timeout(
            Duration::from_secs(5),
            h.send(b"hi".to_vec(), Delivery::AtMostOnce),
        )
        .await;
        assert_eq!(sent.expect("in time"), Ok(()));
        let echo = tokio::time::timeout(Duration::from_secs(5), inbound.next()).await;
        assert_eq!(echo.expect("in time").as_deref(), Some(&b"echo:hi"[..]));
        assert_eq!(h.state(), State::Connected);
        tokio::time::timeout(Duration::from_secs(5), h.close(CloseMode::Immediate))
            .await
            .expect("closed in time");
        assert!(h.is_closed());
    });
}

/// A `LocalSet` dropped under a live local session: the task is dropped with it, and every
/// receipt still gets its real outcome.
#[test]
fn receipts_resolve_when_the_local_set_is_dropped() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let local = tokio::task::LocalSet::new();
    let (handle, receipt) = local.block_on(&rt, async {
        let (h, _i, _e) = redial_tokio::builder(dead_addr())
            .config(quick())
            .spawn_local()
            .expect("valid config");
        let r = h.send(b"local".to_vec(), Delivery::Idempotent);
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        while h.stats().failures == 0 {
            assert!(tokio::time::Instant::now() < deadline, "no attempt failed");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        (h, r)
    });
    drop(local);
    let outcome = bounded(receipt).expect_err("never delivered");
    assert_eq!(
        (outcome.outcome, outcome.payload.as_slice()),
        (Outcome::Abandoned(AbandonReason::Closed), &b"local"[..])
    );
    assert!(handle.is_closed());
}

/// The backoff delays the first `n` failed attempts of a session to a dead address announce.
async fn first_delays(
    b: redial_tokio::Builder<redial_tokio::Tokio, redial_tokio::TcpConnector>,
    n: usize,
) -> Vec<Duration> {
    let (handle, _inbound, mut events) = b.spawn().expect("config");
    let mut delays = Vec::new();
    while delays.len() < n {
        let e = tokio::time::timeout(Duration::from_secs(10), events.next())
            .await
            .expect("an event in time")
            .expect("events go on while the session does");
        if let redial_tokio::Notification::AttemptFailed {
            next_delay: Some(d),
            ..
        } = e.notification
        {
            delays.push(d);
        }
    }
    handle.close(CloseMode::Immediate).await;
    delays
}

/// Sessions built from one config (whose seed is a constant by default) draw jitter of their
/// own: a fleet does not back off in step. A fixed `Builder::seed` reproduces a run.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_from_one_config_jitter_apart_unless_seeded() {
    let cfg = std::sync::Arc::new(
        Config::default()
            .with_backoff(
                Backoff::new()
                    .with_initial(Duration::from_millis(5))
                    .with_cap(Duration::from_millis(40))
                    .with_jitter(Jitter::Full),
            )
            .with_heartbeat(None),
    );
    let addr = dead_addr();
    let b = || redial_tokio::builder(addr).config(std::sync::Arc::clone(&cfg));
    let (one, two) = tokio::join!(first_delays(b(), 4), first_delays(b(), 4));
    assert_ne!(one, two, "two sessions drew the same jitter: {one:?}");
    let (one, two) = tokio::join!(first_delays(b().seed(7), 4), first_delays(b().seed(7), 4));
    assert_eq!(one, two, "one seed, one schedule");
}
