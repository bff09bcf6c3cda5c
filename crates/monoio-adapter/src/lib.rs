//! # redial-monoio
//!
//! Reconnecting, heartbeating TCP sessions on [monoio](https://docs.rs/monoio), a
//! thread-per-core runtime: the [`redial_core`](redial_driver::core) state machine driven by
//! the shared [`redial_driver`] loop as a *local* task ([`Builder::spawn_local`]), nothing of
//! it required to be `Send`.
//!
//! ## Quick start
//!
//! ```no_run
//! use futures::StreamExt;
//! use redial_monoio::core::proto::resp::{cmd, Resp, Value};
//! use redial_monoio::Delivery;
//!
//! redial_monoio::block_on(async {
//!     let (handle, _inbound, mut events) = redial_monoio::builder("127.0.0.1:6379")
//!         .protocol(Resp::new())
//!         .spawn_local()
//!         .expect("valid config");
//!     match handle.request(cmd(["INCR", "visits"]), Delivery::AtMostOnce).await {
//!         Ok(reply) => println!("{}", Value::parse(&reply.body).unwrap().0.to_cli()),
//!         Err(undelivered) => println!("{:?}", undelivered.outcome),
//!     }
//!     monoio::spawn(async move {
//!         while let Some(e) = events.next().await {
//!             println!("{:?} {:?}", e.notification, e.detail);
//!         }
//!     });
//!     handle.close_graceful(std::time::Duration::from_secs(1)).await;
//! });
//! ```
//!
//! ## What a monoio runtime needs
//!
//! - **A timer**: build it with `enable_timer()` ([`block_on`] does).
//! - **Cross-thread wakers**: a handle on another thread (or the resolver's thread) wakes the
//!   session; this crate turns on monoio's `sync` feature for that.
//! - **Either driver**: io_uring where the kernel allows it, epoll otherwise
//!   (`FusionDriver`, what [`block_on`] uses). Sockets use monoio's poll-based streams
//!   (`poll-io`), since the driver reads and writes through `AsyncRead`/`AsyncWrite`.
//!
//! Sockets are made with `socket2` (options, a [`SocketFactory`]) and handed to monoio with
//! `from_std`, so no `unsafe` is needed for socket options. Name resolution runs
//! `std::net::ToSocketAddrs` on a thread of its own per attempt.
//!
//! Everything but [`Monoio`], [`builder`], [`block_on`], [`block_on_with`], [`Driver`], [`Stream`]
//! and [`TcpConnector`] is
//! re-exported from [`redial_driver`], as in the other adapters.

//!
//! ## Features
//!
//! | feature | default | what |
//! |---|---|---|
//! | `record` | no | record sessions as JSON lines (`Builder::record`) and replay them (`trace`) |
//! | `metrics` | no | session metrics through the `metrics` facade ([`metrics`] lists them; `Builder::metrics_name`) |

#![cfg_attr(docsrs, feature(doc_cfg))]
#![deny(missing_docs)]
#![forbid(unsafe_code)]

use std::future::Future;
use std::io;
use std::net::{SocketAddr, ToSocketAddrs};
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant as StdInstant;

use futures::future::LocalBoxFuture;
use monoio::net::tcp::stream_poll::TcpStreamPoll;
use monoio::net::unix::stream_poll::UnixStreamPoll;
use tokio::io::{AsyncRead as TokioRead, AsyncWrite as TokioWrite, ReadBuf};

pub use redial_driver::*;

/// The monoio runtime, as the driver sees it. It spawns sessions on the current thread's
/// monoio runtime ([`SpawnLocal`]); it has no [`Spawn`]: a monoio task never moves thread.
#[derive(Clone, Copy, Debug, Default)]
pub struct Monoio;

/// A session builder on monoio dialing TCP (or Unix sockets for `unix:` targets); start it
/// with [`Builder::spawn_local`] inside a monoio runtime.
pub fn builder(target: impl Into<Target>) -> Builder<Monoio, TcpConnector> {
    Builder::new(Monoio, TcpConnector::default(), target)
}

/// Which monoio driver a runtime uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Driver {
    /// io_uring where the kernel allows it, epoll otherwise (monoio's `FusionDriver`).
    Auto,
    /// io_uring only (fails to build where the kernel refuses it).
    IoUring,
    /// epoll (monoio's `LegacyDriver`).
    Epoll,
}

/// Runs `fut` to completion on a new monoio runtime on this thread: io_uring if the kernel
/// allows it, epoll otherwise, with the timer enabled.
///
/// # Panics
/// If no runtime can be built (neither io_uring nor epoll is available).
pub fn block_on<F: Future>(fut: F) -> F::Output {
    block_on_with(Driver::Auto, fut).expect("a monoio runtime (io_uring or epoll)")
}

/// Like [`block_on`] on the driver of your choice; the error says why the runtime could not
/// be built (io_uring refused by the kernel or a seccomp policy, say).
pub fn block_on_with<F: Future>(driver: Driver, fut: F) -> io::Result<F::Output> {
    Ok(match driver {
        Driver::Auto => monoio::RuntimeBuilder::<monoio::FusionDriver>::new()
            .enable_timer()
            .build()?
            .block_on(fut),
        Driver::IoUring => monoio::RuntimeBuilder::<monoio::IoUringDriver>::new()
            .enable_timer()
            .build()?
            .block_on(fut),
        Driver::Epoll => monoio::RuntimeBuilder::<monoio::LegacyDriver>::new()
            .enable_timer()
            .build()?
            .block_on(fut),
    })
}

impl Runtime for Monoio {
    type Sleep = monoio::time::Sleep;
    type Resolve = LocalBoxFuture<'static, io::Result<Vec<SocketAddr>>>;

    fn now(&self) -> StdInstant {
        StdInstant::now()
    }

    fn sleep_until(&self, deadline: StdInstant) -> Self::Sleep {
        monoio::time::sleep_until(monoio::time::Instant::from_std(deadline))
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

impl SpawnLocal for Monoio {
    /// # Panics
    /// Outside a monoio runtime.
    fn spawn_local(&self, task: impl Future<Output = ()> + 'static) {
        // Dropping the join handle detaches the task.
        drop(monoio::spawn(task));
    }
}

/// A connected monoio stream (TCP or Unix), poll-based.
pub enum Stream {
    /// TCP.
    Tcp(TcpStreamPoll),
    /// A Unix domain socket.
    Unix(UnixStreamPoll),
}

impl std::fmt::Debug for Stream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Stream::Tcp(s) => f
                .debug_struct("Stream::Tcp")
                .field("peer", &s.peer_addr().ok())
                .finish(),
            Stream::Unix(_) => f.write_str("Stream::Unix"),
        }
    }
}

macro_rules! each {
    ($s:expr, $x:ident => $e:expr) => {
        match $s {
            Stream::Tcp($x) => $e,
            Stream::Unix($x) => $e,
        }
    };
}

impl futures::io::AsyncRead for Stream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        let mut rb = ReadBuf::new(buf);
        let r = each!(&mut *self, s => Pin::new(s).poll_read(cx, &mut rb));
        r.map_ok(|()| rb.filled().len())
    }
}

impl futures::io::AsyncWrite for Stream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        each!(&mut *self, s => Pin::new(s).poll_write(cx, buf))
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        each!(&mut *self, s => Pin::new(s).poll_write_vectored(cx, bufs))
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        each!(&mut *self, s => Pin::new(s).poll_flush(cx))
    }

    fn poll_close(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        each!(&mut *self, s => Pin::new(s).poll_shutdown(cx))
    }
}

/// Dials TCP (and Unix sockets) for monoio. Each socket is made with `socket2` (by a
/// [`SocketFactory`] when given: bound, marked, or in another network namespace), connected
/// without blocking, then handed to monoio.
#[derive(Clone, Default)]
pub struct TcpConnector {
    factory: Option<SocketFactory>,
}

impl std::fmt::Debug for TcpConnector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TcpConnector")
            .field("factory", &self.factory.is_some())
            .finish()
    }
}

impl TcpConnector {
    /// Makes every TCP socket with `factory`.
    pub fn with_socket_factory(mut self, factory: SocketFactory) -> Self {
        self.factory = Some(factory);
        self
    }

    /// Dials `dial`: for connectors built on top.
    pub fn dial(
        &self,
        dial: &Dial,
    ) -> impl Future<Output = Result<Stream, ConnectError>> + 'static {
        let started = new_socket(&dial.endpoint, &dial.options, self.factory.as_ref())
            .and_then(|socket| Ok((start_connect(&socket, &dial.endpoint)?, socket)));
        let unix = matches!(dial.endpoint.addr, EndpointAddr::Unix(_));
        async move {
            let (connected, socket) = started?;
            // A second descriptor of the same socket, to read its connect error from.
            let probe = socket.try_clone()?;
            if unix {
                let s = monoio::net::UnixStream::from_std(socket.into())?;
                if !connected {
                    s.writable(false).await?;
                    finish_connect(&probe)?;
                }
                let s = s.try_into_poll_io().map_err(|(e, _)| e)?;
                return Ok(Stream::Unix(s));
            }
            let s = monoio::net::TcpStream::from_std(socket.into())?;
            if !connected {
                s.writable(false).await?;
                finish_connect(&probe)?;
            }
            let s = s.try_into_poll_io().map_err(|(e, _)| e)?;
            Ok(Stream::Tcp(s))
        }
    }
}

impl Connector for TcpConnector {
    type Stream = Stream;
    type Future = LocalBoxFuture<'static, Result<Stream, ConnectError>>;

    fn connect(&self, dial: &Dial) -> Self::Future {
        Box::pin(self.dial(dial))
    }
}
