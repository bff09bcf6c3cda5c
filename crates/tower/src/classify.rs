//! Which failures are network failures, and whether the request can have reached the peer.
//!
//! The retry layer walks an error's [`source`](std::error::Error::source) chain down to the
//! first [`io::Error`] and classifies it with redial's classifier
//! ([`redial_driver::classify`], that is [`NetError::from_io`]): the same classes a
//! reconnecting session uses. An error with no `io::Error` anywhere in its chain is not a
//! network error (a TLS certificate problem, a protocol error, a bug) and is never retried.

use std::error::Error;
use std::fmt;
use std::io;

use crate::error::BoxError;

use redial_core::NetError;

/// Whether a failed request can have been executed by the peer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Sent {
    /// The request never left: the connection was refused, the name did not resolve, no
    /// local port was free. Retrying cannot execute it twice.
    Never,
    /// It may have been written (a reset, a broken pipe, a timeout on an established
    /// connection): only an idempotent request may be sent again.
    Maybe,
}

/// A network-class failure: its redial class and whether it can have reached the peer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Failure {
    /// The redial class (the same as a session's failed attempt would carry).
    pub class: NetError,
    /// Whether the request can have been executed.
    pub sent: Sent,
}

/// A classifier: `None` for an error that is not of the network class (never retried).
///
/// The default is [`classify_error`]. Supply your own through
/// [`crate::RetryPolicy::with_classifier`] when your client knows more, for example hyper-util's
/// `legacy::Error::is_connect()` (a DNS failure carries no `io::ErrorKind` that says "never
/// sent"):
///
/// ```
/// use redial_tower::{classify_error, Failure, Sent};
/// fn knows_connect_errors(e: &(dyn std::error::Error + 'static)) -> Option<Failure> {
///     let mut failure = classify_error(e)?;
///     // With hyper-util: e.downcast_ref::<hyper_util::client::legacy::Error>()
///     //     .is_some_and(|e| e.is_connect())
///     let connect_phase = false;
///     if connect_phase {
///         failure.sent = Sent::Never;
///     }
///     Some(failure)
/// }
/// # let _ = knows_connect_errors;
/// ```
pub type Classifier = fn(&(dyn Error + 'static)) -> Option<Failure>;

/// The first [`io::Error`] in `e`'s source chain (`e` itself included).
pub fn find_io_error<'a>(e: &'a (dyn Error + 'static)) -> Option<&'a io::Error> {
    let mut cur = Some(e);
    while let Some(err) = cur {
        if let Some(io) = err.downcast_ref::<io::Error>() {
            return Some(io);
        }
        cur = err.source();
    }
    None
}

/// The default classifier: the first `io::Error` of the chain, classified by
/// [`redial_driver::classify`]; permanent classes (invalid address, permission denied,
/// unsupported) and errors without an `io::Error` are `None`. Only the classes that can
/// happen before a byte is written (refused, resolution failed, no addresses, no local
/// address) are [`Sent::Never`].
///
/// With the `hyper` feature it also knows hyper-util's connect errors (any of them, a DNS
/// failure included, is [`Sent::Never`]) and hyper's "connection closed before the message
/// completed" (a [`NetError::Reset`] that may have been sent). With the `h2` feature it finds
/// the `io::Error` an `h2::Error` holds (h2 errors have no `source()`), and an HTTP/2
/// `REFUSED_STREAM` is [`Sent::Never`]: the peer promises it did not process the stream.
pub fn classify_error(e: &(dyn Error + 'static)) -> Option<Failure> {
    #[cfg_attr(not(any(feature = "hyper", feature = "h2")), allow(unused_mut))]
    let mut never = false;
    let mut found: Option<NetError> = None;
    let mut cur = Some(e);
    // Bounded: a cyclic chain (a bug elsewhere) must not hang a request.
    for _ in 0..32 {
        let Some(err) = cur else { break };
        #[cfg(feature = "hyper")]
        {
            if let Some(le) = err.downcast_ref::<hyper_util::client::legacy::Error>() {
                never |= le.is_connect();
            }
            if let Some(he) = err.downcast_ref::<hyper::Error>() {
                if he.is_incomplete_message() && found.is_none() {
                    found = Some(NetError::Reset);
                }
            }
        }
        #[cfg(feature = "h2")]
        if let Some(h) = err.downcast_ref::<h2::Error>() {
            if let Some(io) = h.get_io() {
                found = Some(redial_driver::classify(io));
                break;
            }
            if h.reason() == Some(h2::Reason::REFUSED_STREAM) {
                never = true;
                found = Some(NetError::Refused);
                break;
            }
        }
        if let Some(io) = err.downcast_ref::<io::Error>() {
            found = Some(redial_driver::classify(io));
            break;
        }
        cur = err.source();
    }
    let class = found?;
    if !class.is_retryable() {
        return None;
    }
    let sent = match class {
        NetError::Refused
        | NetError::ResolveFailed
        | NetError::NoAddresses
        | NetError::AddrUnavailable => Sent::Never,
        _ if never => Sent::Never,
        _ => Sent::Maybe,
    };
    Some(Failure { class, sent })
}

/// An error and its sources, joined by `": "`, for logs.
/// Drops what an error would show of the request it failed: a `reqwest::Error` prints its URL,
/// query string (a token, a signature) included; the retry layer logs and returns the error
/// without it.
pub(crate) fn scrub(error: BoxError) -> BoxError {
    #[cfg(feature = "reqwest")]
    let error = match error.downcast::<reqwest::Error>() {
        Ok(e) => Box::new(e.without_url()) as BoxError,
        Err(other) => other,
    };
    error
}

pub(crate) struct Chain<'a>(pub &'a (dyn Error + 'static));

impl fmt::Display for Chain<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)?;
        let mut cur = self.0.source();
        // Bounded: a cyclic chain (a bug elsewhere) must not hang a log line.
        for _ in 0..16 {
            let Some(e) = cur else { break };
            write!(f, ": {e}")?;
            cur = e.source();
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug)]
    struct Wrap(io::Error);
    impl fmt::Display for Wrap {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("client error")
        }
    }
    impl Error for Wrap {
        fn source(&self) -> Option<&(dyn Error + 'static)> {
            Some(&self.0)
        }
    }

    #[test]
    fn walks_the_chain_to_the_io_error() {
        let refused = Wrap(io::Error::from(io::ErrorKind::ConnectionRefused));
        assert_eq!(
            classify_error(&refused),
            Some(Failure {
                class: NetError::Refused,
                sent: Sent::Never
            })
        );
        let reset = Wrap(io::Error::from(io::ErrorKind::ConnectionReset));
        assert_eq!(classify_error(&reset).map(|f| f.sent), Some(Sent::Maybe));
        let denied = Wrap(io::Error::from(io::ErrorKind::PermissionDenied));
        assert_eq!(classify_error(&denied), None);
        #[cfg(feature = "h2")]
        {
            // (An h2::Error holding an io::Error cannot be made outside h2.)
            let refused = h2::Error::from(h2::Reason::REFUSED_STREAM);
            assert_eq!(classify_error(&refused).map(|f| f.sent), Some(Sent::Never));
            assert_eq!(
                classify_error(&h2::Error::from(h2::Reason::INTERNAL_ERROR)),
                None
            );
        }
        let fmt_err = std::fmt::Error;
        assert_eq!(classify_error(&fmt_err), None);
        assert_eq!(
            Chain(&refused).to_string(),
            format!(
                "client error: {}",
                io::Error::from(io::ErrorKind::ConnectionRefused)
            )
        );
    }
}
