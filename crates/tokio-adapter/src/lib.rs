//! # redial-tokio
//!
//! Reconnecting, heartbeating TCP sessions on tokio: the [`redial_core`](redial_driver::core) state machine driven
//! by the shared [`redial_driver`] loop, with tokio sockets, timers and DNS.
//!
//! ## Quick start
//!
//! ```no_run
//! use futures::StreamExt;
//! use redial_tokio::core::proto::resp::{cmd, Resp, Value};
//! use redial_tokio::{Config, Delivery};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let (handle, _inbound, mut events) = redial_tokio::builder("127.0.0.1:6379")
//!     .config(Config::default())
//!     .protocol(Resp::new())
//!     .spawn()
//!     .expect("valid config");
//!
//! // Queued at once, sent when connected (across reconnects); the reply is this request's.
//! match handle.request(cmd(["SET", "greeting", "+PONG"]), Delivery::AtMostOnce).await {
//!     Ok(reply) => println!("{}", Value::parse(&reply.body).unwrap().0.to_cli()),
//!     Err(undelivered) => println!("{:?}: {} bytes back", undelivered.outcome, undelivered.payload.len()),
//! }
//! tokio::spawn(async move {
//!     while let Some(e) = events.next().await {
//!         println!("{:?} {:?}", e.notification, e.detail);
//!     }
//! });
//! handle.close(redial_tokio::CloseMode::Graceful { drain: std::time::Duration::from_secs(1) }).await;
//! # }
//! ```
//!
//! With the `tls` feature, [`tls::TlsConnector`] (tokio-rustls) wraps any connector and
//! [`tls_builder`] starts a TLS session; see `docs/TLS.md`.
//!
//! Everything but [`Tokio`], [`TcpConnector`], [`builder`] and [`block_on`] is re-exported from
//! [`redial_driver`], so `redial-smol` has the very same types: switching runtimes changes
//! the imports and the spawn call, nothing else.
//!
//! The session task reads the clock through `tokio::time`, so tests under
//! `tokio::time::pause()` run on virtual time.
//!
//! ## Features
//!
//! | feature | default | what |
//! |---|---|---|
//! | `tls` | no | `tls::TlsConnector` over tokio-rustls (ring provider), webpki roots included; `tls_builder` |
//! | `record` | no | record sessions as JSON lines (`Builder::record`) and replay them (`trace`) |
//! | `metrics` | no | session metrics through the `metrics` facade ([`metrics`] lists them; `Builder::metrics_name`) |

#![cfg_attr(docsrs, feature(doc_cfg))]
#![deny(missing_docs)]
#![forbid(unsafe_code)]

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{ready, Context, Poll};
use std::time::Instant as StdInstant;

use tokio::io::{AsyncRead as _, AsyncWrite as _, ReadBuf};
use tokio::net::TcpStream;

pub use redial_driver::*;

#[cfg(feature = "tls")]
#[cfg_attr(docsrs, doc(cfg(feature = "tls")))]
pub mod tls;

/// A session builder on tokio dialing TLS over TCP (or Unix sockets) with `tls`:
/// `Builder::new(Tokio, tls::TlsConnector::new(tls), target)` (feature `tls`).
#[cfg(feature = "tls")]
#[cfg_attr(docsrs, doc(cfg(feature = "tls")))]
pub fn tls_builder(
    target: impl Into<Target>,
    tls: tls::TlsSettings,
) -> Builder<Tokio, tls::TlsConnector> {
    Builder::new(Tokio, tls::TlsConnector::new(tls), target)
}

/// The tokio runtime, as the driver sees it. [`Builder::spawn`] uses `tokio::spawn` (call it
/// inside a tokio runtime, any flavour); [`Builder::spawn_local`] uses
/// `tokio::task::spawn_local` (inside a `LocalSet`).
#[derive(Clone, Copy, Debug, Default)]
pub struct Tokio;

/// A session builder on tokio, dialing TCP (or Unix sockets for `unix:` targets):
/// `Builder::new(Tokio, TcpConnector::default(), target)`.
pub fn builder(target: impl Into<Target>) -> Builder<Tokio, TcpConnector> {
    Builder::new(Tokio, TcpConnector::default(), target)
}

/// Runs `fut` to completion on a fresh current-thread tokio runtime (time and I/O enabled).
///
/// # Panics
/// If the runtime cannot be created (out of file descriptors).
pub fn block_on<F: Future>(fut: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime")
        .block_on(fut)
}

impl Runtime for Tokio {
    type Sleep = tokio::time::Sleep;
    type Resolve = BoxFuture<'static, io::Result<Vec<SocketAddr>>>;

    fn now(&self) -> StdInstant {
        tokio::time::Instant::now().into_std()
    }

    fn sleep_until(&self, deadline: StdInstant) -> Self::Sleep {
        tokio::time::sleep_until(deadline.into())
    }

    fn resolve(&self, host: &str, port: u16) -> Self::Resolve {
        let host = host.to_owned();
        Box::pin(async move {
            Ok(tokio::net::lookup_host((host.as_str(), port))
                .await?
                .collect())
        })
    }
}

impl Spawn for Tokio {
    fn spawn(&self, task: impl Future<Output = ()> + Send + 'static) {
        tokio::spawn(task);
    }
}

impl SpawnLocal for Tokio {
    fn spawn_local(&self, task: impl Future<Output = ()> + 'static) {
        tokio::task::spawn_local(task);
    }
}

/// A connected tokio stream (TCP or Unix), as a `futures` reader and writer.
#[derive(Debug)]
pub enum Stream {
    /// TCP.
    Tcp(TcpStream),
    /// A Unix domain socket.
    #[cfg(unix)]
    Unix(tokio::net::UnixStream),
}

impl Stream {
    /// The tokio stream, for the tokio I/O traits (a TLS layer on top, say).
    pub fn into_tokio(self) -> impl tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send {
        TokioIo(self)
    }
}

/// The tokio I/O traits over [`Stream`].
struct TokioIo(Stream);

macro_rules! each {
    ($s:expr, $x:ident => $e:expr) => {
        match $s {
            Stream::Tcp($x) => $e,
            #[cfg(unix)]
            Stream::Unix($x) => $e,
        }
    };
}

impl tokio::io::AsyncRead for TokioIo {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        each!(&mut self.0, s => Pin::new(s).poll_read(cx, buf))
    }
}

impl tokio::io::AsyncWrite for TokioIo {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        each!(&mut self.0, s => Pin::new(s).poll_write(cx, buf))
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        each!(&mut self.0, s => Pin::new(s).poll_flush(cx))
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        each!(&mut self.0, s => Pin::new(s).poll_shutdown(cx))
    }
}

impl futures::io::AsyncRead for Stream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        let mut rb = ReadBuf::new(buf);
        ready!(each!(&mut *self, s => Pin::new(s).poll_read(cx, &mut rb)))?;
        Poll::Ready(Ok(rb.filled().len()))
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

/// Dials TCP (and Unix sockets) on tokio's reactor. With a [`SocketFactory`], each TCP socket
/// is made by it (bound, marked, or in another network namespace) before it connects.
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

    /// Dials `dial` to a tokio stream: for connectors built on top (TLS).
    pub fn dial(
        &self,
        dial: &Dial,
    ) -> impl Future<Output = Result<Stream, ConnectError>> + Send + 'static {
        let (dial, factory) = (dial.clone(), self.factory.clone());
        async move {
            match &dial.endpoint.addr {
                EndpointAddr::Ip(addr) => {
                    let socket = new_socket(&dial.endpoint, &dial.options, factory.as_ref())?;
                    let socket = tokio::net::TcpSocket::from_std_stream(socket.into());
                    Ok(Stream::Tcp(socket.connect(*addr).await?))
                }
                #[cfg(unix)]
                EndpointAddr::Unix(path) => {
                    Ok(Stream::Unix(tokio::net::UnixStream::connect(path).await?))
                }
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
