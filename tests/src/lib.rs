//! The suites that every redial adapter must pass: the conformance scenarios (re-exported from
//! `redial-conformance`), the real-fault suites (network namespaces, real Redis and NATS,
//! TLS) and the adapters they run on.
//!
//! The fault proxy, the scriptable servers, the real-server launchers, the namespace helpers
//! and the bounded waits live in [`redial_testkit`] (publishable, for users' own tests); they
//! are re-exported here so `redial_tests::proxy::...` paths keep working.
//!
//! Everything is runtime-neutral from the caller's side: servers and the proxy run on
//! their own threads (each with a private tokio runtime) and are controlled with plain blocking
//! calls, so the same scenarios drive redial-tokio and redial-smol unchanged.

pub use redial_testkit::{netns, proxy, servers, wait};

pub mod adapters;

/// The conformance suite, from [`redial_conformance`] (publishable, for adapters out of tree).
pub use redial_conformance as conformance;
pub use redial_conformance::conformance_tests;

pub mod fleet;
pub mod real;
pub mod tls;
