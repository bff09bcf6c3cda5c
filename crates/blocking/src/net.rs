//! Sockets: non-blocking `socket2` sockets (TCP or Unix) whose waits go to the polling
//! thread's reactor.

use std::future::Future;
use std::io::{self, Read, Write};
use std::pin::Pin;
use std::task::{Context, Poll};

use redial_driver::{
    finish_connect, new_socket, start_connect, BoxFuture, ConnectError, Connector, Dial,
    SocketFactory,
};
use socket2::Socket;

use crate::reactor::{Direction, Registration};

/// A connected non-blocking socket (TCP or a Unix domain socket).
pub struct Stream {
    socket: Socket,
    reg: Registration,
}

impl std::fmt::Debug for Stream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Stream")
            .field("local", &self.socket.local_addr().ok())
            .field("peer", &self.socket.peer_addr().ok())
            .finish()
    }
}

impl Stream {
    fn new(socket: Socket) -> Self {
        Stream {
            socket,
            reg: Registration::new(),
        }
    }

    /// The socket, for options (`socket2::SockRef::from(stream.socket())` works as well).
    pub fn socket(&self) -> &Socket {
        &self.socket
    }

    /// Runs `op` until it does not block; when it would, waits for `dir` on the reactor.
    fn io<T>(
        &mut self,
        cx: &Context<'_>,
        dir: Direction,
        mut op: impl FnMut(&Socket) -> io::Result<T>,
    ) -> Poll<io::Result<T>> {
        loop {
            match op(&self.socket) {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    if let Err(e) = self.reg.wait(&self.socket, dir, cx) {
                        return Poll::Ready(Err(e));
                    }
                    // Armed level-triggered: if it became ready meanwhile, the poller says
                    // so at once. Try once more anyway, so a ready socket never waits a turn.
                    match op(&self.socket) {
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Poll::Pending,
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                        r => return Poll::Ready(r),
                    }
                }
                r => return Poll::Ready(r),
            }
        }
    }
}

impl Drop for Stream {
    fn drop(&mut self) {
        self.reg.deregister(&self.socket);
    }
}

impl futures::io::AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        self.get_mut()
            .io(cx, Direction::Read, |mut s| s.read(&mut *buf))
    }
}

impl futures::io::AsyncWrite for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.get_mut()
            .io(cx, Direction::Write, |mut s| s.write(buf))
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.get_mut()
            .io(cx, Direction::Write, |mut s| s.write_vectored(bufs))
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_close(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(self.socket.shutdown(std::net::Shutdown::Write))
    }
}

/// A connect in progress: writable means it ended (well or not).
struct Connecting {
    stream: Option<Stream>,
}

impl Future for Connecting {
    type Output = Result<Stream, ConnectError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let Some(s) = self.stream.as_mut() else {
            return Poll::Ready(Err(ConnectError::from(io::Error::other(
                "connect polled after it ended",
            ))));
        };
        // Zero-length probe: `poll` reports writable once the handshake ended either way.
        match s.io(cx, Direction::Write, |sock| match sock.peer_addr() {
            Ok(_) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotConnected => match sock.take_error()? {
                Some(e) => Err(e),
                None => Err(io::ErrorKind::WouldBlock.into()),
            },
            Err(e) => Err(e),
        }) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(r) => {
                let stream = self.stream.take().expect("checked above");
                Poll::Ready(
                    r.and_then(|()| finish_connect(&stream.socket))
                        .map(|()| stream)
                        .map_err(ConnectError::from),
                )
            }
        }
    }
}

/// Dials TCP (and Unix sockets for `unix:` targets) with non-blocking sockets on the polling
/// thread's reactor. With a [`SocketFactory`], each TCP socket is made by it (bound, marked,
/// or in another network namespace) before it connects.
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
    ) -> impl Future<Output = Result<Stream, ConnectError>> + Send + 'static {
        let started = new_socket(&dial.endpoint, &dial.options, self.factory.as_ref())
            .and_then(|socket| Ok((start_connect(&socket, &dial.endpoint)?, socket)));
        async move {
            let (connected, socket) = started?;
            let stream = Stream::new(socket);
            if connected {
                return Ok(stream);
            }
            Connecting {
                stream: Some(stream),
            }
            .await
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
