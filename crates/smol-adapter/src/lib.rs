//! # redial-smol
//!
//! Reconnecting, heartbeating TCP sessions on smol / async-io: the [`redial_core`](redial_driver::core) state
//! machine driven by the shared [`redial_driver`] loop, with `async-io` sockets and timers and
//! DNS on smol's blocking pool.
//!
//! ## Quick start
//!
//! ```no_run
//! use futures::StreamExt;
//! use redial_smol::core::proto::resp::{cmd, Resp, Value};
//! use redial_smol::{Config, Delivery};
//!
//! redial_smol::block_on(async {
//!     let (handle, _inbound, mut events) = redial_smol::builder("127.0.0.1:6379")
//!         .config(Config::default())
//!         .protocol(Resp::new())
//!         .spawn()
//!         .expect("valid config");
//!
//!     // Queued at once, sent when connected (across reconnects); the reply is this request's.
//!     match handle.request(cmd(["SET", "greeting", "+PONG"]), Delivery::AtMostOnce).await {
//!         Ok(reply) => println!("{}", Value::parse(&reply.body).unwrap().0.to_cli()),
//!         Err(undelivered) => println!("{:?}: {} bytes back", undelivered.outcome, undelivered.payload.len()),
//!     }
//!     smol::spawn(async move {
//!         while let Some(e) = events.next().await {
//!             println!("{:?} {:?}", e.notification, e.detail);
//!         }
//!     })
//!     .detach();
//!     handle.close(redial_smol::CloseMode::Graceful { drain: std::time::Duration::from_secs(1) }).await;
//! });
//! ```
//!
//! With the `tls` feature, [`tls::TlsConnector`] (futures-rustls) wraps any connector and
//! [`tls_builder`] starts a TLS session; see `docs/TLS.md`.
//!
//! Everything but [`Smol`], [`builder`] and [`block_on`] is re-exported from
//! [`redial_driver`], so `redial-tokio` has the very same types: switching runtimes changes
//! the imports and the spawn call, nothing else.
//!
//! Sessions are spawned on smol's global executor (`smol::spawn`), which runs on its own
//! threads; [`block_on`] only drives the future you give it.
//!
//! ## Features
//!
//! | feature | default | what |
//! |---|---|---|
//! | `tls` | no | `tls::TlsConnector` over futures-rustls (ring provider), webpki roots included; `tls_builder` |
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

use smol::{Async, Timer};

pub use redial_driver::*;

#[cfg(feature = "tls")]
#[cfg_attr(docsrs, doc(cfg(feature = "tls")))]
pub mod tls;

/// A session builder on smol dialing TLS over TCP (or Unix sockets) with `tls`:
/// `Builder::new(Smol::default(), tls::TlsConnector::new(tls), target)` (feature `tls`).
#[cfg(feature = "tls")]
#[cfg_attr(docsrs, doc(cfg(feature = "tls")))]
pub fn tls_builder(
    target: impl Into<Target>,
    tls: tls::TlsSettings,
) -> Builder<Smol, tls::TlsConnector> {
    Builder::new(Smol::default(), tls::TlsConnector::new(tls), target)
}

/// The smol / async-io runtime, as the driver sees it. [`Builder::spawn`] runs sessions on
/// smol's global executor (no runtime context needed); [`Builder::spawn_local`] on the
/// thread-local executor of [`LocalExecutor`](smol::LocalExecutor) users drive themselves
/// (see [`Smol::local`]).
#[derive(Clone, Debug, Default)]
pub struct Smol {
    /// The key of a local executor registered on its own thread (see [`Smol::local`]). The
    /// executor itself is not `Send`, so it stays in that thread's registry: a `Smol` made for
    /// spawning `Send` tasks must itself be `Send`.
    local: Option<u64>,
}

thread_local! {
    /// The local executors of this thread, by key (weak: the user owns them).
    static LOCAL_EXECUTORS: std::cell::RefCell<Vec<(u64, std::rc::Weak<smol::LocalExecutor<'static>>)>> =
        const { std::cell::RefCell::new(Vec::new()) };
}

impl Smol {
    /// A runtime whose `spawn_local` runs tasks on `executor` (which you drive), on this
    /// thread.
    pub fn local(executor: &std::rc::Rc<smol::LocalExecutor<'static>>) -> Self {
        static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
        let key = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        LOCAL_EXECUTORS.with(|l| {
            let mut l = l.borrow_mut();
            l.retain(|(_, ex)| ex.strong_count() > 0);
            l.push((key, std::rc::Rc::downgrade(executor)));
        });
        Smol { local: Some(key) }
    }
}

/// A session builder on smol, dialing TCP (or Unix sockets for `unix:` targets).
pub fn builder(target: impl Into<Target>) -> Builder<Smol, TcpConnector> {
    Builder::new(Smol::default(), TcpConnector::default(), target)
}

/// Runs `fut` to completion on the current thread (`smol::block_on`).
pub fn block_on<F: Future>(fut: F) -> F::Output {
    smol::block_on(fut)
}

pin_project_lite::pin_project! {
    /// An async-io timer whose output is `()`.
    #[derive(Debug)]
    pub struct Sleep {
        #[pin]
        timer: Timer,
    }
}

impl Future for Sleep {
    type Output = ();
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        self.project().timer.poll(cx).map(|_| ())
    }
}

impl Runtime for Smol {
    type Sleep = Sleep;
    type Resolve = BoxFuture<'static, io::Result<Vec<SocketAddr>>>;

    fn now(&self) -> StdInstant {
        StdInstant::now()
    }

    fn sleep_until(&self, deadline: StdInstant) -> Sleep {
        Sleep {
            timer: Timer::at(deadline),
        }
    }

    fn resolve(&self, host: &str, port: u16) -> Self::Resolve {
        let host = host.to_owned();
        Box::pin(smol::unblock(move || {
            Ok((host.as_str(), port).to_socket_addrs()?.collect())
        }))
    }
}

impl Spawn for Smol {
    fn spawn(&self, task: impl Future<Output = ()> + Send + 'static) {
        smol::spawn(task).detach();
    }
}

impl SpawnLocal for Smol {
    /// # Panics
    /// If this runtime was not made with [`Smol::local`] on this thread, or its executor is
    /// gone.
    fn spawn_local(&self, task: impl Future<Output = ()> + 'static) {
        let ex = self
            .local
            .and_then(|key| {
                LOCAL_EXECUTORS.with(|l| {
                    l.borrow()
                        .iter()
                        .find(|(k, _)| *k == key)
                        .and_then(|(_, ex)| ex.upgrade())
                })
            })
            .expect("spawn_local needs Smol::local(&executor), on the executor's thread");
        ex.spawn(task).detach();
    }
}

/// A connected async-io stream (TCP or Unix).
#[derive(Debug)]
pub enum Stream {
    /// TCP.
    Tcp(Async<std::net::TcpStream>),
    /// A Unix domain socket.
    #[cfg(unix)]
    Unix(Async<std::os::unix::net::UnixStream>),
}

macro_rules! each {
    ($s:expr, $x:ident => $e:expr) => {
        match $s {
            Stream::Tcp($x) => $e,
            #[cfg(unix)]
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
        each!(&mut *self, s => Pin::new(s).poll_read(cx, buf))
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
        each!(&mut *self, s => Pin::new(s).poll_close(cx))
    }
}

/// Dials TCP (and Unix sockets) on async-io's reactor. With a [`SocketFactory`], each TCP
/// socket is made by it (bound, marked, or in another network namespace) before it connects.
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

    /// Dials `dial`: for connectors built on top (TLS).
    pub fn dial(
        &self,
        dial: &Dial,
    ) -> impl Future<Output = Result<Stream, ConnectError>> + Send + 'static {
        let (dial, factory) = (dial.clone(), self.factory.clone());
        async move {
            match &dial.endpoint.addr {
                EndpointAddr::Ip(_) => {
                    let socket = new_socket(&dial.endpoint, &dial.options, factory.as_ref())?;
                    let connected = start_connect(&socket, &dial.endpoint)?;
                    let stream = Async::new(std::net::TcpStream::from(socket))?;
                    if !connected {
                        stream.writable().await?;
                        finish_connect(&socket2::SockRef::from(stream.get_ref()))?;
                    }
                    Ok(Stream::Tcp(stream))
                }
                #[cfg(unix)]
                EndpointAddr::Unix(path) => Ok(Stream::Unix(
                    Async::<std::os::unix::net::UnixStream>::connect(path).await?,
                )),
                #[cfg(not(unix))]
                EndpointAddr::Unix(_) => Err(ConnectError::from(io::Error::from(
                    io::ErrorKind::Unsupported,
                ))),
            }
        }
    }
}

impl Connector for TcpConnector {
    type Stream = Stream;
    type Future = BoxFuture<'static, Result<Stream, ConnectError>>;

    fn connect(&self, dial: &Dial) -> Self::Future {
        Box::pin(self.dial(dial))
    }
}
