//! The few runtime calls the driver needs: a clock, one timer, TCP connect, DNS, spawn.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::time::Instant as StdInstant;

use futures::io::{AsyncRead, AsyncWrite};

use crate::socket::SocketOptions;

/// An async runtime as the driver sees it. Implement this (about a hundred lines) to run
/// redial on a new executor; see `docs/PORTING.md`.
///
/// Every returned future is `'static`: implementations clone what they need into an
/// `async move` block.
pub trait Runtime: Clone + Send + Sync + 'static {
    /// The read half of a connected TCP stream.
    type Reader: AsyncRead + Send + Unpin + 'static;
    /// The write half of the same stream; reads and writes run concurrently.
    type Writer: AsyncWrite + Send + Unpin + 'static;
    /// A one-shot timer future (its output is ignored).
    type Sleep: Future + Send + 'static;

    /// The runtime's monotonic clock. Under a virtual clock (`tokio::time::pause`) this must
    /// be the virtual time, because every deadline is checked against it.
    fn now(&self) -> StdInstant;

    /// A timer that completes at `deadline` (or soon after).
    fn sleep_until(&self, deadline: StdInstant) -> Self::Sleep;

    /// Opens a TCP connection to `addr` and applies `options` (see
    /// [`SocketOptions::apply`]). The driver bounds it by the core's dial deadline.
    fn connect(
        &self,
        addr: SocketAddr,
        options: &SocketOptions,
    ) -> impl Future<Output = io::Result<(Self::Reader, Self::Writer)>> + Send + 'static;

    /// Registers an already connected std stream (from a user [`crate::Connector`]) with the
    /// reactor and splits it. The driver has already applied the socket options.
    fn register(&self, stream: std::net::TcpStream) -> io::Result<(Self::Reader, Self::Writer)>;

    /// Resolves `host:port` off the reactor thread (DNS may block).
    fn resolve(
        &self,
        host: String,
        port: u16,
    ) -> impl Future<Output = io::Result<Vec<SocketAddr>>> + Send + 'static;

    /// Runs `task` to completion in the background.
    fn spawn(&self, task: impl Future<Output = ()> + Send + 'static);
}
