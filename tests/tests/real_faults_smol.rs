//! Real faults (network-namespace partitions, real Redis and NATS) on redial-smol.
//!
//! Needs root, iproute2, iptables (or nft), `redis-server` and `nats-server`; without them
//! each scenario prints `SKIPPED: ...`, or fails under `REDIAL_REQUIRE_REAL=1`.

use std::future::Future;
use std::time::Duration;

use futures::future::BoxFuture;
use futures::FutureExt;
use redial_driver::{Builder, Target};
use redial_tests::conformance::Adapter;

struct SmolAdapter;

impl Adapter for SmolAdapter {
    type Rt = redial_smol::Smol;
    const NAME: &'static str = "smol";

    fn builder(target: Target) -> Builder<Self::Rt> {
        redial_smol::builder(target)
    }

    fn block_on<F: Future<Output = ()> + Send + 'static>(f: F) {
        redial_smol::block_on(f)
    }

    fn sleep(d: Duration) -> BoxFuture<'static, ()> {
        async move {
            smol::Timer::after(d).await;
        }
        .boxed()
    }
}

redial_tests::real_fault_tests!(SmolAdapter);
