//! The two adapters as the suites see them: one [`Adapter`] impl each, shared by the
//! conformance and real-fault test binaries.

use std::future::Future;
use std::time::Duration;

use futures::future::BoxFuture;
use futures::future::LocalBoxFuture;
use futures::FutureExt;
use redial_core::{ConfigError, Protocol};
use redial_driver::{Builder, Ends, SessionTask, SocketFactory, Target};

use crate::conformance::{Adapter, CountingConnector, Suite, TaskRun};

/// redial-tokio on a multi-threaded runtime, as most tokio users run it. (Sockets for network
/// namespaces are created through the builder's connector, so worker threads don't matter.)
pub struct TokioAdapter;

impl Adapter for TokioAdapter {
    type Rt = redial_tokio::Tokio;
    type Conn = redial_tokio::TcpConnector;
    const NAME: &'static str = "tokio";

    fn builder(target: Target) -> Builder<Self::Rt, Self::Conn> {
        redial_tokio::builder(target)
    }

    fn tcp_connector(factory: SocketFactory) -> Self::Conn {
        redial_tokio::TcpConnector::default().with_socket_factory(factory)
    }

    fn block_on<F: Future<Output = ()> + 'static>(f: F) {
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

/// redial-smol on smol's global executor.
pub struct SmolAdapter;

impl Adapter for SmolAdapter {
    type Rt = redial_smol::Smol;
    type Conn = redial_smol::TcpConnector;
    const NAME: &'static str = "smol";

    fn builder(target: Target) -> Builder<Self::Rt, Self::Conn> {
        redial_smol::builder(target)
    }

    fn tcp_connector(factory: SocketFactory) -> Self::Conn {
        redial_smol::TcpConnector::default().with_socket_factory(factory)
    }

    fn block_on<F: Future<Output = ()> + 'static>(f: F) {
        redial_smol::block_on(f)
    }

    fn sleep(d: Duration) -> BoxFuture<'static, ()> {
        async move {
            smol::Timer::after(d).await;
        }
        .boxed()
    }
}

/// redial-blocking: each session on a thread of its own; the scenario itself runs on the
/// test's thread with the crate's `block_on` (its own poller), as a program without an async
/// runtime would wait.
pub struct BlockingAdapter;

impl Adapter for BlockingAdapter {
    type Rt = redial_blocking::Blocking;
    type Conn = redial_blocking::TcpConnector;
    const NAME: &'static str = "blocking";

    fn builder(target: Target) -> Builder<Self::Rt, Self::Conn> {
        redial_blocking::builder(target)
    }

    fn tcp_connector(factory: SocketFactory) -> Self::Conn {
        redial_blocking::TcpConnector::default().with_socket_factory(factory)
    }

    fn block_on<F: Future<Output = ()> + 'static>(f: F) {
        redial_blocking::block_on(f)
    }

    fn sleep(d: Duration) -> BoxFuture<'static, ()> {
        redial_blocking::Sleep::until(std::time::Instant::now() + d).boxed()
    }
}

/// redial-tokio through the local driver: a current-thread runtime with a `LocalSet`, every
/// session spawned with `Builder::spawn_local` (nothing required to be `Send`).
pub struct TokioLocalAdapter;

impl Suite for TokioLocalAdapter {
    type Rt = redial_tokio::Tokio;
    type Conn = redial_tokio::TcpConnector;
    const NAME: &'static str = "tokio-local";

    fn builder(target: Target) -> Builder<Self::Rt, Self::Conn> {
        redial_tokio::builder(target)
    }

    fn tcp_connector(factory: SocketFactory) -> Self::Conn {
        redial_tokio::TcpConnector::default().with_socket_factory(factory)
    }

    fn spawn<P: Protocol + Send + 'static>(
        b: Builder<Self::Rt, Self::Conn, P>,
    ) -> Result<Ends, ConfigError> {
        b.spawn_local()
    }

    fn run_task<P: Protocol + Send + 'static>(
        task: SessionTask<Self::Rt, CountingConnector<Self::Conn>, P>,
    ) -> TaskRun {
        let (run, fut) = TaskRun::local(task);
        tokio::task::spawn_local(fut);
        run
    }

    fn block_on<F: Future<Output = ()> + 'static>(f: F) {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        tokio::task::LocalSet::new().block_on(&rt, f)
    }

    fn sleep(d: Duration) -> LocalBoxFuture<'static, ()> {
        tokio::time::sleep(d).boxed_local()
    }
}

/// redial-monoio: a thread-per-core runtime (io_uring, or epoll where the kernel refuses
/// it), every session a local task.
pub struct MonoioAdapter;

impl Suite for MonoioAdapter {
    type Rt = redial_monoio::Monoio;
    type Conn = redial_monoio::TcpConnector;
    const NAME: &'static str = "monoio";

    fn builder(target: Target) -> Builder<Self::Rt, Self::Conn> {
        redial_monoio::builder(target)
    }

    fn tcp_connector(factory: SocketFactory) -> Self::Conn {
        redial_monoio::TcpConnector::default().with_socket_factory(factory)
    }

    fn spawn<P: Protocol + Send + 'static>(
        b: Builder<Self::Rt, Self::Conn, P>,
    ) -> Result<Ends, ConfigError> {
        b.spawn_local()
    }

    fn run_task<P: Protocol + Send + 'static>(
        task: SessionTask<Self::Rt, CountingConnector<Self::Conn>, P>,
    ) -> TaskRun {
        let (run, fut) = TaskRun::local(task);
        drop(monoio::spawn(fut));
        run
    }

    fn block_on<F: Future<Output = ()> + 'static>(f: F) {
        redial_monoio::block_on(f)
    }

    fn sleep(d: Duration) -> LocalBoxFuture<'static, ()> {
        monoio::time::sleep(d).boxed_local()
    }
}
