//! # redial-blocking
//!
//! Reconnecting, heartbeating TCP sessions for programs with no async runtime (a CLI, a
//! plugin, an FFI host): the [`redial_core`](redial_driver::core) state machine driven by the
//! shared [`redial_driver`] loop, each session on a std thread of its own that blocks in the
//! OS poller (epoll, kqueue, through `polling`) while it waits. Your threads wait with
//! timeouts through [`Wait`] and [`WaitNext`]; nothing of yours is `async`.
//!
//! ## Quick start
//!
//! ```no_run
//! use std::time::Duration;
//! use redial_blocking::core::proto::resp::{cmd, Resp, Value};
//! use redial_blocking::{Delivery, Wait, WaitNext};
//!
//! let (handle, _inbound, mut events) = redial_blocking::builder("127.0.0.1:6379")
//!     .protocol(Resp::new())
//!     .spawn()
//!     .expect("valid config");
//!
//! // Queued at once, sent when connected (across reconnects); the reply is this request's.
//! let receipt = handle.request(cmd(["INCR", "visits"]), Delivery::AtMostOnce);
//! match receipt.wait_timeout(Duration::from_secs(5)) {
//!     Ok(Ok(reply)) => println!("{}", Value::parse(&reply.body).unwrap().0.to_cli()),
//!     Ok(Err(undelivered)) => println!("{:?}", undelivered.outcome),
//!     // Still pending: the receipt comes back, to wait on again or drop.
//!     Err(_receipt) => println!("no answer within 5 s yet"),
//! }
//! while let Ok(Some(e)) = events.next_timeout(Duration::from_millis(10)) {
//!     println!("{:?} {:?}", e.notification, e.detail);
//! }
//! handle.close_graceful(Duration::from_secs(1)).wait();
//! ```
//!
//! ## How it runs
//!
//! - [`Builder::spawn`] starts one thread per session (named `redial-session`). It runs the
//!   session task with [`block_on`]: poll, and while the task waits, block in the thread's
//!   poller until its socket is ready, its timer is due, or a handle on another thread wakes
//!   it. An idle session costs its thread and nothing else (no CPU).
//! - Name resolution runs `std::net::ToSocketAddrs` on a short-lived thread per attempt, so
//!   a slow DNS server never holds the session's thread.
//! - [`block_on`] works on any thread, for any future: the waits of [`Wait`] and
//!   [`WaitNext`] are built on it. Do not call it from inside a future it is running.
//! - A thread per session suits tens or hundreds of sessions. For thousands, use an async
//!   adapter (`redial-tokio`, `redial-smol`), where a session is a task.
//!
//! Everything but [`Blocking`], [`builder`], [`block_on`], [`Sleep`], [`Stream`],
//! [`TcpConnector`], [`Wait`], [`WaitNext`] and [`TimedOut`] is re-exported from
//! [`redial_driver`], so the other adapters have the very same types.
//!
//! ## Features
//!
//! | feature | default | what |
//! |---|---|---|
//! | `record` | no | record sessions as JSON lines (`Builder::record`) and replay them (`trace`) |
//! | `metrics` | no | session metrics through the `metrics` facade ([`metrics`] lists them; `Builder::metrics_name`) |

#![cfg_attr(docsrs, feature(doc_cfg))]
#![deny(missing_docs)]

use std::future::Future;
use std::io;
use std::net::{SocketAddr, ToSocketAddrs};
use std::pin::Pin;
use std::time::{Duration, Instant as StdInstant};

use futures::StreamExt;

pub use redial_driver::*;

mod net;
mod reactor;

pub use net::{Stream, TcpConnector};
pub use reactor::Sleep;

/// The runtime of redial-blocking, as the driver sees it: std's clock, timers on the polling
/// thread's reactor, resolution on a thread of its own, a thread per spawned session.
#[derive(Clone, Copy, Debug, Default)]
pub struct Blocking;

/// A session builder dialing TCP (or Unix sockets for `unix:` targets), each session on a
/// thread of its own.
pub fn builder(target: impl Into<Target>) -> Builder<Blocking, TcpConnector> {
    Builder::new(Blocking, TcpConnector::default(), target)
}

/// Runs `fut` to completion on the current thread, blocking in the thread's poller while it
/// waits. Sockets and timers of this crate work inside it; so does any future that wakes
/// through its waker (channels, receipts, streams).
///
/// # Panics
/// If the thread's poller cannot be made (no file descriptors left).
pub fn block_on<F: Future>(fut: F) -> F::Output {
    let mut fut = std::pin::pin!(fut);
    reactor::run(fut.as_mut(), None).expect("without a deadline, run ends only when ready")
}

impl Runtime for Blocking {
    type Sleep = Sleep;
    type Resolve = BoxFuture<'static, io::Result<Vec<SocketAddr>>>;

    fn now(&self) -> StdInstant {
        StdInstant::now()
    }

    fn sleep_until(&self, deadline: StdInstant) -> Sleep {
        Sleep::until(deadline)
    }

    fn resolve(&self, host: &str, port: u16) -> Self::Resolve {
        let (tx, rx) = futures::channel::oneshot::channel();
        let host = host.to_owned();
        let started = std::thread::Builder::new()
            .name("redial-resolve".into())
            .spawn(move || {
                let _ = tx.send(
                    (host.as_str(), port)
                        .to_socket_addrs()
                        .map(|a| a.collect::<Vec<_>>()),
                );
            });
        Box::pin(async move {
            started?;
            rx.await
                .unwrap_or_else(|_| Err(io::Error::other("the resolver thread ended")))
        })
    }
}

impl Spawn for Blocking {
    /// Runs `task` on a new thread. If no thread can be started, the task is dropped
    /// unpolled, and a session task that ends that way settles everything it was given
    /// (receipts say abandoned or rejected; nothing waits forever).
    fn spawn(&self, task: impl Future<Output = ()> + Send + 'static) {
        let _ = std::thread::Builder::new()
            .name("redial-session".into())
            .spawn(move || block_on(task));
    }
}

/// A wait that did not end in time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TimedOut;

impl std::fmt::Display for TimedOut {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("timed out")
    }
}

impl std::error::Error for TimedOut {}

/// Blocking waits on a future: a [`Receipt`], [`Handle::close`], any other.
pub trait Wait: Future + Sized {
    /// Blocks until the future completes.
    fn wait(self) -> Self::Output {
        block_on(self)
    }

    /// Blocks until the future completes or `timeout` passes; then the future comes back
    /// unfinished (a receipt still holds its message's outcome: wait again, or drop it).
    fn wait_timeout(mut self, timeout: Duration) -> Result<Self::Output, Self>
    where
        Self: Unpin,
    {
        let until = StdInstant::now().checked_add(timeout);
        match reactor::run(Pin::new(&mut self), until) {
            Some(v) => Ok(v),
            None => Err(self),
        }
    }
}

impl<F: Future> Wait for F {}

/// Blocking waits on a stream: [`Inbound`], [`Events`], a [`Subscription`].
pub trait WaitNext: futures::Stream + Unpin {
    /// Blocks until the next item, or the stream's end (`None`).
    fn next_blocking(&mut self) -> Option<Self::Item> {
        block_on(self.next())
    }

    /// Blocks until the next item, the stream's end (`Ok(None)`), or `timeout`. A timeout
    /// takes nothing from the stream.
    fn next_timeout(&mut self, timeout: Duration) -> Result<Option<Self::Item>, TimedOut> {
        let until = StdInstant::now().checked_add(timeout);
        let mut next = self.next();
        reactor::run(Pin::new(&mut next), until).ok_or(TimedOut)
    }
}

impl<S: futures::Stream + Unpin> WaitNext for S {}
