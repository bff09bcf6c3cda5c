//! TLS over any connector, with tokio-rustls (feature `tls`).
//!
//! [`TlsConnector`] wraps an inner [`Connector`] (the [`TcpConnector`] by default: TCP, Unix
//! sockets, a [`SocketFactory`](crate::SocketFactory)) and runs the rustls handshake on its
//! stream, inside the attempt's connect deadline (the driver drops the whole dial when it
//! passes) and before the protocol's own handshake. At every attempt it asks the
//! [`TlsSettings`]' provider for the config and names the server by the endpoint's host name
//! (or the explicit [`TlsSettings::with_server_name`]), for SNI and verification.
//!
//! ```no_run
//! use redial_tokio::core::proto::resp::{cmd, Resp};
//! use redial_tokio::tls::{TlsOptions, TlsSettings};
//! use redial_tokio::Delivery;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let tls = TlsSettings::from_options(TlsOptions::ca_file("ca.crt")).expect("CA file");
//! let (handle, _inbound, _events) = redial_tokio::tls_builder("localhost:6380", tls)
//!     .protocol(Resp::new())
//!     .spawn()
//!     .expect("valid config");
//! let pong = handle.request(cmd(["PING"]), Delivery::AtMostOnce).await;
//! # let _ = pong;
//! # }
//! ```
//!
//! A certificate the server cannot prove (unknown CA, wrong name, expired) fails the attempt
//! with [`NetError::PermissionDenied`](crate::NetError::PermissionDenied), which the session
//! does not retry; a reset or a handshake cut by the deadline is retried like any network
//! error.

use std::fmt;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use futures::future::BoxFuture;
use tokio::io::ReadBuf;

use crate::{ConnectError, Connector, Dial, TcpConnector};

pub use redial_tls::{
    classify_handshake, fixed, is_certificate_error, pki_types, read_greeting_line, reloading,
    rustls, Attempt, ClientConfig, ClientIdentity, ConfigProvider, Greeting, Handshake, Roots,
    TlsError, TlsOptions, TlsSettings, DEFAULT_MAX_GREETING,
};

/// Dials through an inner connector, then runs a TLS handshake (tokio-rustls) on the stream.
#[derive(Clone)]
pub struct TlsConnector<C = TcpConnector> {
    inner: C,
    tls: TlsSettings,
}

impl<C: fmt::Debug> fmt::Debug for TlsConnector<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsConnector")
            .field("inner", &self.inner)
            .field("tls", &self.tls)
            .finish()
    }
}

impl TlsConnector<TcpConnector> {
    /// TLS over the adapter's TCP (and Unix) connector.
    pub fn new(tls: TlsSettings) -> Self {
        TlsConnector::wrap(TcpConnector::default(), tls)
    }
}

impl<C> TlsConnector<C> {
    /// TLS over `inner`.
    pub fn wrap(inner: C, tls: TlsSettings) -> Self {
        TlsConnector { inner, tls }
    }

    /// The inner connector.
    pub fn inner(&self) -> &C {
        &self.inner
    }

    /// The inner connector, to adjust it in place (a socket factory, say).
    pub fn inner_mut(&mut self) -> &mut C {
        &mut self.inner
    }

    /// The TLS settings.
    pub fn settings(&self) -> &TlsSettings {
        &self.tls
    }
}

impl<C: Connector> Connector for TlsConnector<C>
where
    C::Future: Send,
    C::Stream: Send,
{
    type Stream = TlsStream<C::Stream>;
    type Future = BoxFuture<'static, Result<TlsStream<C::Stream>, ConnectError>>;

    fn connect(&self, dial: &Dial) -> Self::Future {
        // Config and name first: an endpoint TLS cannot name fails before any packet is sent.
        let attempt = match self.tls.attempt(&dial.endpoint) {
            Ok(a) => a,
            Err(e) => return Box::pin(std::future::ready(Err(e))),
        };
        let handshake = self.tls.handshake();
        let inner = self.inner.connect(dial);
        Box::pin(handshake_over(inner, attempt, handshake))
    }
}

async fn handshake_over<S, F>(
    inner: F,
    attempt: Attempt,
    handshake: Handshake,
) -> Result<TlsStream<S>, ConnectError>
where
    S: futures::io::AsyncRead + futures::io::AsyncWrite + Unpin,
    F: Future<Output = Result<S, ConnectError>>,
{
    let mut stream = inner.await?;
    let greeting = match handshake {
        Handshake::AfterGreeting(g) => read_greeting_line(&mut stream, g).await?,
        _ => Vec::new(),
    };
    let tls = tokio_rustls::TlsConnector::from(attempt.config)
        .connect(attempt.server_name.clone(), Compat(stream))
        .await
        .map_err(|e| classify_handshake(e, &attempt.server_name))?;
    Ok(TlsStream {
        greeting,
        greeting_read: 0,
        tls,
    })
}

/// A TLS stream over the inner connector's stream `S`, as a `futures` reader and writer.
/// With [`Handshake::AfterGreeting`], its first bytes are the plaintext greeting line.
pub struct TlsStream<S = crate::Stream> {
    greeting: Vec<u8>,
    greeting_read: usize,
    tls: tokio_rustls::client::TlsStream<Compat<S>>,
}

impl<S> TlsStream<S> {
    /// The rustls connection: negotiated protocol version, ALPN, the server's certificates.
    pub fn connection(&self) -> &rustls::ClientConnection {
        self.tls.get_ref().1
    }

    /// The inner stream.
    pub fn get_ref(&self) -> &S {
        &self.tls.get_ref().0 .0
    }
}

impl<S> fmt::Debug for TlsStream<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let c = self.connection();
        f.debug_struct("TlsStream")
            .field("protocol_version", &c.protocol_version())
            .field(
                "cipher_suite",
                &c.negotiated_cipher_suite().map(|s| s.suite()),
            )
            .finish_non_exhaustive()
    }
}

impl<S> futures::io::AsyncRead for TlsStream<S>
where
    S: futures::io::AsyncRead + futures::io::AsyncWrite + Unpin,
{
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        if this.greeting_read < this.greeting.len() {
            let rest = &this.greeting[this.greeting_read..];
            let n = rest.len().min(buf.len());
            buf[..n].copy_from_slice(&rest[..n]);
            this.greeting_read += n;
            if this.greeting_read == this.greeting.len() {
                this.greeting = Vec::new();
                this.greeting_read = 0;
            }
            return Poll::Ready(Ok(n));
        }
        let mut rb = ReadBuf::new(buf);
        ready!(tokio::io::AsyncRead::poll_read(
            Pin::new(&mut this.tls),
            cx,
            &mut rb
        ))?;
        Poll::Ready(Ok(rb.filled().len()))
    }
}

impl<S> futures::io::AsyncWrite for TlsStream<S>
where
    S: futures::io::AsyncRead + futures::io::AsyncWrite + Unpin,
{
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        tokio::io::AsyncWrite::poll_write(Pin::new(&mut self.tls), cx, buf)
    }
    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        tokio::io::AsyncWrite::poll_write_vectored(Pin::new(&mut self.tls), cx, bufs)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        tokio::io::AsyncWrite::poll_flush(Pin::new(&mut self.tls), cx)
    }
    fn poll_close(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        tokio::io::AsyncWrite::poll_shutdown(Pin::new(&mut self.tls), cx)
    }
}

/// The tokio I/O traits over a `futures` stream, for tokio-rustls.
struct Compat<S>(S);

impl<S: futures::io::AsyncRead + Unpin> tokio::io::AsyncRead for Compat<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        // tokio-rustls reads into initialised memory: this zeroes nothing.
        let n = ready!(Pin::new(&mut self.0).poll_read(cx, buf.initialize_unfilled()))?;
        buf.advance(n);
        Poll::Ready(Ok(()))
    }
}

impl<S: futures::io::AsyncWrite + Unpin> tokio::io::AsyncWrite for Compat<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }
    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write_vectored(cx, bufs)
    }
    fn is_write_vectored(&self) -> bool {
        true
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_close(cx)
    }
}
