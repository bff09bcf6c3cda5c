//! What only smol can do. Every runtime-neutral scenario (exchange, heartbeat, restarts,
//! give-up, epochs, the ledger, bounds, close, connectors, `build()`, write deadlines, ...) is
//! in the one conformance suite that both adapters run: `cargo test -p redial-tests --test
//! conformance_smol`. Here: sessions on a user's `LocalExecutor` (`Smol::local` and
//! `spawn_local`), and that executor dropped under a live session.

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener};
use std::rc::Rc;
use std::sync::mpsc;
use std::time::Duration;

use futures::future::{select, Either};
use futures::StreamExt;
use redial_smol::{
    AbandonReason, Backoff, Builder, CloseMode, Config, Delivery, Jitter, Outcome, Smol, State,
    TcpConnector,
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

/// `f`, or a panic after 5 s.
async fn in_time<F: std::future::Future + Unpin>(what: &str, f: F) -> F::Output {
    match select(f, smol::Timer::after(Duration::from_secs(5))).await {
        Either::Left((v, _)) => v,
        Either::Right(_) => panic!("{what} took over 5 s"),
    }
}

/// `spawn_local` runs the session on the user's `LocalExecutor`: it connects, sends and
/// receives like a spawned one, and closes.
#[test]
fn spawn_local_runs_on_a_local_executor() {
    let addr = echo_once();
    let ex = Rc::new(smol::LocalExecutor::new());
    let (h, mut inbound, _e) = Builder::new(Smol::local(&ex), TcpConnector::default(), addr)
        .config(quick())
        .spawn_local()
        .expect("valid config");
    smol::block_on(ex.run(async {
        let sent = in_time("send", h.send(b"hi".to_vec(), Delivery::AtMostOnce)).await;
        assert_eq!(sent, Ok(()));
        let echo = in_time("echo", inbound.next()).await;
        assert_eq!(echo.as_deref(), Some(&b"echo:hi"[..]));
        assert_eq!(h.state(), State::Connected);
        in_time("close", Box::pin(h.close(CloseMode::Immediate))).await;
        assert!(h.is_closed());
    }));
}

/// The executor dropped under a live local session: the task is dropped with it, and every
/// receipt still gets its real outcome, with its message.
#[test]
fn receipts_resolve_when_the_local_executor_is_dropped() {
    let dead = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("bind");
    let ex = Rc::new(smol::LocalExecutor::new());
    let (h, _i, _e) = Builder::new(Smol::local(&ex), TcpConnector::default(), dead)
        .config(quick())
        .spawn_local()
        .expect("valid config");
    let receipt = h.send(b"local".to_vec(), Delivery::Idempotent);
    smol::block_on(ex.run(async {
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while h.stats().failures == 0 {
            assert!(std::time::Instant::now() < deadline, "no attempt failed");
            smol::Timer::after(Duration::from_millis(5)).await;
        }
    }));
    drop(ex);
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || tx.send(smol::block_on(receipt)));
    let outcome = rx
        .recv_timeout(Duration::from_secs(5))
        .expect("the receipt resolves once the executor is gone")
        .expect_err("never delivered");
    assert_eq!(
        (outcome.outcome, outcome.payload.as_slice()),
        (Outcome::Abandoned(AbandonReason::Closed), &b"local"[..])
    );
    assert!(h.is_closed());
}

/// `Smol::local` needs the executor's own thread: a session spawned locally from another
/// thread is a documented panic, not undefined behaviour.
#[test]
fn spawn_local_off_the_executor_thread_panics() {
    let ex = Rc::new(smol::LocalExecutor::new());
    let rt = Smol::local(&ex);
    let r = std::thread::spawn(move || {
        Builder::new(rt, TcpConnector::default(), "127.0.0.1:1")
            .spawn_local()
            .map(|_| ())
    })
    .join();
    assert!(
        r.is_err(),
        "spawning on another thread's executor must panic"
    );
}
