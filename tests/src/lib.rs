//! Test support for redial: a controllable fault proxy, scriptable line servers, real
//! Redis/NATS processes (plain, TLS, Unix sockets), network-namespace partitions, and the conformance suite that every
//! adapter must pass.
//!
//! Everything here is runtime-neutral from the caller's side: servers and the proxy run on
//! their own threads (each with a private tokio runtime) and are controlled with plain blocking
//! calls, so the same scenarios drive redial-tokio and redial-smol unchanged.

pub mod adapters;
pub mod conformance;
pub mod etcd;
pub mod fleet;
pub mod netns;
pub mod proxy;
pub mod real;
pub mod servers;
pub mod tls;
pub mod wait;
