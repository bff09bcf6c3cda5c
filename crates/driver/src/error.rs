//! `io::Error` → the core's [`NetError`] classes.

use std::io::{self, ErrorKind};

use redial_core::NetError;

/// Classifies an I/O error for the core: network-class errors are retried, invalid input,
/// permission and "unsupported" errors end the session.
pub fn classify(e: &io::Error) -> NetError {
    match e.kind() {
        ErrorKind::ConnectionRefused => NetError::Refused,
        ErrorKind::TimedOut => NetError::TimedOut,
        ErrorKind::ConnectionReset | ErrorKind::NotConnected | ErrorKind::UnexpectedEof => {
            NetError::Reset
        }
        ErrorKind::ConnectionAborted => NetError::Aborted,
        ErrorKind::BrokenPipe | ErrorKind::WriteZero => NetError::BrokenPipe,
        ErrorKind::HostUnreachable | ErrorKind::NetworkUnreachable | ErrorKind::NetworkDown => {
            NetError::Unreachable
        }
        ErrorKind::AddrNotAvailable | ErrorKind::AddrInUse => NetError::AddrUnavailable,
        ErrorKind::InvalidInput => NetError::InvalidAddress,
        ErrorKind::PermissionDenied => NetError::PermissionDenied,
        ErrorKind::Unsupported => NetError::Unsupported,
        _ => NetError::Other,
    }
}

/// Classifies a resolution (DNS or discovery) error: `InvalidInput` (a malformed name) is
/// permanent, anything else is a retryable resolution failure.
pub fn classify_resolve(e: &io::Error) -> NetError {
    match e.kind() {
        ErrorKind::InvalidInput => NetError::InvalidAddress,
        _ => NetError::ResolveFailed,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_map_to_classes() {
        let c = |k| classify(&io::Error::from(k));
        assert_eq!(c(ErrorKind::ConnectionRefused), NetError::Refused);
        assert_eq!(c(ErrorKind::ConnectionReset), NetError::Reset);
        assert_eq!(c(ErrorKind::HostUnreachable), NetError::Unreachable);
        assert!(!c(ErrorKind::PermissionDenied).is_retryable());
        assert!(c(ErrorKind::Other).is_retryable());
        let r = classify_resolve(&io::Error::other("no such host"));
        assert_eq!(r, NetError::ResolveFailed);
    }
}
