//! What a session connects to: a `host:port`, fixed addresses, a Unix socket, or a user
//! [`Discover`], resolved afresh on every attempt into [`Endpoint`]s.

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use futures::future::BoxFuture;
use futures::stream::BoxStream;

/// Where one connection goes: an address, and the host name it was found under (which TLS
/// verifies and sends as SNI).
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Endpoint {
    /// The host name, if the endpoint was found by name.
    pub host: Option<Arc<str>>,
    /// The address.
    pub addr: EndpointAddr,
}

/// An endpoint's address.
#[derive(Clone, PartialEq, Eq, Hash)]
pub enum EndpointAddr {
    /// A TCP address.
    Ip(SocketAddr),
    /// A Unix domain socket.
    Unix(Arc<std::path::Path>),
}

impl Endpoint {
    /// A TCP endpoint, without a host name.
    pub fn ip(addr: SocketAddr) -> Self {
        Endpoint {
            host: None,
            addr: EndpointAddr::Ip(addr),
        }
    }

    /// A TCP endpoint found under `host`.
    pub fn named(host: &str, addr: SocketAddr) -> Self {
        Endpoint {
            host: Some(host.into()),
            addr: EndpointAddr::Ip(addr),
        }
    }

    /// A Unix domain socket.
    pub fn unix(path: impl Into<PathBuf>) -> Self {
        Endpoint {
            host: None,
            addr: EndpointAddr::Unix(path.into().into()),
        }
    }

    /// The TCP address, if it is one.
    pub fn socket_addr(&self) -> Option<SocketAddr> {
        match &self.addr {
            EndpointAddr::Ip(a) => Some(*a),
            EndpointAddr::Unix(_) => None,
        }
    }
}

impl fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.host, &self.addr) {
            (Some(h), EndpointAddr::Ip(a)) => write!(f, "{h} ({a})"),
            (None, EndpointAddr::Ip(a)) => write!(f, "{a}"),
            (_, EndpointAddr::Unix(p)) => write!(f, "unix:{}", p.display()),
        }
    }
}

/// Finds the endpoints of a service. Called afresh on every connection attempt, so a service
/// that moves is followed; never cached by the driver.
pub trait Discover: Send + Sync + 'static {
    /// The current endpoints, in preference order (the session rotates through them).
    fn discover(&self) -> BoxFuture<'static, io::Result<Vec<Endpoint>>>;

    /// Changes as they happen, for a registry that can push them (see `redial-etcd`): each item
    /// is the whole current set. `None` (the default): the set is only polled, on every
    /// attempt.
    fn watch(&self) -> Option<BoxStream<'static, Vec<Endpoint>>> {
        None
    }

    /// Whether the endpoints are peers of equal standing, in no order of preference: each
    /// session then orders them its own way (rendezvous hashing on its seed, see
    /// [`redial_core::spread`]), so a fleet spreads over them and an endpoint that joins gets
    /// its share of new connections. Default `false`: the order given is kept.
    fn spread(&self) -> bool {
        false
    }
}

/// Where a session connects. Build it with `From`: a `"host:port"` string (resolved on every
/// attempt), a `"unix:/path"` string, a [`SocketAddr`], a `Vec<SocketAddr>`, an
/// [`Endpoint`], or [`Target::discover`].
#[derive(Clone)]
pub enum Target {
    /// A host name (or literal IP) and port, resolved on every attempt.
    HostPort(String),
    /// Fixed endpoints.
    Endpoints(Vec<Endpoint>),
    /// User discovery.
    Discover(Arc<dyn Discover>),
}

impl Target {
    /// A target served by a user [`Discover`] implementation.
    pub fn discover(d: impl Discover) -> Self {
        Target::Discover(Arc::new(d))
    }

    /// Splits `"host:port"` (also `"[v6]:port"`); `None` when it has no valid port.
    pub fn split_host_port(s: &str) -> Option<(String, u16)> {
        let (host, port) = s.rsplit_once(':')?;
        let port = port.parse().ok()?;
        let host = host
            .strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .unwrap_or(host);
        (!host.is_empty()).then(|| (host.to_owned(), port))
    }

    /// The host name TLS should verify, when the target names one.
    pub fn host_name(&self) -> Option<String> {
        match self {
            Target::HostPort(s) => {
                let (h, _) = Target::split_host_port(s)?;
                h.parse::<std::net::IpAddr>().is_err().then_some(h)
            }
            Target::Endpoints(e) => e.iter().find_map(|e| e.host.as_deref().map(str::to_owned)),
            Target::Discover(_) => None,
        }
    }
}

impl fmt::Debug for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Target::HostPort(s) => write!(f, "HostPort({s:?})"),
            Target::Endpoints(a) => write!(f, "Endpoints({a:?})"),
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
        if let Some(path) = s.strip_prefix("unix:") {
            return Target::Endpoints(vec![Endpoint::unix(path)]);
        }
        match s.parse::<SocketAddr>() {
            Ok(a) => Target::Endpoints(vec![Endpoint::ip(a)]),
            Err(_) => Target::HostPort(s),
        }
    }
}

impl From<SocketAddr> for Target {
    fn from(a: SocketAddr) -> Self {
        Target::Endpoints(vec![Endpoint::ip(a)])
    }
}

impl From<Vec<SocketAddr>> for Target {
    fn from(a: Vec<SocketAddr>) -> Self {
        Target::Endpoints(a.into_iter().map(Endpoint::ip).collect())
    }
}

impl From<Endpoint> for Target {
    fn from(e: Endpoint) -> Self {
        Target::Endpoints(vec![e])
    }
}

impl From<Vec<Endpoint>> for Target {
    fn from(e: Vec<Endpoint>) -> Self {
        Target::Endpoints(e)
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
        assert!(matches!(Target::from("127.0.0.1:1"), Target::Endpoints(_)));
        assert!(matches!(Target::from("db:1"), Target::HostPort(_)));
        let Target::Endpoints(e) = Target::from("unix:/tmp/r.sock") else {
            panic!("a unix target");
        };
        assert_eq!(e[0].to_string(), "unix:/tmp/r.sock");
        assert_eq!(
            Target::from("db.example:1").host_name().as_deref(),
            Some("db.example")
        );
        assert_eq!(Target::from("127.0.0.1:1").host_name(), None);
    }
}
