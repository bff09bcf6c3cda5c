//! The conformance suite on redial-tokio.

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
        // Multi-threaded, as most tokio users run it.
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

redial_tests::conformance_tests!(TokioAdapter);
