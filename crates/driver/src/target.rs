//! What a session connects to: a `host:port`, fixed addresses, or a user [`Discover`].

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;

use futures::future::BoxFuture;

/// Finds the endpoints of a service. Called afresh on every connection attempt, so a
/// service that moves is followed; never cached by the driver.
pub trait Discover: Send + Sync + 'static {
    /// The current endpoints, in preference order (the core rotates through them).
    fn discover(&self) -> BoxFuture<'static, io::Result<Vec<SocketAddr>>>;
}

/// Where a session connects. Build it with `From`: a `"host:port"` string (resolved on every
/// attempt), a [`SocketAddr`], a `Vec<SocketAddr>`, or [`Target::discover`].
#[derive(Clone)]
pub enum Target {
    /// A host name (or literal IP) and port, resolved on every attempt.
    HostPort(String),
    /// Fixed addresses.
    Addrs(Vec<SocketAddr>),
    /// User discovery.
    Discover(Arc<dyn Discover>),
}

impl Target {
    /// A target served by a user [`Discover`] implementation.
    pub fn discover(d: impl Discover) -> Self {
        Target::Discover(Arc::new(d))
    }

    /// Splits `"host:port"` (also `"[v6]:port"`); `None` when it has no valid port.
    pub(crate) fn split_host_port(s: &str) -> Option<(String, u16)> {
        let (host, port) = s.rsplit_once(':')?;
        let port = port.parse().ok()?;
        let host = host
            .strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .unwrap_or(host);
        (!host.is_empty()).then(|| (host.to_owned(), port))
    }
}

impl fmt::Debug for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Target::HostPort(s) => write!(f, "HostPort({s:?})"),
            Target::Addrs(a) => write!(f, "Addrs({a:?})"),
            Target::Discover(_) => f.write_str("Discover(..)"),
        }
    }
}

impl From<&str> for Target {
    fn from(s: &str) -> Self {
        Target::from(s.to_owned())
    }
}

impl From<String> for Target {
    fn from(s: String) -> Self {
        match s.parse::<SocketAddr>() {
            Ok(a) => Target::Addrs(vec![a]),
            Err(_) => Target::HostPort(s),
        }
    }
}

impl From<SocketAddr> for Target {
    fn from(a: SocketAddr) -> Self {
        Target::Addrs(vec![a])
    }
}

impl From<Vec<SocketAddr>> for Target {
    fn from(a: Vec<SocketAddr>) -> Self {
        Target::Addrs(a)
    }
}

impl<D: Discover> From<Arc<D>> for Target {
    fn from(d: Arc<D>) -> Self {
        Target::Discover(d)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_port_forms() {
        assert_eq!(
            Target::split_host_port("localhost:6379"),
            Some(("localhost".into(), 6379))
        );
        assert_eq!(
            Target::split_host_port("[::1]:80"),
            Some(("::1".into(), 80))
        );
        assert_eq!(Target::split_host_port("nohost"), None);
        assert_eq!(Target::split_host_port(":80"), None);
        assert!(matches!(Target::from("127.0.0.1:1"), Target::Addrs(_)));
        assert!(matches!(Target::from("db:1"), Target::HostPort(_)));
    }
}
