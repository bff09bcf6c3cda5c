//! The connector: one async trait through which every connection is made (TCP, TLS, Unix
//! sockets, a user's dialer).
//!
//! The driver owns the deadline: it drops the connector's future when the attempt's connect
//! deadline passes, so a connector never needs a timeout of its own, and nothing may block a
//! thread. A connector that wraps another (TLS over TCP) runs its handshake inside the same
//! deadline, before the protocol's own handshake.

use std::fmt;
use std::future::Future;
use std::io;
use std::sync::Arc;

use futures::io::{AsyncRead, AsyncWrite};
use redial_core::NetError;
use socket2::{Domain, Protocol, Socket, Type};

use crate::socket::SocketOptions;
use crate::target::{Endpoint, EndpointAddr};

/// One attempt's dial: where to, and how.
#[derive(Clone, Debug)]
pub struct Dial {
    /// The endpoint: address, and the host name it was found under.
    pub endpoint: Endpoint,
    /// The socket options to set.
    pub options: SocketOptions,
}

/// Why a dial failed, classified for the session: a certificate the peer cannot prove is
/// permanent ([`NetError::PermissionDenied`]), a reset handshake is retried.
pub struct ConnectError {
    /// The class.
    pub class: NetError,
    /// What happened, for the event stream and the logs.
    pub error: io::Error,
}

impl ConnectError {
    /// An error of class `class`.
    pub fn new(class: NetError, error: io::Error) -> Self {
        ConnectError { class, error }
    }
}

impl From<io::Error> for ConnectError {
    fn from(error: io::Error) -> Self {
        ConnectError {
            class: NetError::from_io(&error),
            error,
        }
    }
}

impl fmt::Debug for ConnectError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ConnectError({:?}: {})", self.class, self.error)
    }
}

impl fmt::Display for ConnectError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.class, self.error)
    }
}

impl std::error::Error for ConnectError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.error)
    }
}

/// Makes connections. The built-in TCP connectors of the adapters implement it; TLS wraps
/// one of them; a test or a user can write their own.
pub trait Connector: 'static {
    /// A connected stream, read and written by the session's one task.
    type Stream: AsyncRead + AsyncWrite + Unpin + 'static;
    /// A dial in progress.
    type Future: Future<Output = Result<Self::Stream, ConnectError>> + 'static;

    /// Starts a dial.
    fn connect(&self, dial: &Dial) -> Self::Future;
}

/// Creates the socket of a dial before it connects: to bind it, mark it, or make it in another
/// network namespace. It gets the endpoint and returns an unconnected socket; the connector
/// sets the options, makes it non-blocking and connects it.
pub type SocketFactory = Arc<dyn Fn(&Endpoint) -> io::Result<Socket> + Send + Sync>;

/// A new unconnected stream socket for `endpoint`, from `factory` or the default, with
/// `options` set (TCP only) and non-blocking: for connectors built on readiness-based I/O.
pub fn new_socket(
    endpoint: &Endpoint,
    options: &SocketOptions,
    factory: Option<&SocketFactory>,
) -> io::Result<Socket> {
    let socket = match factory {
        Some(f) => f(endpoint)?,
        None => match &endpoint.addr {
            EndpointAddr::Ip(a) => {
                Socket::new(Domain::for_address(*a), Type::STREAM, Some(Protocol::TCP))?
            }
            #[cfg(unix)]
            EndpointAddr::Unix(_) => Socket::new(Domain::UNIX, Type::STREAM, None)?,
            #[cfg(not(unix))]
            EndpointAddr::Unix(_) => {
                return Err(io::Error::new(
                    io::ErrorKind::Unsupported,
                    "Unix sockets need a Unix platform",
                ))
            }
        },
    };
    if matches!(endpoint.addr, EndpointAddr::Ip(_)) {
        options.apply(socket2::SockRef::from(&socket))?;
    }
    socket.set_nonblocking(true)?;
    Ok(socket)
}

/// Starts a non-blocking connect of `socket` to `endpoint`: `Ok(true)` when it connected at
/// once, `Ok(false)` when it is in progress (wait until writable, then
/// [`finish_connect`]).
pub fn start_connect(socket: &Socket, endpoint: &Endpoint) -> io::Result<bool> {
    let addr = match &endpoint.addr {
        EndpointAddr::Ip(a) => socket2::SockAddr::from(*a),
        #[cfg(unix)]
        EndpointAddr::Unix(p) => socket2::SockAddr::unix(p)?,
        #[cfg(not(unix))]
        EndpointAddr::Unix(_) => return Err(io::ErrorKind::Unsupported.into()),
    };
    match socket.connect(&addr) {
        Ok(()) => Ok(true),
        Err(e) if in_progress(&e) => Ok(false),
        Err(e) => Err(e),
    }
}

/// After a non-blocking connect became writable: whether it succeeded.
pub fn finish_connect(socket: &Socket) -> io::Result<()> {
    match socket.take_error()? {
        Some(e) => Err(e),
        None => match socket.peer_addr() {
            Ok(_) => Ok(()),
            // Writable but not connected: the error comes with the next read.
            Err(e) if e.kind() == io::ErrorKind::NotConnected => {
                let mut b = [std::mem::MaybeUninit::uninit(); 1];
                match socket.recv(&mut b) {
                    Err(e) => Err(e),
                    Ok(_) => Err(io::ErrorKind::NotConnected.into()),
                }
            }
            Err(e) => Err(e),
        },
    }
}

fn in_progress(e: &io::Error) -> bool {
    #[cfg(unix)]
    if e.raw_os_error() == Some(libc::EINPROGRESS) {
        return true;
    }
    e.kind() == io::ErrorKind::WouldBlock
}
