//! Where a connection goes, as the core sees it.

use core::fmt;
use core::net::SocketAddr;

/// The address of one endpoint: an IP socket address, or a host-defined local endpoint (a
/// Unix socket path, say) named by its index in the host's last resolution. The core only
/// rotates over addresses and reports them; the host knows what they are.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Addr {
    /// An IP address and port.
    Ip(SocketAddr),
    /// The host's local endpoint number `n` (its position in the resolution that produced it).
    Local(u32),
}

impl Addr {
    /// The IP address, if it is one.
    pub const fn ip(&self) -> Option<SocketAddr> {
        match self {
            Addr::Ip(a) => Some(*a),
            Addr::Local(_) => None,
        }
    }
}

impl From<SocketAddr> for Addr {
    fn from(a: SocketAddr) -> Self {
        Addr::Ip(a)
    }
}

impl fmt::Debug for Addr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl fmt::Display for Addr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Addr::Ip(a) => write!(f, "{a}"),
            Addr::Local(n) => write!(f, "local#{n}"),
        }
    }
}
