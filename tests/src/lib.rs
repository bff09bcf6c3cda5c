//! The suites that every redial adapter must pass: the conformance scenarios, the real-fault
//! suites (network namespaces, real Redis and NATS, TLS) and the adapters they run on.
//!
//! The fault proxy, the scriptable servers, the real-server launchers, the namespace helpers
//! and the bounded waits live in [`redial_testkit`] (publishable, for users' own tests); they
//! are re-exported here so `redial_tests::proxy::...` paths keep working.
//!
//! Everything is runtime-neutral from the caller's side: servers and the proxy run on
//! their own threads (each with a private tokio runtime) and are controlled with plain blocking
//! calls, so the same scenarios drive redial-tokio and redial-smol unchanged.

pub use redial_testkit::{netns, servers, wait};

/// The fault proxy ([`redial_testkit::proxy`]), plus the suites' poison-tolerant lock.
pub mod proxy {
    pub use redial_testkit::proxy::*;

    use std::sync::{Mutex, MutexGuard, PoisonError};

    /// Locks `m`, ignoring poisoning: a scenario that panicked must not cascade into others.
    pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
        m.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

pub mod adapters;
pub mod conformance;
pub mod real;
pub mod tls;
