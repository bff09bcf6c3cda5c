//! # redial-tokio
//!
//! Reconnecting, heartbeating TCP sessions on tokio: the [`redial_core`](redial_driver::core) state machine driven
//! by the shared [`redial_driver`] loop, with tokio sockets, timers and DNS.
//!
//! ## Quick start
//!
//! ```no_run
//! use futures::StreamExt;
//! use redial_tokio::{Config, Delivery, LineCodec};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let (handle, mut inbound, mut events) = redial_tokio::builder("127.0.0.1:6379")
//!     .config(Config::default())
//!     .codec(LineCodec::redis())
//!     .spawn()
//!     .expect("valid config");
//!
//! // Queued at once, delivered when connected (across reconnects).
//! let receipt = handle.send(b"SET greeting hello".to_vec(), Delivery::AtMostOnce);
//! match receipt.await {
//!     Ok(()) => println!("written"),
//!     Err(undelivered) => println!("{:?}: {} bytes back", undelivered.outcome, undelivered.payload.len()),
//! }
//! println!("reply: {:?}", inbound.next().await.map(String::from_utf8));
//! tokio::spawn(async move {
//!     while let Some(e) = events.next().await {
//!         println!("{:?} {:?}", e.notification, e.detail);
//!     }
//! });
//! handle.close(redial_tokio::CloseMode::Graceful { drain: std::time::Duration::from_secs(1) }).await;
//! # }
//! ```
//!
//! Everything but [`Tokio`], [`builder`] and [`block_on`] is re-exported from
//! [`redial_driver`], so `redial-smol` has the very same types: switching runtimes changes
//! the imports and the spawn call, nothing else.
//!
//! The session task reads the clock through `tokio::time`, so tests under
//! `tokio::time::pause()` run on virtual time.

#![deny(missing_docs)]
#![forbid(unsafe_code)]

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{ready, Context, Poll};
use std::time::Instant as StdInstant;

use socket2::SockRef;
use tokio::io::{AsyncRead as _, AsyncWrite as _, ReadBuf};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;

pub use redial_driver::*;

/// The tokio runtime, as the driver sees it. Sessions are spawned with `tokio::spawn`, so
/// [`Builder::spawn`] must be called inside a tokio runtime (any flavour).
#[derive(Clone, Copy, Debug, Default)]
pub struct Tokio;

/// A session builder on tokio: `Builder::new(Tokio, target)`.
pub fn builder(target: impl Into<Target>) -> Builder<Tokio> {
    Builder::new(Tokio, target)
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

/// Read half of a tokio TCP stream, as a `futures` reader.
#[derive(Debug)]
pub struct Reader(OwnedReadHalf);

/// Write half of a tokio TCP stream, as a `futures` writer.
#[derive(Debug)]
pub struct Writer(OwnedWriteHalf);

impl futures::io::AsyncRead for Reader {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        let mut rb = ReadBuf::new(buf);
        ready!(Pin::new(&mut self.0).poll_read(cx, &mut rb))?;
        Poll::Ready(Ok(rb.filled().len()))
    }
}

impl futures::io::AsyncWrite for Writer {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }

    fn poll_close(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
    }
}

fn split(stream: TcpStream) -> (Reader, Writer) {
    let (r, w) = stream.into_split();
    (Reader(r), Writer(w))
}

impl Runtime for Tokio {
    type Reader = Reader;
    type Writer = Writer;
    type Sleep = tokio::time::Sleep;

    fn now(&self) -> StdInstant {
        tokio::time::Instant::now().into_std()
    }

    fn sleep_until(&self, deadline: StdInstant) -> Self::Sleep {
        tokio::time::sleep_until(deadline.into())
    }

    #[allow(clippy::manual_async_fn)]
    fn connect(
        &self,
        addr: SocketAddr,
        options: &SocketOptions,
    ) -> impl Future<Output = io::Result<(Reader, Writer)>> + Send + 'static {
        let options = *options;
        async move {
            let stream = TcpStream::connect(addr).await?;
            options.apply(SockRef::from(&stream))?;
            Ok(split(stream))
        }
    }

    fn register(&self, stream: std::net::TcpStream) -> io::Result<(Reader, Writer)> {
        stream.set_nonblocking(true)?;
        Ok(split(TcpStream::from_std(stream)?))
    }

    // Not `async fn`: the future must not borrow `self` (it is `'static`).
    #[allow(clippy::manual_async_fn)]
    fn resolve(
        &self,
        host: String,
        port: u16,
    ) -> impl Future<Output = io::Result<Vec<SocketAddr>>> + Send + 'static {
        async move {
            Ok(tokio::net::lookup_host((host.as_str(), port))
                .await?
                .collect())
        }
    }

    fn spawn(&self, task: impl Future<Output = ()> + Send + 'static) {
        tokio::spawn(task);
    }
}
