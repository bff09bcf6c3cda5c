//! TCP socket options set on every new connection, through `socket2`.

use std::io;
use std::time::Duration;

use socket2::{SockRef, TcpKeepalive};

/// TCP keepalive probing: the kernel's own dead-peer detection, a backstop under the
/// application heartbeat.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Keepalive {
    /// Idle time before the first probe. Default 30 s.
    pub time: Duration,
    /// Time between probes. Default 10 s.
    pub interval: Duration,
    /// Unanswered probes before the connection is dropped. Default 3.
    pub retries: u32,
}

impl Default for Keepalive {
    fn default() -> Self {
        Keepalive {
            time: Duration::from_secs(30),
            interval: Duration::from_secs(10),
            retries: 3,
        }
    }
}

/// Options applied to every socket the session opens.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SocketOptions {
    /// `TCP_NODELAY`: send small writes at once. Default on (writes are already batched).
    pub nodelay: bool,
    /// TCP keepalive; `None` leaves the system default. Default [`Keepalive::default`].
    pub keepalive: Option<Keepalive>,
    /// `TCP_USER_TIMEOUT` (Linux only, ignored elsewhere): unacknowledged data older than
    /// this kills the connection in the kernel. Default 10 s.
    pub user_timeout: Option<Duration>,
}

impl Default for SocketOptions {
    fn default() -> Self {
        SocketOptions {
            nodelay: true,
            keepalive: Some(Keepalive::default()),
            user_timeout: Some(Duration::from_secs(10)),
        }
    }
}

impl SocketOptions {
    /// Sets the options on a connected socket. Adapters call this from
    /// [`crate::Connector::connect`] with `SockRef::from(&stream)`.
    pub fn apply(&self, sock: SockRef<'_>) -> io::Result<()> {
        sock.set_tcp_nodelay(self.nodelay)?;
        if let Some(k) = self.keepalive {
            let ka = TcpKeepalive::new().with_time(k.time);
            #[cfg(any(unix, windows))]
            let ka = ka.with_interval(k.interval);
            #[cfg(all(unix, not(any(target_os = "openbsd", target_os = "redox"))))]
            let ka = ka.with_retries(k.retries);
            sock.set_tcp_keepalive(&ka)?;
        }
        #[cfg(any(target_os = "linux", target_os = "android"))]
        sock.set_tcp_user_timeout(self.user_timeout)?;
        Ok(())
    }
}
