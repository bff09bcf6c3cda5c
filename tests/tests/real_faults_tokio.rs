//! Real faults (network-namespace partitions, real Redis and NATS) on redial-tokio.
//!
//! Needs root, iproute2, iptables (or nft), `redis-server` and `nats-server`; without them
//! each scenario prints `SKIPPED: ...`, or fails under `REDIAL_REQUIRE_REAL=1`.

use std::future::Future;
use std::time::Duration;

use futures::future::BoxFuture;
use futures::FutureExt;
use redial_driver::{Builder, Target};
use redial_tests::conformance::Adapter;

struct TokioAdapter;

impl Adapter for TokioAdapter {
    type Rt = redial_tokio::Tokio;
    const NAME: &'static str = "tokio";

    fn builder(target: Target) -> Builder<Self::Rt> {
        redial_tokio::builder(target)
    }

    fn block_on<F: Future<Output = ()> + Send + 'static>(f: F) {
        // Multi-threaded: sockets still land in the client namespace, through the connector.
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime")
            .block_on(f)
    }

    fn sleep(d: Duration) -> BoxFuture<'static, ()> {
        tokio::time::sleep(d).boxed()
    }
}

redial_tests::real_fault_tests!(TokioAdapter);
