//! What the driver needs from an executor: a clock, one timer, name resolution, and a way to
//! run the session's task.
//!
//! `Send` is required only where the runtime needs it: [`Spawn`] runs `Send` tasks (tokio's
//! multi-threaded scheduler, smol), [`SpawnLocal`] runs tasks on the current thread
//! (thread-per-core runtimes such as monoio, tokio's `LocalSet`). A session task is `Send`
//! exactly when its timer, connector and protocol are.
//!
//! Wakers may fire from other threads (a handle on another thread sends a message): a local
//! runtime's waker must be thread-safe, as `std::task::Waker` requires.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::time::Instant as StdInstant;

/// A clock, a timer and a resolver. Implement this (and [`Spawn`] or [`SpawnLocal`]) to run
/// redial on a new executor; see `docs/PORTING.md`.
pub trait Runtime: Clone + 'static {
    /// A one-shot timer future.
    type Sleep: Future<Output = ()> + 'static;
    /// A name resolution in progress.
    type Resolve: Future<Output = io::Result<Vec<SocketAddr>>> + 'static;

    /// The runtime's monotonic clock. Under a virtual clock (`tokio::time::pause`) this must
    /// be the virtual time, because every deadline is checked against it.
    fn now(&self) -> StdInstant;

    /// A timer that completes at `deadline` (or soon after).
    fn sleep_until(&self, deadline: StdInstant) -> Self::Sleep;

    /// Resolves `host:port` without blocking the executor (DNS may block: run it elsewhere).
    fn resolve(&self, host: &str, port: u16) -> Self::Resolve;
}

/// A runtime that runs `Send` tasks on any of its threads.
pub trait Spawn: Runtime {
    /// Runs `task` to completion in the background.
    fn spawn(&self, task: impl Future<Output = ()> + Send + 'static);
}

/// A runtime that runs tasks on the current thread (thread-per-core executors).
pub trait SpawnLocal: Runtime {
    /// Runs `task` to completion in the background, on this thread.
    fn spawn_local(&self, task: impl Future<Output = ()> + 'static);
}
